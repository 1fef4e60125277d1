"""``lvbert finetune`` / ``lvbert predict`` on the command line: bad input gives one line, exit 2, no files."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")

from test_finetune_recipe import make_model_dir, write_synthetic  # noqa: E402  (sibling test modules)
from test_tasks_glue import write_glue  # noqa: E402

from lvbert.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = make_model_dir(root / "model", max_positions=32)
    write_glue(root / "glue", n=6, tasks=["sst2", "mrpc"])
    return root, model


def _fail(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lvbert: error:"), err
    assert match in err, err


def _ft(model, data, out, task="sst2", *extra):
    return ["finetune", "--model", str(model), "--task", task, "--data-dir", str(data), "--out", str(out),
            "--max-steps", "1", "--batch-size", "4", "--no-progress", *extra]  # fmt: skip


def test_finetune_and_predict_cli(setup, tmp_path, capsys):
    root, model = setup
    assert main(_ft(model, root / "glue" / "SST-2", tmp_path / "run")) == 0
    out = capsys.readouterr().out
    assert "sst2" in out and "dev/accuracy" in out
    assert json.loads((tmp_path / "run" / "results.json").read_text())["config"]["max_steps"] == 1
    argv = ["predict", "--model", str(tmp_path / "run"), "--task", "sst2", "--data-dir", str(root / "glue" / "SST-2"),
            "--out", str(tmp_path / "sub")]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "sub" / "SST-2.tsv").read_text().startswith("index\tprediction\n0\t")
    # a second fine-tune into the same --out is refused; with --overwrite it replaces the earlier result
    assert main(_ft(model, root / "glue" / "SST-2", tmp_path / "run", "sst2", "--seed", "3")) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(_ft(model, root / "glue" / "SST-2", tmp_path / "run", "sst2", "--seed", "3", "--overwrite")) == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["best_seed"] == 3


def test_model_dir_without_tokenizer(setup, tmp_path, capsys):
    root, model = setup
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (bare / f).unlink()
    _fail(capsys, _ft(bare, root / "glue" / "SST-2", tmp_path / "out"), "has no tokenizer")
    _fail(capsys, _ft(tmp_path, root / "glue" / "SST-2", tmp_path / "out"), "not a model directory")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: (d / "dev.tsv").unlink(), "missing file"),
        (lambda d: (d / "train.tsv").write_text("text\tlabel\nfine\t1\n"), "missing column(s) 'sentence'"),
        (lambda d: (d / "train.tsv").write_text("sentence\tlabel\nfine\t1\nodd\tpositive\n"), "label 'positive'"),
        (lambda d: (d / "dev.tsv").write_text("sentence\tlabel\n"), "has no examples"),
    ],
    ids=["missing-file", "missing-column", "label-outside-set", "empty-split"],
)
def test_bad_glue_input(setup, tmp_path, capsys, damage, match):
    root, model = setup
    data = tmp_path / "SST-2"
    shutil.copytree(root / "glue" / "SST-2", data)
    damage(data)
    _fail(capsys, _ft(model, data, tmp_path / "out"), match)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_bad_glue_root_leaves_nothing(setup, tmp_path, capsys):
    root, model = setup
    shutil.copytree(root / "glue", tmp_path / "glue")
    # MRPC runs after SST-2: its inputs are checked before SST-2 starts
    (tmp_path / "glue" / "MRPC" / "dev.tsv").unlink()
    _fail(capsys, _ft(model, tmp_path / "glue", tmp_path / "out", "glue"), "MRPC/dev.tsv")
    shutil.copy(root / "glue" / "MRPC" / "dev.tsv", tmp_path / "glue" / "MRPC" / "dev.tsv")
    with open(tmp_path / "glue" / "MRPC" / "train.tsv", "a") as f:
        f.write("3\t1\t2\tone\ttwo\n")
    _fail(capsys, _ft(model, tmp_path / "glue", tmp_path / "out", "glue"), "label '3'")
    assert not (tmp_path / "out").exists()


def test_other_user_errors(setup, tmp_path, capsys):
    root, model = setup
    _fail(capsys, _ft(model, root / "glue" / "SST-2", tmp_path / "out", "sst3"), "unknown task 'sst3'")
    _fail(capsys, _ft(model, root / "glue" / "SST-2", tmp_path / "out", "sst2", "--warmup", "2"), "--warmup")
    _fail(capsys, _ft(model, root / "glue" / "SST-2", tmp_path / "out", "sst2", "--device", "gpu"), "--device must be")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    _fail(capsys, _ft(model, root / "glue" / "SST-2", tmp_path / "busy"), "already exists and is not empty")
    argv = ["predict", "--model", str(model), "--task", "sst2", "--data-dir", str(root / "glue" / "SST-2"), "--out", str(tmp_path / "sub")]
    _fail(capsys, argv, "not a fine-tuned classifier")
    assert not (tmp_path / "sub").exists()


def test_long_inputs_are_truncated_with_a_warning(setup, tmp_path, capsys):
    root, model = setup  # the model has 32 positions
    data = write_synthetic(tmp_path / "data", n_train=16, n_dev=8)
    lines = (data / "train.tsv").read_text().splitlines()
    lines[1] = "\t".join([" ".join(["very"] * 60), "x", "no"])
    (data / "train.tsv").write_text("\n".join(lines) + "\n")
    assert main(_ft(model, data, tmp_path / "run", "long", "--text-column", "text", "--max-seq-len", "64")) == 0
    err = capsys.readouterr().err
    assert "--max-seq-len 64 exceeds the model's 32 positions; using 32" in err
    assert "long train: 1 of 16 inputs are longer than 32 tokens and were truncated (longest 62)" in err
    assert json.loads((tmp_path / "run" / "results.json").read_text())["config"]["max_seq_len"] == 32


def test_finetune_from_a_yaml_config(setup, tmp_path, capsys):
    root, model = setup
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"model: {model}\ntask: sst2\ndata_dir: {root / 'glue' / 'SST-2'}\nout: {tmp_path / 'run'}\n"
                   "lr: 1e-3\nmax_steps: 1\nbatch_size: 4\nlayer_decay: 1\nprogress: false\n")  # fmt: skip
    assert main(["finetune", "--config", str(cfg), "--seed", "2"]) == 0  # the command line wins over YAML
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["config"]["lr"] == 1e-3 and res["config"]["layer_decay"] is None and res["best_seed"] == 2
    argv = ["predict", "--model", str(tmp_path / "run"), "--task", "sst2", "--data-dir", str(root / "glue" / "SST-2"),
            "--out", str(tmp_path / "sub")]  # fmt: skip
    (tmp_path / "predict.yaml").write_text("batch_size: 2\n")
    assert main([*argv, "--config", str(tmp_path / "predict.yaml")]) == 0


def test_finetune_resume_runs_only_the_seeds_that_did_not_finish(setup, tmp_path, capsys, monkeypatch):
    import lvbert.recipes.finetune as ft

    root, model = setup
    argv = _ft(model, root / "glue" / "SST-2", tmp_path / "run", "sst2", "--seeds", "3")
    real = ft._train_one_seed
    calls = []

    def killed_at_the_third(task, model_dir, tokenizer, train, dev, cfg, seed, *rest):
        calls.append(seed)
        if seed == 2 and calls.count(2) == 1:
            raise KeyboardInterrupt  # killed during the third seed
        return real(task, model_dir, tokenizer, train, dev, cfg, seed, *rest)

    monkeypatch.setattr(ft, "_train_one_seed", killed_at_the_third)
    assert main(argv) == 130
    assert not (tmp_path / "run").exists() and (tmp_path / ".run.partial").is_dir()
    assert main([*argv, "--resume"]) == 0
    assert calls == [0, 1, 2, 2]  # seeds 0 and 1 were kept, seed 2 ran again
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["seed"] for r in res["runs"]] == [0, 1, 2]
    assert not (tmp_path / ".run.partial").exists()
    # without --resume a left-over partial folder is started again, then removed
    (tmp_path / ".run2.partial").mkdir()
    assert main(_ft(model, root / "glue" / "SST-2", tmp_path / "run2")) == 0
    assert not (tmp_path / ".run2.partial").exists()
