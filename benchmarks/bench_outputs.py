"""The cost of the distillation outputs, and that the default path kept its speed.

Times one forward pass (eval mode, no grad) of ``LvBertModel`` (size small, arch ``bert``,
batch x sequence 32 x 128 by default, a padded batch) in four variants, interleaved round
by round so that other load hits them alike:

- ``before``: the code of an older checkout (``--before DIR``, e.g. a git worktree of the
  commit before the outputs were added), default outputs;
- ``now``: this checkout, default outputs (SDPA);
- ``now + hidden states``: ``output_hidden_states=True``;
- ``now + attentions``: ``output_attentions=True`` (the A slots computed without SDPA to
  return the pre-softmax scores).

Each variant runs in its own process (so two versions of lvbert never meet); the median
over rounds is reported with the matmul peak measured in the same run. Writes
``benchmarks/results/outputs.json``.

    git worktree add /tmp/lvbert-before <commit>
    .venv/bin/python benchmarks/bench_outputs.py --before /tmp/lvbert-before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "outputs.json"

_TIMER = r"""
import json, sys, time, torch
import lvbert
from lvbert.modeling_lvbert import LvBertConfig, LvBertModel
size, batch, seq, reps, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(0)
model = LvBertModel(LvBertConfig.from_size(size, arch="bert")).eval()
ids = torch.randint(5, 30000, (batch, seq)); mask = torch.ones_like(ids); mask[::2, seq * 3 // 4:] = 0
kw = {"hidden": {"output_hidden_states": True}, "attentions": {"output_attentions": True}}.get(mode, {})
times = []
with torch.no_grad():
    for i in range(reps + 1):
        t0 = time.perf_counter(); model(input_ids=ids, attention_mask=mask, **kw); t = time.perf_counter() - t0
        if i: times.append(t)
print(json.dumps({"ms": [1000 * t for t in times], "lvbert": lvbert.__file__}))
"""



def run_variant(path: Path, args, mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", _TIMER, args.size, str(args.batch), str(args.seq_len), str(args.reps), mode],
                         capture_output=True, text=True, env=env, cwd=path, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="an older lvbert checkout to compare the default path with")
    ap.add_argument("--size", default="small")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3, help="timed forwards per process")
    ap.add_argument("--rounds", type=int, default=4, help="processes per variant, interleaved")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from _machine import machine_info, matmul_peak

    variants = {"now": (ROOT, "default"), "now + hidden states": (ROOT, "hidden"), "now + attentions": (ROOT, "attentions")}
    if args.before:
        variants = {"before": (args.before.resolve(), "default"), **variants}
    times: dict[str, list[float]] = {k: [] for k in variants}
    where = {}
    for _ in range(args.rounds):
        for name, (path, mode) in variants.items():
            r = run_variant(path, args, mode)
            times[name] += r["ms"]
            where[name] = r["lvbert"]
    peak = matmul_peak()
    result = {
        "machine": machine_info(),
        "matmul_peak_tflops_fp32_1024": round(peak, 3),
        "settings": {"size": args.size, "arch": "bert", "batch": args.batch, "seq_len": args.seq_len,
                     "reps": args.reps, "rounds": args.rounds},  # fmt: skip
        "median_ms": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "min_ms": {k: round(min(v), 2) for k, v in times.items()},
        "code": where,
    }
    base = result["median_ms"]["now"]
    result["ratio_to_now"] = {k: round(v / base, 3) for k, v in result["median_ms"].items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| variant | median ms | min ms | vs now |\n|---|---:|---:|---:|")
    for k in times:
        print(f"| {k} | {result['median_ms'][k]} | {result['min_ms'][k]} | {result['ratio_to_now'][k]:.3f}x |")
    print(f"matmul peak (fp32, 1024^3): {peak:.3f} TFLOP/s; wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
