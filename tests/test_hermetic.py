"""The suite is hermetic: it never reads or writes the user's real caches (issue: a fresh clone failed
because a test read the demo data from the developer's ``~/.cache/lvbert``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lvbert.cli import main


def _state(path: Path):
    if not path.exists():
        return None
    return sorted((str(p.relative_to(path)), p.stat().st_mtime_ns) for p in [path, *path.rglob("*")])


def test_caches_point_at_temporary_folders(real_lvbert_home):
    home = Path(os.environ["LVBERT_HOME"]).resolve()
    assert home != real_lvbert_home.resolve() and real_lvbert_home.resolve() not in home.parents
    root = home.parent  # the suite's temporary cache root
    for var in ("HF_HOME", "HF_DATASETS_CACHE", "XDG_CACHE_HOME"):
        assert root in Path(os.environ[var]).resolve().parents, var
    import huggingface_hub.constants as hub

    assert "lvbert-tests-" in hub.HF_HOME  # read when the library was imported: the variable was set before


def test_cli_reading_and_writing_the_cache_leaves_the_real_one_alone(real_lvbert_home, demo_home, tmp_path, capsys):
    before = _state(real_lvbert_home)
    # demo_home wrote the demo data through `lvbert data fetch demo`; a command reads it back by task name
    assert (demo_home / "tasks" / "polarity" / "train.tsv").is_file()
    assert main(["finetune", "--model", str(tmp_path / "missing"), "--task", "polarity", "--out", str(tmp_path / "o")]) == 2
    assert "demo task files not found" not in capsys.readouterr().err
    # a subprocess sees the same redirected cache
    code = "from lvbert.data.demo import default_cache; print(default_cache())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).resolve() == Path(os.environ["LVBERT_HOME"]).resolve()
    assert _state(real_lvbert_home) == before
