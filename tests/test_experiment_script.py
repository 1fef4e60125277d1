"""experiments/paper_comparisons.py: its statistics and its resumable job schedule (the full run is slow)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pc():
    spec = importlib.util.spec_from_file_location("paper_comparisons", ROOT / "experiments" / "paper_comparisons.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_mean_interval_is_the_t_interval(pc):
    s = pc.mean_interval([0.10, 0.12, 0.14])
    assert s["mean"] == pytest.approx(0.12) and s["sd"] == pytest.approx(0.02)
    half = 4.302652729749464 * 0.02 / math.sqrt(3)  # t(0.975, 2)
    assert s["ci95"] == pytest.approx([0.12 - half, 0.12 + half])
    assert math.isnan(pc.mean_interval([0.5])["ci95"][0])


def test_bootstrap_interval_brackets_tau(pc):
    x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    y = [0.15, 0.1, 0.35, 0.3, 0.55, 0.5, 0.75, 0.7]
    from lvbert.tasks.metrics import kendall_tau

    tau = kendall_tau(x, y)
    lo, hi = pc.bootstrap_tau(x, y, n=500)
    assert -1 <= lo <= tau <= hi <= 1 and lo < hi
    assert pc.bootstrap_tau(x, y, n=500) == [lo, hi]  # seeded


def _write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    log = Path(path).parent / "calls.txt"
    log.write_text((log.read_text() if log.exists() else "") + text + "\n")
    Path(path).write_text(json.dumps({"arch": text}))


def test_jobs_run_after_their_dependencies_and_resume(pc, tmp_path):
    out = tmp_path / "run"

    def jobs():
        a = pc.Job("a", _write, (str(out / "a.json"), "A"), (), out / "a.json")
        # b reads a's result when it starts, as a searched arch is read from its search
        b = pc.Job("b", _write, (str(out / "b.json"), lambda: json.loads((out / "a.json").read_text())["arch"] + "B"),
                   ("a",), out / "b.json")  # fmt: skip
        c = pc.Job("c", _write, (str(out / "c.json"), "C"), (), out / "c.json")
        return [b, a, c]  # b is listed first but waits for a

    pc.run_jobs(jobs(), workers=1, threads=1)
    assert (out / "calls.txt").read_text().split() == ["A", "AB", "C"]
    (out / "c.json").unlink()  # a stopped run: only what has no result file runs again
    pc.run_jobs(jobs(), workers=1, threads=1)
    assert (out / "calls.txt").read_text().split() == ["A", "AB", "C", "C"]
    with pytest.raises(RuntimeError, match="never finish"):
        pc.run_jobs([pc.Job("d", _write, (str(out / "d.json"), "D"), ("missing",), out / "d.json")], 1, 1)
