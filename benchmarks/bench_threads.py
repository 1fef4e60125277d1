"""Training-step time under load: torch's default threading against the alternatives.

A tiny LV-BERT training step (``lv-bert-small`` at the tiny size, batch 32 x 64, AdamW) is timed
in a fresh process for each setting, because OpenMP reads its settings when torch loads:

- ``torch default``: what a plain ``import torch`` gives (all cores, OpenMP's spinning waits);
- ``1 thread``: ``OMP_NUM_THREADS=1``;
- ``2 threads, passive``: ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep instead of spinning);
- ``2 threads, spin N``: ``GOMP_SPINCOUNT=N`` (GNU OpenMP spins N times before sleeping; 300,000
  by default);
- ``lvbert default``: what the ``lvbert`` command sets up when the user has set nothing: the short
  spin of ``import lvbert`` and the thread governor (``lvbert/threads.py``), ticked after every
  step as the training loop does.

under three conditions: a quiet machine, a busy Python loop on the side, and a competing
torch job (another process training at 2 threads, the usual case of two runs or a test
suite beside a run). Median step time over ``--steps`` steps after a warm-up. Writes
``benchmarks/results/threads.json`` and prints a table.

    .venv/bin/python benchmarks/bench_threads.py [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "threads.json"

_STEP = r"""
import json, sys, time
import lvbert  # noqa: F401  (lvbert's own threading defaults apply here when the variant keeps them)
import torch
from lvbert import threads as governor
if governor.wanted_by_default(None):  # what the lvbert command does without --threads / OMP_NUM_THREADS
    governor.enable()
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM
steps = int(sys.argv[1])
torch.manual_seed(0)
model = LvBertForMaskedLM(LvBertConfig.from_size("tiny", arch="lv-bert-small"))
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(5, 4096, (32, 64)); labels = torch.full_like(ids, -100); sel = torch.rand(ids.shape) < 0.15
labels[sel] = ids[sel]
times, counts = [], []
for i in range(steps + 3):
    t0 = time.perf_counter()
    model(input_ids=ids, labels=labels).loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    if i >= 3: times.append(time.perf_counter() - t0); counts.append(torch.get_num_threads())
    governor.tick()  # as the training loop does after every step
print(json.dumps({"ms": [1000 * t for t in times], "threads": torch.get_num_threads(), "threads_per_step": counts,
                  "wait_policy": __import__("os").environ.get("OMP_WAIT_POLICY"),
                  "spin_count": __import__("os").environ.get("GOMP_SPINCOUNT")}))
"""

_COMPETITOR = r"""
import torch
torch.set_num_threads(2)
a = torch.randn(512, 512, requires_grad=True)
while True:
    (a @ a).sum().backward()
"""

_BUSY = "while True: pass"


def variants() -> dict[str, dict]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "LVBERT_THREAD"))}
    return {
        "torch default": {**keep, "LVBERT_THREAD_DEFAULTS": "0"},
        "1 thread": {**keep, "LVBERT_THREAD_DEFAULTS": "0", "OMP_NUM_THREADS": "1"},
        "2 threads, passive": {**keep, "LVBERT_THREAD_DEFAULTS": "0", "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
        # libgomp spins GOMP_SPINCOUNT iterations before it sleeps (300,000 by default, 0 when passive)
        "2 threads, spin 1,000": {**keep, "LVBERT_THREAD_DEFAULTS": "0", "OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "1000"},
        "2 threads, spin 10,000": {**keep, "LVBERT_THREAD_DEFAULTS": "0", "OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "10000"},
        "lvbert default": dict(keep),
    }


def run_step(env: dict, steps: int) -> dict:
    env = {**env, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _STEP, str(steps)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from _machine import machine_info

    conditions = {"quiet": None, "busy Python loop": _BUSY, "competing torch job (2 threads)": _COMPETITOR}
    table: dict[str, dict] = {}
    for cond, code in conditions.items():
        other = None
        if code is not None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
            other = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
            time.sleep(2)
        try:
            for name, env in variants().items():
                r = run_step(env, args.steps)
                table.setdefault(name, {})[cond] = {"median_ms": round(statistics.median(r["ms"]), 1),
                                                    "threads": r["threads"], "wait_policy": r["wait_policy"]}  # fmt: skip
                table[name][cond]["spin_count"] = r.get("spin_count")
                table[name][cond]["threads_per_step"] = r.get("threads_per_step")
                print(f"{cond:<34} {name:<22} {table[name][cond]['median_ms']:>8.1f} ms "
                      f"({r['threads']} threads, wait {r['wait_policy']}, spin {r.get('spin_count')})", flush=True)  # fmt: skip
        finally:
            if other is not None:
                os.killpg(other.pid, signal.SIGKILL)
                other.wait()
    quiet_1 = table["1 thread"]["quiet"]["median_ms"]
    result = {"machine": machine_info(), "steps": args.steps, "table": table,
              "lvbert_default_under_competition_vs_quiet_1_thread": round(
                  table["lvbert default"]["competing torch job (2 threads)"]["median_ms"] / quiet_1, 2),
              "lvbert_default_quiet_vs_torch_default_quiet": round(
                  table["lvbert default"]["quiet"]["median_ms"] / table["torch default"]["quiet"]["median_ms"], 2)}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    conds = list(conditions)
    print("\n| setting | " + " | ".join(conds) + " |\n|---|" + "---:|" * len(conds))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]['median_ms']} ms" for c in conds) + " |")
    print(f"lvbert default under a competing job / quiet 1 thread: "
          f"{result['lvbert_default_under_competition_vs_quiet_1_thread']}x (target <= 1.3x); quiet, lvbert / torch "
          f"default: {result['lvbert_default_quiet_vs_torch_default_quiet']}x; wrote {RESULTS}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
