"""Attention in training on CPU: lvbert's path (two matmuls and a softmax) against PyTorch's
``scaled_dot_product_attention``, forward and backward, fp32, with and without dropout.

    .venv/bin/python benchmarks/bench_attention.py            # tiny and small shapes
    .venv/bin/python benchmarks/bench_attention.py --quick    # fewer repetitions

``AttentionLayer`` takes its own path whenever it trains on CPU (``modeling_lvbert.py``); this
script measures why, at the shapes of the quickstart (tiny: 2 heads of 32, 64 tokens) and of the
paper's small size (4 heads of 64, 128 tokens). Each variant computes the same attention output
from the same q, k, v and back-propagates the same gradient; the variants alternate in rounds
(so that other load hits them alike) and the median of the rounds is reported, with the
square-matmul peak measured in the same run. Writes ``benchmarks/results/attention.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import machine_info, matmul_peak, write_result  # noqa: E402

from lvbert.modeling_lvbert import fast_dropout  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "attention.json"

# (name, batch, heads, tokens, head width)
SHAPES = [("tiny, batch 16", 16, 2, 64, 32), ("tiny, batch 32", 32, 2, 64, 32),
          ("small, batch 8", 8, 4, 128, 64), ("small, batch 32", 32, 4, 128, 64)]  # fmt: skip


def lvbert_path(q, k, v, p: float):
    """What ``AttentionLayer`` computes when training on CPU."""
    s = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
    a = s.softmax(dim=-1)
    if p > 0:
        a = fast_dropout(a, p)
    return torch.matmul(a, v)


def sdpa_path(q, k, v, p: float):
    return F.scaled_dot_product_attention(q, k, v, dropout_p=p)


def time_variants(shape, p: float, reps: int, rounds: int) -> dict:
    _, b, n, length, d = shape
    q, k, v = (torch.randn(b, n, length, d, requires_grad=True) for _ in range(3))
    grad = torch.randn(b, n, length, d)
    variants = {"lvbert": lvbert_path, "sdpa": sdpa_path}
    times = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up
        for _ in range(5):
            fn(q, k, v, p).backward(grad)
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn(q, k, v, p).backward(grad)
            times[name].append((time.perf_counter() - t0) / reps * 1e3)
    ms = {name: statistics.median(t) for name, t in times.items()}
    return {"ms_lvbert": round(ms["lvbert"], 4), "ms_sdpa": round(ms["sdpa"], 4),
            "sdpa_over_lvbert": round(ms["sdpa"] / ms["lvbert"], 3)}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke check)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    reps, rounds = (3, 2) if args.quick else (30, 7)
    result = {"benchmark": "attention", "quick": args.quick, "machine": machine_info(),
              "matmul_peak_tflops_fp32": {"start": matmul_peak()}, "rows": []}  # fmt: skip
    for shape in SHAPES:
        for p in (0.0, 0.1):
            r = time_variants(shape, p, max(1, reps // (4 if "small" in shape[0] else 1)), rounds)
            result["rows"].append({"shape": shape[0], "batch": shape[1], "heads": shape[2], "tokens": shape[3],
                                   "head_width": shape[4], "dropout": p, **r})  # fmt: skip
    result["matmul_peak_tflops_fp32"]["end"] = matmul_peak()
    write_result(args.out, result)
    print("| shape | dropout | lvbert ms | SDPA ms | SDPA / lvbert |\n|---|---:|---:|---:|---:|")
    for r in result["rows"]:
        print(f"| {r['shape']} | {r['dropout']} | {r['ms_lvbert']:.3f} | {r['ms_sdpa']:.3f} | {r['sdpa_over_lvbert']:.2f}x |")
    print(f"fp32 matmul peak {result['matmul_peak_tflops_fp32']} TFLOP/s; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
