"""Fault battery of ``lvbert kg train|eval|score`` and ``lvbert augment``: empty, non-UTF-8 and binary
inputs, an output that exists, an output that is an input, bad counts, a model evaluated on another
graph, unknown names. Every failure is one line (exit 2) and writes nothing."""

from __future__ import annotations

import shutil

import pytest
from test_kg import _write, kg_setup  # noqa: F401  (the module fixture: a tiny model and a small graph)
from test_reliability import _one_line

from lvbert.cli import main

BAD_TEXT = {
    "empty": (b"", "holds no triples"),
    "latin-1": ("parser\tnext\tsoci\u00e9t\u00e9\n".encode("latin-1"), "not UTF-8"),
    "binary": (b"\x00\x01\x02\x03\x00\x00", "binary"),
}


@pytest.fixture(scope="module")
def kg_model(kg_setup, tmp_path_factory):  # noqa: F811
    """A triple-classification model trained for one epoch on the small graph."""
    model, graph = kg_setup
    out = tmp_path_factory.mktemp("kgm") / "m"
    assert main(["kg", "train", "--model", str(model), "--dataset", str(graph), "--task", "triple", "--epochs", "1",
                 "--no-progress", "--no-test", "--out", str(out)]) == 0  # fmt: skip
    return out


def _graph_copy(graph, tmp_path, name="g"):
    copy = tmp_path / name
    shutil.copytree(graph, copy)
    return copy


# ----------------------------------------------------------------------------- kg score


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_score_bad_triples_file(kg_model, kg_setup, tmp_path, capsys, case):  # noqa: F811
    data, words = BAD_TEXT[case]
    mine = tmp_path / "mine.tsv"
    mine.write_bytes(data)
    assert main(["kg", "score", "--model", str(kg_model), "--triples", str(mine), "--out", str(tmp_path / "s")]) == 2
    _one_line(capsys.readouterr().err, str(mine), words)
    assert not (tmp_path / "s").exists()


def test_score_output_exists_or_is_the_input(kg_model, tmp_path, capsys):
    mine = tmp_path / "mine.tsv"
    mine.write_text("parser\tnext\tsocket\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    base = ["kg", "score", "--model", str(kg_model), "--triples", str(mine)]
    assert main([*base, "--out", str(notes)]) == 2
    _one_line(capsys.readouterr().err, "already exists", "--overwrite")
    assert notes.read_text() == "my notes\n"
    for extra in ([], ["--overwrite"]):
        assert main([*base, "--out", str(mine), *extra]) == 2
        _one_line(capsys.readouterr().err, "is also the input --triples")
        assert mine.read_text() == "parser\tnext\tsocket\n"
    assert main([*base, "--out", str(notes), "--overwrite"]) == 0
    assert notes.read_text().startswith("parser\tnext\tsocket\t")


def test_score_unknown_relation_like_unknown_entity(kg_model, kg_setup, tmp_path, capsys):  # noqa: F811
    _, graph = kg_setup
    mine = tmp_path / "mine.tsv"
    mine.write_text("parser\tnext\tsocket\nparser\tunheard_rel\tsocket\nqueue\tprev\tparser\n")
    base = ["kg", "score", "--model", str(kg_model), "--triples", str(mine), "--dataset", str(graph)]
    capsys.readouterr()
    assert main(base) == 2
    _one_line(capsys.readouterr().err, "unknown relation 'unheard_rel'", "--allow-unknown")
    assert main([*base, "--allow-unknown"]) == 0
    io = capsys.readouterr()
    assert "unknown relation 'unheard_rel'" in io.err and "skipped 1 of 3 triples" in io.err
    assert [line.split("\t")[:3] for line in io.out.splitlines()] == [["parser", "next", "socket"],
                                                                       ["queue", "prev", "parser"]]  # fmt: skip


# ----------------------------------------------------------------------------- kg train


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_train_bad_train_file(kg_setup, tmp_path, capsys, case):  # noqa: F811
    model, graph = kg_setup
    data, words = BAD_TEXT[case]
    g = _graph_copy(graph, tmp_path)
    (g / "train.tsv").write_bytes(data)
    out = tmp_path / "out"
    assert main(["kg", "train", "--model", str(model), "--dataset", str(g), "--no-progress", "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err, "train.tsv", words)
    assert not out.exists()


@pytest.mark.parametrize(("extra", "words"), [(["--lr", "-1"], "--lr must be positive"),
                                              (["--batch-size", "0"], "--batch-size must be at least 1"),
                                              (["--eval-batch-size", "0"], "--eval-batch-size must be at least 1")])
def test_train_bad_counts_write_nothing(kg_setup, tmp_path, capsys, extra, words):  # noqa: F811
    model, graph = kg_setup
    out = tmp_path / "out"
    assert main(["kg", "train", "--model", str(model), "--dataset", str(graph), "--out", str(out), *extra]) == 2
    _one_line(capsys.readouterr().err, words)
    assert not out.exists()


def test_train_output_exists_or_is_an_input(kg_setup, tmp_path, capsys):  # noqa: F811
    model, graph = kg_setup
    g = _graph_copy(graph, tmp_path)
    base = ["kg", "train", "--model", str(model), "--dataset", str(g), "--task", "triple", "--epochs", "1",
            "--no-progress", "--no-test"]  # fmt: skip
    for out, words in ((g, "is also the input --dataset"), (g / "sub", "is also the input --dataset"),
                       (model, "is also the input --model")):  # fmt: skip
        assert main([*base, "--out", str(out), "--overwrite"]) == 2
        _one_line(capsys.readouterr().err, words)
    assert not (g / "sub").exists() and (model / "config.json").is_file()
    old = tmp_path / "old"
    old.mkdir()
    (old / "mine.txt").write_text("keep")
    assert main([*base, "--out", str(old)]) == 2
    _one_line(capsys.readouterr().err, "not empty", "--overwrite")
    assert (old / "mine.txt").read_text() == "keep"
    assert main([*base, "--out", str(old), "--overwrite"]) == 0
    assert (old / "kg.json").is_file() and not (old / "mine.txt").exists()


# ----------------------------------------------------------------------------- kg eval


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_eval_bad_split_file(kg_model, kg_setup, tmp_path, capsys, case):  # noqa: F811
    _, graph = kg_setup
    data, words = BAD_TEXT[case]
    g = _graph_copy(graph, tmp_path)
    (g / "test.tsv").write_bytes(data)
    assert main(["kg", "eval", "--model", str(kg_model), "--dataset", str(g), "--no-progress"]) == 2
    _one_line(capsys.readouterr().err, "test.tsv", words)


def test_eval_refuses_another_graph_and_zero_batch(kg_model, kg_setup, tmp_path, capsys):  # noqa: F811
    _, graph = kg_setup
    other = _graph_copy(graph, tmp_path)
    with (other / "test.tsv").open("a") as f:
        f.write("parser\tnext\tstranger\n")  # one more entity: another graph
    assert main(["kg", "eval", "--model", str(kg_model), "--dataset", str(other), "--no-progress"]) == 2
    _one_line(capsys.readouterr().err, "was trained on the graph", str(graph))
    same = _graph_copy(graph, tmp_path, "same")  # the same graph at another path is accepted
    assert main(["kg", "eval", "--model", str(kg_model), "--dataset", str(same), "--split", "dev", "--no-progress",
                 "--max-test", "1"]) == 0  # fmt: skip
    for cmd in (["eval", "--dataset", str(graph)], ["score", "--triples", str(graph / "dev.tsv")]):
        assert main(["kg", *cmd, "--model", str(kg_model), "--eval-batch-size", "0"]) == 2
        _one_line(capsys.readouterr().err, "--eval-batch-size must be at least 1")


# ----------------------------------------------------------------------------- augment


def _task(tmp_path):
    from test_finetune_recipe import write_synthetic

    return write_synthetic(tmp_path / "task", n_train=10, n_dev=4)


def _augment(data, out, *extra):
    return main(["augment", "--method", "random", "--task", "good-word", "--data-dir", str(data), "--text-column",
                 "text", "--prob", "0.1", "--no-progress", "--out", str(out), *extra])  # fmt: skip


def test_augment_output_exists_or_is_the_input(tmp_path, capsys):
    data = _task(tmp_path)
    for out in (data, data / "sub"):
        assert _augment(data, out, "--overwrite") == 2
        _one_line(capsys.readouterr().err, "is also the input --data-dir")
    assert not (data / "sub").exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "mine.txt").write_text("keep")
    assert _augment(data, old) == 2
    _one_line(capsys.readouterr().err, "not empty", "--overwrite")
    assert (old / "mine.txt").read_text() == "keep"
    assert _augment(data, old, "--overwrite") == 0
    assert (old / "train.tsv").is_file() and not (old / "mine.txt").exists()


def test_augment_empty_train_file(tmp_path, capsys):
    data = _task(tmp_path)
    (data / "train.tsv").write_bytes(b"")
    assert _augment(data, tmp_path / "o") == 2
    _one_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", ["latin-1", "binary"])
def test_augment_undecodable_train_file(tmp_path, capsys, case):
    data = _task(tmp_path)
    (data / "train.tsv").write_bytes(b"text\tlabel\n" + BAD_TEXT[case][0] + b"\t1\n")
    assert _augment(data, tmp_path / "o") == 2
    _one_line(capsys.readouterr().err, {"latin-1": "not UTF-8", "binary": "binary"}[case])
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- kg train --resume


def test_train_killed_then_resumed_is_bit_identical(kg_setup, tmp_path, monkeypatch, capsys):  # noqa: F811
    import json

    import torch
    from safetensors.torch import load_file

    import lvbert.training.loop as loop

    model, graph = kg_setup

    def argv(out, *extra):
        return ["kg", "train", "--model", str(model), "--dataset", str(graph), "--task", "triple", "--epochs", "3",
                "--batch-size", "8", "--lr", "1e-3", "--no-progress", "--no-test", "--out", str(out), *extra]  # fmt: skip

    straight, killed = tmp_path / "a", tmp_path / "b"
    assert main(argv(straight)) == 0
    real_save = loop.save_checkpoint
    saved = []

    def save_then_die(out_dir, step, *a, **k):
        path = real_save(out_dir, step, *a, **k)
        saved.append(step)
        if len(saved) == 2:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    assert main(argv(killed)) == 130
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    import lvbert.objectives as objectives

    real_objective, trained = objectives.classification_objective, []

    def counting(*a, **k):
        trained.append(1)
        return real_objective(*a, **k)

    import lvbert.recipes.kg as kg_recipe

    monkeypatch.setattr(kg_recipe, "classification_objective", counting)  # steps the resumed run trains
    assert not (killed / "kg.json").exists() and (killed / "evals.json").is_file()
    assert main(argv(killed)) == 2  # the unfinished run is not silently replaced
    _one_line(capsys.readouterr().err, "not empty", "--resume")
    assert main(["kg", "train", "--resume", str(killed)]) == 0

    def losses(run):
        rows = map(json.loads, (run / "logs" / "metrics.jsonl").read_text().splitlines())
        return [(r["step"], r["loss"]) for r in rows if "loss" in r]

    assert losses(straight) and losses(straight) == losses(killed)
    assert len(trained) == losses(straight)[-1][0] - saved[1]  # it went on from the checkpoint, not from scratch
    ra, rb = (json.loads((run / "results.json").read_text()) for run in (straight, killed))
    assert ra["history"] == rb["history"] and ra["best"] == rb["best"] and len(ra["history"]) == 3
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (killed / "logs" / "checkpoints").exists()
    assert main(["kg", "train", "--resume", str(killed)]) == 2
    _one_line(capsys.readouterr().err, "finished KG model")
