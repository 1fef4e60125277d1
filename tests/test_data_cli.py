"""The data commands end to end through ``lvbert.cli.main`` (exit codes, one-line errors)."""

from __future__ import annotations

import json

from fixtures_data import make_fake_archives, tiny_corpus  # noqa: F401 (pytest fixtures)
from lvbert.cli import main


def test_fetch_train_prepare(tmp_path, tiny_corpus, capsys):
    archives = make_fake_archives(tmp_path / "archives")
    assert main(["data", "fetch", "demo", "--cache", str(tmp_path / "cache"), "--archives", str(archives)]) == 0
    assert "pretrain/" in capsys.readouterr().out
    tok = tmp_path / "tok"
    assert main(["tokenizer", "train", "--corpus", str(tiny_corpus), "--vocab-size", "150", "--out", str(tok)]) == 0
    out = tmp_path / "data"
    assert main(["data", "prepare", "--corpus", str(tiny_corpus), "--tokenizer", str(tok), "--seq-len", "32",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "valid" in printed
    assert json.loads((out / "manifest.json").read_text())["seq_len"] == 32


def test_errors_are_one_line_exit_2(tmp_path, tiny_corpus, capsys):
    assert main(["data", "prepare", "--corpus", str(tmp_path / "none"), "--tokenizer", "t", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lvbert: error:") and err.count("\n") == 1
    assert main(["data", "prepare", "--corpus", str(tiny_corpus), "--tokenizer", "t", "--out", str(tmp_path / "o"),
                 "--seq-len", "1024"]) == 2
    assert "positions" in capsys.readouterr().err
    assert main(["data", "fetch", "demo", "--cache", str(tmp_path), "--archives", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "o").exists()
