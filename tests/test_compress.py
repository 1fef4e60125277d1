"""``lvbert compress`` end to end (profile ``test``) on a tiny teacher fine-tuned on the demo task."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from lvbert.cli import main
from lvbert.data.prepare import prepare_data
from lvbert.data.tokenizer import train_tokenizer
from lvbert.recipes.finetune import finetune
from lvbert.recipes.pretrain import PretrainConfig, pretrain
from lvbert.tasks import get_task

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def teacher(demo_home, tmp_path_factory):
    """A 12-slot tiny MLM model on the demo corpus, fine-tuned on polarity (its results.json names it)."""
    root = tmp_path_factory.mktemp("compress")
    text = demo_home / "pretrain" / "train.txt"
    tok = train_tokenizer(text, root / "tokenizer", vocab_size=400)
    data = prepare_data([text], tok, root / "data", 32, valid_fraction=0.05, overwrite=True)
    mlm = root / "mlm"
    pretrain(PretrainConfig(data=str(data), out=str(mlm), arch="CAFA" * 3, size="tiny", objective="mlm", steps=4,
                            batch_size=8, eval_every=4, eval_sequences=8, save_every=100, progress=False))  # fmt: skip
    ft = root / "teacher"
    finetune(mlm, "polarity", demo_home / "tasks" / "polarity", ft, epochs=1, lr=1e-3, max_seq_len=32, progress=False)
    return {"root": root, "data": data, "mlm": mlm, "teacher": ft, "demo": demo_home}


def _argv(t, out, *extra):
    return ["compress", "--teacher", str(t["teacher"]), "--task", "polarity", "--corpus", str(t["data"]), "--profile",
            "test", "--budget", "params=0.7x", "--latency-seq-len", "32", "--no-progress", "--device", "cpu",
            "--out", str(out), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def compressed(teacher):
    out = teacher["root"] / "deploy"
    assert main(_argv(teacher, out)) == 0
    return out


def test_compress_writes_a_deploy_folder_and_a_report(compressed, teacher):
    report = json.loads((compressed / "report.json").read_text())
    kinds = [r["kind"] for r in report["rows"]]
    assert kinds == ["teacher", "optimum", "compressed", "af"]
    teacher_params = report["teacher"]["teacher_backbone_params"]
    for r in report["rows"]:
        assert 0.0 <= r["score"]["median"] <= 1.0 and r["bytes"] > 0
        assert set(r["latency"]) == {"b1_t1", "b8_t1"} and all(v > 0 for v in r["latency"].values())
    compressed_row = report["rows"][2]
    assert compressed_row["params"] <= 0.7 * teacher_params
    assert report["cpu"]["isa"] and report["headline"].startswith("On polarity, the int8 model of budget 0.7x")
    md = (compressed / "report.md").read_text()
    assert report["headline"] in md.splitlines()[2] and "report.png" in md and (compressed / "report.png").is_file()
    folder = compressed / "0.7x"
    chosen = json.loads((compressed / "work" / "stages.json").read_text())["stages"]["deploy"]["chosen"]["0.7x"]
    better = max(report["rows"][2:], key=lambda r: r["score"]["median"])  # the AF student wins only when higher
    assert chosen == ("AF" if better["kind"] == "af" and better["score"]["median"] > compressed_row["score"]["median"]
                      else "searched")  # fmt: skip
    assert {p.name for p in folder.iterdir()} >= {"model.onnx", "tokenizer.json", "labels.json", "config.json",
                                                  "README.md"}  # fmt: skip
    labels = json.loads((folder / "labels.json").read_text())
    assert labels["labels"] == list(get_task("polarity", None).labels)
    stages = json.loads((compressed / "work" / "stages.json").read_text())["stages"]
    assert list(stages) == ["teacher", "nas", "student 0.7x", "baselines", "deploy", "latency", "report"]


def test_the_deploy_folder_runs_without_lvbert(compressed, tmp_path):
    """The README's example, in a subprocess where ``import lvbert`` fails, gives lvbert's own predictions."""
    folder = compressed / "0.7x"
    readme = (folder / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    blocker = tmp_path / "block"
    (blocker / "lvbert").mkdir(parents=True)
    (blocker / "lvbert" / "__init__.py").write_text("raise ImportError('lvbert is not installed here')\n")
    check = "try:\n    import lvbert\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit(3)\n"
    res = subprocess.run([sys.executable, "-c", check + code], cwd=folder, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    printed = eval(res.stdout.strip().splitlines()[-1])  # a list of labels
    meta = json.loads((folder / "labels.json").read_text())
    labels = meta["labels"]
    assert len(printed) == 2 and set(printed) <= set(labels)
    # the same predictions through lvbert's own ONNX path
    from lvbert.export.onnx import OnnxClassifier
    from lvbert.model_dir import load_model_tokenizer
    from lvbert.tasks.encoding import collate

    examples = eval(code.split("enc = tok.encode_batch(", 1)[1].split(")\n", 1)[0])
    tok = load_model_tokenizer(folder, json.loads((folder / "config.json").read_text())["vocab_size"])
    enc = tok(list(examples), truncation=True, max_length=meta["max_seq_len"])
    from lvbert.tasks.encoding import Encoded

    e = Encoded(enc["input_ids"], enc["token_type_ids"], None, list(range(len(examples))))
    logits = OnnxClassifier(folder).logits(collate(e, list(range(len(examples))), tok.pad_token_id or 0))
    assert [labels[i] for i in logits.argmax(-1).tolist()] == printed


def test_a_rerun_skips_every_finished_stage(compressed, teacher, capsys):
    capsys.readouterr()
    assert main(_argv(teacher, compressed)) == 0
    printed = capsys.readouterr().out
    assert printed.count("done already") == 4  # deploy, latency and the report run again


def test_a_killed_stage_resumes(teacher, tmp_path, monkeypatch, capsys):
    """A kill inside the int8 stage: the re-run skips the finished stages and the student's finished steps."""
    import lvbert.recipes.quantize as quantize_recipe

    real = quantize_recipe.quantize
    calls = []

    def killed(cfg, resume=False):
        calls.append(resume)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(cfg, resume)

    monkeypatch.setattr(quantize_recipe, "quantize", killed)
    import lvbert.recipes.distill as distill_recipe

    distilled = []
    for name in ("general_distill", "task_distill"):
        def counted(cfg, resume=False, real=getattr(distill_recipe, name), name=name):
            distilled.append(name)
            return real(cfg, resume)

        monkeypatch.setattr(distill_recipe, name, counted)
    out = tmp_path / "deploy"
    argv = _argv(teacher, out, "--no-baseline", "--nas-steps", "5")
    assert main(argv) == 130  # interrupted
    assert "5 steps per block" in capsys.readouterr().out  # a single stage budget overrides the profile's
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "teacher: done already" in printed and "nas: done already" in printed
    assert calls == [False, False] and (out / "0.7x" / "model.onnx").is_file()
    assert distilled == ["general_distill", "task_distill"]  # each ran once: the re-run kept them
    assert "student 0.7x: search" in printed  # the interrupted stage runs again; its search and distillation are kept


def test_bad_input_is_one_line(teacher, real_data, tmp_path, capsys):
    cases = [
        (["--budget", "params=1K"], "smallest"),
        (["--teacher", str(teacher["mlm"])], "is not a sequence classifier"),
        (["--corpus", str(real_data)], "vocabulary"),
        (["--budget", "size=3"], "unknown part"),
        (["--latency-threads", "0"], "--latency-threads must be positive"),
    ]
    for extra, message in cases:
        out = tmp_path / f"out{len(extra)}{message[:3]}"
        rc = main(_argv(teacher, out, *extra))
        err = capsys.readouterr().err
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (extra, err)
        if message != "smallest":  # refused by a check before any stage: nothing is left behind
            assert not out.exists(), extra


def test_another_runs_settings_are_refused(compressed, teacher, capsys):
    capsys.readouterr()
    assert main(_argv(teacher, compressed, "--bits", "4")) == 2
    assert "bits" in capsys.readouterr().err


def test_without_the_pretrained_model_the_fine_tuned_backbone_drives(teacher, tmp_path, capsys):
    """A teacher whose results.json is gone: its backbone drives NAS and general distillation, the search
    scores students by hidden-state distance (the backbone has no trained MLM head)."""
    alone = tmp_path / "teacher"
    shutil.copytree(teacher["teacher"], alone)
    (alone / "results.json").unlink()
    assert main(_argv(teacher, tmp_path / "aug", "--teacher", str(alone), "--augment", "2")) == 2
    assert "--teacher-pretrained" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(_argv(teacher, out, "--teacher", str(alone), "--no-baseline")) == 0
    assert "its fine-tuned backbone drives" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    student = report["students"]["0.7x"]
    assert student["search_score"] == "hidden" and student["search_loss"] >= 0 and student["mlm_accuracy"] is None
    assert report["teacher"]["teacher_mlm_head"] is False and (out / "0.7x" / "model.onnx").is_file()
