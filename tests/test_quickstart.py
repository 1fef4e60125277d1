"""The whole pipeline end to end (profile ``smoke``) on local archives shaped like the demo's."""

from __future__ import annotations

import json

from fixtures_data import make_fake_archives

from lvbert.cli import main


def test_quickstart_runs_every_stage_and_skips_them_again(tmp_path, capsys):
    archives = make_fake_archives(tmp_path / "archives")
    out = tmp_path / "qs"
    argv = ["quickstart", "--profile", "smoke", "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--archives", str(archives), "--device", "cpu"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    names = [m["name"] for m in report["models"]]
    assert names == ["searched", "bert", "random-search"]
    for m in report["models"]:
        assert set(m) >= {"name", "arch", "params", "mlm_accuracy", "task_accuracy", "macs_per_token", "supernet_fitness"}
        assert 0.0 <= m["mlm_accuracy"] <= 1.0 and 0.0 <= m["task_accuracy"] <= 1.0
    assert report["models"][1]["arch"] == "AF" * 12
    md = (out / "report.md").read_text()
    assert "| searched |" in md and "search/evolution/fitness.png" in md
    # baselines beside every MLM accuracy, what the numbers mean, and what the run shows
    unigram = report["baselines"]["unigram_mlm_accuracy"]
    assert 0 < unigram < 1 and f"unigram {unigram:.4f}" in md and "chance 0.50" in md
    assert "What the numbers mean" in md and md.count("**What this run shows.**") == 1 and report["verdict"] in md
    assert (out / "mlm_curves.png").exists() and "mlm_curves.png" in md
    assert (out / "search" / "evolution" / "fitness.png").exists()
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert list(stages) == ["fetch", "tokenizer", "prepare", "supernet", "search", "pretrain", "finetune", "report"]

    capsys.readouterr()
    assert main(argv) == 0  # everything is done: every stage is skipped
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 8
    assert json.loads((out / "stages.json").read_text())["stages"] == stages

    # --with nas: only the NAS-BERT stage runs (the searched model is its teacher), and the report again
    assert main([*argv, "--with", "nas"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 7
    report = json.loads((out / "report.json").read_text())
    teacher_params = report["nas"]["teacher_params"]
    assert len(report["nas"]["targets"]) == 2
    for name, t in report["nas"]["targets"].items():
        assert t["params"] <= int(name) <= teacher_params and (out / "nas" / "search" / t["model"] / "config.json").exists()
    assert report["nas"]["targets"][min(report["nas"]["targets"], key=int)]["params"] < teacher_params
    assert "## NAS-BERT (--with nas)" in (out / "report.md").read_text()
    assert list(json.loads((out / "stages.json").read_text())["stages"]) == [*stages, "nas"]


def test_quickstart_refuses_another_profile_in_the_same_folder(tmp_path, capsys):
    out = tmp_path / "qs"
    out.mkdir()
    (out / "stages.json").write_text(json.dumps({"profile": "cpu", "stages": {}}))
    assert main(["quickstart", "--profile", "smoke", "--out", str(out)]) == 2
    assert "profile 'cpu'" in capsys.readouterr().err
