"""Fault battery of ``lvbert finetune`` (file task, demo task, SQuAD) and the task-file readers of
``augment`` and ``quantize``: empty, non-UTF-8 and binary inputs, outputs that exist or are inputs,
bad SQuAD fields, changed settings on resume, and kill + resume equal to an uninterrupted run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402
from test_finetune_recipe import make_model_dir, write_synthetic  # noqa: E402
from test_reliability import _one_line  # noqa: E402
from test_squad import make_squad  # noqa: E402

from lvbert.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("battery") / "model", max_positions=64)


@pytest.fixture(scope="module")
def finetuned(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetuned")
    assert main(_ft(model, write_synthetic(root / "data", n_train=8, n_dev=4), root / "run", "--max-steps", "1")) == 0
    return root / "run"


def _ft(model, data, out, *extra):
    return ["finetune", "--model", str(model), "--task", "good-word", "--data-dir", str(data), "--text-column", "text",
            "--out", str(out), "--batch-size", "4", "--epochs", "2", "--no-progress", *extra]  # fmt: skip


def _squad(model, folder, out, *extra):
    return ["finetune", "--model", str(model), "--task", "squad", "--train-file", str(folder / "train.json"),
            "--dev-file", str(folder / "dev.json"), "--out", str(out), "--batch-size", "8", "--epochs", "2",
            "--max-seq-len", "64", "--no-progress", *extra]  # fmt: skip


def _losses(run_dir) -> list:
    rows = [json.loads(x) for f in sorted(run_dir.glob("logs/seed*/metrics.jsonl")) for x in f.read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def _same_weights(a, b) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _kill_after_first_checkpoint(monkeypatch):
    import lvbert.training.loop as loop

    real = loop.save_checkpoint

    def save_then_die(out_dir, step, *a, **k):
        real(out_dir, step, *a, **k)
        raise KeyboardInterrupt  # killed right after the first checkpoint

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    return lambda: monkeypatch.setattr(loop, "save_checkpoint", real)


# ----------------------------------------------------------------------------- 1. kill + resume, exactly


def test_file_task_kill_and_resume_equals_an_uninterrupted_run(model, tmp_path, monkeypatch):
    data = write_synthetic(tmp_path / "data", n_train=16, n_dev=8)
    assert main(_ft(model, data, tmp_path / "straight", "--seeds", "2")) == 0
    restore = _kill_after_first_checkpoint(monkeypatch)
    assert main(_ft(model, data, tmp_path / "run", "--seeds", "2")) == 130
    assert list((tmp_path / ".run.partial" / "logs" / "seed0" / "checkpoints").iterdir())
    restore()
    assert main(_ft(model, data, tmp_path / "run", "--seeds", "2", "--resume")) == 0
    assert _losses(tmp_path / "straight") and _losses(tmp_path / "straight") == _losses(tmp_path / "run")
    assert _same_weights(tmp_path / "straight", tmp_path / "run")
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("straight", "run"))
    assert [r["score"] for r in a["runs"]] == [r["score"] for r in b["runs"]]
    assert [h["step"] for h in b["runs"][0]["history"]] == [4, 8]  # the evaluation before the kill is kept once
    assert not list((tmp_path / "run").glob("logs/*/checkpoints"))  # a finished seed's checkpoints are removed


def test_squad_kill_and_resume_equals_an_uninterrupted_run(model, tmp_path, monkeypatch):
    make_squad(tmp_path / "train.json", 6, 1)
    make_squad(tmp_path / "dev.json", 2, 2)
    assert main(_squad(model, tmp_path, tmp_path / "straight")) == 0
    restore = _kill_after_first_checkpoint(monkeypatch)
    assert main(_squad(model, tmp_path, tmp_path / "run")) == 130
    restore()
    assert main(_squad(model, tmp_path, tmp_path / "run", "--resume")) == 0
    assert _losses(tmp_path / "straight") and _losses(tmp_path / "straight") == _losses(tmp_path / "run")
    assert _same_weights(tmp_path / "straight", tmp_path / "run")
    # a finished run resumed again: nothing trains, the result stays
    before = (tmp_path / "run" / "results.json").read_text()
    assert main(_squad(model, tmp_path, tmp_path / "run", "--resume")) == 0
    assert (tmp_path / "run" / "results.json").read_text() == before


# ----------------------------------------------------------------------------- 2. changed settings on resume


def test_resume_with_a_changed_setting_is_refused(model, tmp_path, capsys):
    data = write_synthetic(tmp_path / "data", n_train=8, n_dev=4)
    run = tmp_path / "run"
    assert main(_ft(model, data, run)) == 0
    before = (run / "results.json").read_text()
    capsys.readouterr()
    assert main(_ft(model, data, run, "--resume", "--batch-size", "2")) == 2
    _one_line(capsys.readouterr().err, "--batch-size was 4 and is now 2")
    assert (run / "results.json").read_text() == before
    assert main(_ft(model, data, run, "--resume", "--progress")) == 0  # a setting that cannot change the result


def test_pretrain_resume_with_a_changed_setting_keeps_run_config(real_data, tmp_path, capsys):
    run = tmp_path / "lm"
    argv = ["pretrain", "--data", str(real_data), "--out", str(run), "--arch", "CAFA", "--size", "tiny", "--objective",
            "mlm", "--steps", "2", "--batch-size", "8", "--eval-every", "100", "--eval-sequences", "8", "--no-progress"]
    assert main(argv) == 0
    before = (run / "run_config.yaml").read_text()
    capsys.readouterr()
    assert main([*argv, "--batch-size", "16", "--resume"]) == 2
    _one_line(capsys.readouterr().err, "--batch-size was 8 and is now 16")
    assert (run / "run_config.yaml").read_text() == before


# ----------------------------------------------------------------------------- 3. broken checkpoint: one warning


def test_a_broken_checkpoint_is_reported_once(real_data, tmp_path, capsys):
    from lvbert.training.checkpoint import list_checkpoints

    run = tmp_path / "run"
    argv = ["supernet", "train", "--size", "tiny", "--num-slots", "4", "--data", str(real_data), "--steps", "4",
            "--batch-size", "8", "--save-every", "2", "--keep-last", "3", "--eval-every", "100", "--eval-sequences", "8",
            "--warmup-steps", "1", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    newest = list_checkpoints(run)[-1] / "optimizer.pt"
    newest.write_bytes(newest.read_bytes()[:20])
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("is broken") == 1, captured.err


# ----------------------------------------------------------------------------- 4, 5. SQuAD input


def test_squad_too_short_windows_and_bad_fields_are_one_line(model, tmp_path, capsys):
    make_squad(tmp_path / "train.json", 2, 1)
    make_squad(tmp_path / "dev.json", 1, 2)
    assert main(_squad(model, tmp_path, tmp_path / "o", "--max-seq-len", "8")) == 2
    _one_line(capsys.readouterr().err, "--max-seq-len 8", "at least 16")
    good = json.loads((tmp_path / "train.json").read_text())
    for value, words in (("abc", "'answer_start'"), (None, "'answer_start'"), ("dict", "'answers' must be a list")):
        data = json.loads(json.dumps(good))
        qa = data["data"][0]["paragraphs"][0]["qas"][1]
        if value == "dict":
            qa["answers"] = qa["answers"][0]
        else:
            qa["answers"][0]["answer_start"] = value
        (tmp_path / "train.json").write_text(json.dumps(data))
        assert main(_squad(model, tmp_path, tmp_path / "o")) == 2
        _one_line(capsys.readouterr().err, words, "question 1", "q0-1")
    assert not (tmp_path / "o").exists()


def test_negative_learning_rate_is_one_line(model, tmp_path, capsys):
    data = write_synthetic(tmp_path / "data", n_train=8, n_dev=4)
    make_squad(tmp_path / "train.json", 2, 1)
    make_squad(tmp_path / "dev.json", 1, 2)
    for argv in (_ft(model, data, tmp_path / "o", "--lr", "-1"), _squad(model, tmp_path, tmp_path / "o", "--lr", "-1")):
        assert main(argv) == 2
        _one_line(capsys.readouterr().err, "--lr must be positive")


# ----------------------------------------------------------------------------- 6, 10. bad input files


BAD_FILES = {
    "empty": (b"", "is empty"),
    "latin-1": ("text\tother\tlabel\ncaf\u00e9 good\tx\tyes\n".encode("latin-1"), "not UTF-8"),
    "binary": (b"\x00\x01\x02\xff" * 64, "binary"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_task_files_are_one_line_for_finetune_augment_quantize(model, finetuned, tmp_path, capsys, kind):
    content, words = BAD_FILES[kind]
    data = write_synthetic(tmp_path / "data", n_train=8, n_dev=4)
    (data / "train.tsv").write_bytes(content)
    runs = {
        "finetune": _ft(model, data, tmp_path / "o1"),
        "augment": ["augment", "--task", "good-word", "--data-dir", str(data), "--text-column", "text", "--out",
                    str(tmp_path / "o2"), "--method", "random", "--no-progress"],  # fmt: skip
        "quantize": ["quantize", "--model", str(finetuned), "--task", "good-word", "--data-dir", str(data),
                     "--text-column", "text", "--out", str(tmp_path / "o3"), "--no-progress"],  # fmt: skip
    }
    for name, argv in runs.items():
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        _one_line(err, words)
        if kind != "empty":
            assert "train.tsv" in err, (name, err)


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_squad_files_are_one_line(model, tmp_path, capsys, kind):
    content, words = BAD_FILES[kind]
    make_squad(tmp_path / "dev.json", 1, 2)
    (tmp_path / "train.json").write_bytes(content)
    assert main(_squad(model, tmp_path, tmp_path / "o")) == 2
    _one_line(capsys.readouterr().err, words, "train.json")


# ----------------------------------------------------------------------------- 8. labels outside a demo task's


def test_a_stray_label_in_a_demo_task_is_one_line(model, demo_home, tmp_path, capsys):
    data = tmp_path / "polarity"
    shutil.copytree(demo_home / "tasks" / "polarity", data)
    with open(data / "train.tsv", "a", encoding="utf-8") as f:
        f.write("not sure what to think\tmaybe\n")
    lines = len((data / "train.tsv").read_text().splitlines())
    argv = ["finetune", "--model", str(model), "--task", "polarity", "--data-dir", str(data), "--out",
            str(tmp_path / "o"), "--max-steps", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    _one_line(capsys.readouterr().err, f"train.tsv:{lines}", "'maybe'", "['neg', 'pos']")
    argv = ["augment", "--task", "polarity", "--data-dir", str(data), "--out", str(tmp_path / "a"), "--method", "random",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    _one_line(capsys.readouterr().err, "'maybe'", "['neg', 'pos']")


# ----------------------------------------------------------------------------- 10. outputs


def test_existing_outputs_and_outputs_that_are_inputs(model, demo_home, tmp_path, capsys):
    data = write_synthetic(tmp_path / "data", n_train=8, n_dev=4)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(_ft(model, data, out, "--max-steps", "1")) == 2
    _one_line(capsys.readouterr().err, "already exists", "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"
    assert main(_ft(model, data, out, "--max-steps", "1", "--overwrite")) == 0
    assert (out / "results.json").is_file() and not (out / "notes.txt").exists()
    assert main(_ft(model, data, out, "--max-steps", "1")) == 2  # a finished run: --resume or --overwrite
    capsys.readouterr()
    for argv in (_ft(model, data, model, "--overwrite"), _ft(model, data, data, "--overwrite"),
                 ["finetune", "--model", str(model), "--task", "polarity", "--out", str(demo_home / "tasks" / "polarity"),
                  "--overwrite", "--no-progress"]):  # fmt: skip
        assert main(argv) == 2
        _one_line(capsys.readouterr().err, "would destroy the input")
    make_squad(tmp_path / "train.json", 2, 1)
    make_squad(tmp_path / "dev.json", 1, 2)
    assert main(_squad(model, tmp_path, tmp_path / "train.json", "--overwrite")) == 2
    _one_line(capsys.readouterr().err, "train.json")
    assert main(_squad(model, tmp_path, tmp_path, "--overwrite")) == 2  # the folder holding the inputs
    _one_line(capsys.readouterr().err, "would destroy the input")
    assert (model / "config.json").is_file() and (data / "train.tsv").is_file() and (tmp_path / "train.json").is_file()


# ----------------------------------------------------------------------------- 9. no load report


def test_finetune_of_a_pretrained_electra_folder_prints_no_load_report(real_data, tmp_path):
    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    lm = pretrain(PretrainConfig(data=str(real_data), out=str(tmp_path / "lm"), arch="CAFA", size="tiny",
                                 objective="electra", steps=1, batch_size=8, eval_every=100, eval_sequences=8,
                                 progress=False, warmup_steps=1))  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"the cat keeps the file {i}\t{'yes' if i % 2 else 'no'}\n" for i in range(8))
    for split in ("train", "dev"):
        (data / f"{split}.tsv").write_text("text\tlabel\n" + rows)
    argv = ["finetune", "--model", str(lm), "--task", "cats", "--data-dir", str(data), "--text-column", "text",
            "--out", str(tmp_path / "o"), "--max-steps", "1", "--no-progress"]  # fmt: skip
    p = subprocess.run([sys.executable, "-m", "lvbert", *argv], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "UNEXPECTED" not in p.stdout + p.stderr and "LOAD REPORT" not in p.stdout + p.stderr, p.stderr


def test_dropout_out_of_range_is_one_line(model, tmp_path, capsys):
    data = write_synthetic(tmp_path / "data", n_train=8, n_dev=4)
    assert main(_ft(model, data, tmp_path / "o", "--dropout", "1.5")) == 2
    _one_line(capsys.readouterr().err, "--dropout must be in [0, 1)")
    assert main(["pretrain", "--data", str(tmp_path), "--arch", "bert", "--dropout", "-0.1", "--out", str(tmp_path / "p")]) == 2
    _one_line(capsys.readouterr().err, "--dropout must be in [0, 1)")
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()
