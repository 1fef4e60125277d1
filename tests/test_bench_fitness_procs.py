"""benchmarks/bench_fitness_procs.py runs end to end (``--quick``): two gloo processes split the
candidates through ``distributed_fitness`` and give every candidate the fitness one process gives it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_compares_one_process_with_two(tmp_path):
    out = tmp_path / "procs.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_fitness_procs.py"), "--quick",
                           "--dtypes", "float32", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    row = result["results"]["float32"]
    assert row["one_process"]["threads"] == 2 and row["processes"]["processes"] == 2
    assert row["one_process"]["candidates_per_second"] > 0 and row["processes"]["candidates_per_second"] > 0
    # the same archs on the same weights: a thread count may change rounding and so flip a near-tie among
    # the ~300 masked positions, not more (a wrong split or gather gives another arch's fitness)
    assert row["max_abs_fitness_diff"] < 0.02
    assert result["machine"]["cpu_capability"]["isa"]
