"""Speed of the architecture search: candidates evaluated per second, full-search time estimates,
and how well the per-type latency table predicts whole-model latency.

    .venv/bin/python benchmarks/bench_search.py            # 256 x 128 validation tokens, small and tiny
    .venv/bin/python benchmarks/bench_search.py --quick    # smoke run: 32 sequences, 2 candidates, fewer repeats

What is measured, and how:
- **candidates per second**: ``SupernetFitness`` (the search's fitness) on a randomly initialised
  supernet (speed does not depend on the weights) over ``--sequences`` sequences of ``--seq-len``
  *synthetic* token ids with 15% of the positions masked (speed does not depend on the text
  either), fp32 and bf16 autocast. Each timed candidate is a new random arch, as in a search;
  the median over ``--candidates`` is reported after one warm-up candidate. Target: >= 1/s at small.
- **search overhead**: ``run_search`` at the default settings (population 50, 20 generations,
  1,000 candidates) with an instant fitness, writing the history, best.json, top.md and plots.
- **full search time** (derived, not measured end to end): evaluations x measured seconds per
  candidate + measured overhead, at tiny and small, fp32 and bf16.
- **latency table**: ``LatencyTable.measure`` (stacks of C, A, F sub-layers and the embeddings, batch 1)
  against ``measure_model`` of six whole models; mean absolute relative error and Pearson.

Writes ``benchmarks/results/search.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lvbert.arch import LV_BERT_SMALL, get_size  # noqa: E402
from lvbert.search import EvolutionConfig, run_search  # noqa: E402
from lvbert.search.latency import LatencyTable, latency_report  # noqa: E402
from lvbert.search.fitness import SupernetFitness  # noqa: E402
from lvbert.space import SearchSpace  # noqa: E402
from lvbert.supernet import LvBertSupernet  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "search.json"
TARGET_PER_SECOND = 1.0


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1min": os.getloadavg()[0],
    }


def synthetic_batch(n: int, length: int, vocab: int, seed: int = 0) -> dict:
    """Random token ids, 15% of the positions masked ([MASK] = 4, labels the original ids)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, length), generator=g)
    chosen = torch.rand(n, length, generator=g) < 0.15
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return {
        "input_ids": ids.masked_fill(chosen, 4),
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
        "labels": labels,
    }


def time_candidates(size: str, batch: dict, device: torch.device, bf16: bool, candidates: int, batch_size: int) -> dict:
    """Median seconds per candidate of SupernetFitness over new random archs (one warm-up first)."""
    torch.manual_seed(0)
    net = LvBertSupernet.from_size(size).to(device)
    space = SearchSpace(size=size)
    rng = random.Random(0)
    fitness = SupernetFitness(net, {k: v.to(device) for k, v in batch.items()}, batch_size=batch_size, bf16=bf16)
    fitness([space.sample(rng)])  # warm-up: allocator, kernels
    times = []
    for _ in range(candidates):
        arch = space.sample(rng)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fitness([arch])
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"seconds_per_candidate": median, "candidates_per_second": 1.0 / median, "timed": len(times)}


def search_overhead(size: str) -> dict:
    """Seconds of a default search (1,000 candidates) with an instant fitness, results written."""
    space = SearchSpace(size=size, max_params=13_500_000 if size == "small" else None)

    def instant(archs):
        return [{"fitness": (hash(a) % 1000) / 1000, "loss": 1.0} for a in archs]

    config = EvolutionConfig()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_search(space, instant, config, Path(tmp) / "s", progress=False)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "evaluations": len(result.history), "settings": config.to_dict()}


def latency_accuracy(size: str, repeats: int) -> dict:
    table = LatencyTable.measure(size, batch_size=1, seq_len=128, repeats=repeats)
    n = get_size(size).num_slots
    rng = random.Random(1)
    archs = {
        "bert": "AF" * (n // 2),
        "lv-bert-small": LV_BERT_SMALL,
        "all A": "A" * n,
        "all F": "F" * n,
        "all C": "C" * n,
        "random": "".join(rng.choice("CAF") for _ in range(n)),
    }
    report = latency_report(table, list(archs.values()), repeats=repeats)
    for row, name in zip(report["archs"], archs):
        row["name"] = name
    report["table_ms"] = table.costs()
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 32 sequences, 2 candidates, 3 latency repeats")
    p.add_argument("--sequences", type=int, default=256, help="validation sequences (default 256)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default 128)")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per forward pass (default 64)")
    p.add_argument("--candidates", type=int, default=5, help="timed candidates per setting (default 5)")
    p.add_argument("--evaluations", type=int, default=1000, help="evaluations of the estimated full search (default 1000)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's; on a shared machine 1 can be faster)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(RESULTS), help=f"results file (default {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS})")
    args = p.parse_args(argv)
    if args.quick:
        args.sequences, args.candidates = 32, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, "
          f"load {info['load_average_1min']:.1f}{', GPU ' + info['cuda'] if info['cuda'] else ''}", file=sys.stderr)  # fmt: skip

    rows = []
    for size in ("small", "tiny"):
        batch = synthetic_batch(args.sequences, args.seq_len, get_size(size).vocab_size)
        for dtype in ("float32", "bfloat16"):
            print(f"timing {size} {dtype} ...", file=sys.stderr, flush=True)
            r = time_candidates(size, batch, device, dtype == "bfloat16", args.candidates, args.batch_size)
            # per 256 sequences: measured directly, or scaled linearly from a --quick run
            scale = 256 / args.sequences
            per_256 = r["seconds_per_candidate"] * scale
            rows.append({"size": size, "dtype": dtype, **r, "seconds_per_candidate_256": per_256,
                         "scaled_from_sequences": args.sequences if scale != 1 else None})  # fmt: skip
    print("timing search overhead ...", file=sys.stderr, flush=True)
    overhead = search_overhead("small")
    for r in rows:
        r["full_search_seconds_estimate"] = args.evaluations * r["seconds_per_candidate_256"] + overhead["seconds"]
    print("latency table accuracy ...", file=sys.stderr, flush=True)
    latency = latency_accuracy("small", repeats=3 if args.quick else 20)

    result = {
        "benchmark": "search",
        "quick": args.quick,
        "machine": info,
        "device": str(device),
        "setup": {
            "sequences": args.sequences,
            "seq_len": args.seq_len,
            "batch_size": args.batch_size,
            "tokens": "synthetic random ids, 15% masked (speed does not depend on the text)",
            "supernet": "randomly initialised, 24 slots of C/A/F (speed does not depend on the weights)",
            "target_candidates_per_second_small": TARGET_PER_SECOND,
        },
        "fitness_speed": rows,
        "search_overhead": overhead,
        "full_search_estimate": (
            f"derived: {args.evaluations} evaluations x measured seconds per candidate (256 sequences) "
            f"+ measured search overhead ({overhead['seconds']:.1f}s); not timed end to end"
        ),
        "latency_table": latency,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwritten to {out}")
    return 0


def markdown(result: dict) -> str:
    s = result["setup"]
    m = result["machine"]
    lines = [
        f"Search speed on {m['cuda'] or m['cpu']} ({m['torch_threads']} torch threads, load {m['load_average_1min']:.1f}); "
        f"fitness over {s['sequences']} x {s['seq_len']} synthetic tokens, batch {s['batch_size']}"
        + (" (quick: times scaled to 256 sequences)" if result["quick"] else ""),
        "",
        "| size | inference | s / candidate (256 seq) | candidates / s | target >= 1/s | full search, 1,000 evaluations (derived) |",
        "|---|---|---:|---:|:---:|---:|",
    ]
    for r in result["fitness_speed"]:
        per = r["seconds_per_candidate_256"]
        hit = "yes" if 1 / per >= TARGET_PER_SECOND else "no"
        est = r["full_search_seconds_estimate"]
        lines.append(f"| {r['size']} | {r['dtype']} | {per:.3f} | {1 / per:.2f} | {hit if r['size'] == 'small' else '-'} "
                     f"| {est / 60:.1f} min ({est / 3600:.2f} h) |")  # fmt: skip
    o = result["search_overhead"]
    lines += ["", f"Search overhead (1,000 candidates, instant fitness, files and plots written): {o['seconds']:.2f} s.", ""]
    lat = result["latency_table"]
    lines += [
        f"Latency table (small, batch 1 x 128, fp32): mean |relative error| {lat['mean_abs_rel_error'] * 100:.1f}%, "
        f"Pearson {lat['pearson']:.3f}",
        "",
        "| arch | predicted ms | measured ms | error |",
        "|---|---:|---:|---:|",
    ]
    for r in lat["archs"]:
        lines.append(f"| {r['name']} | {r['predicted_ms']:.2f} | {r['measured_ms']:.2f} | {r['rel_error'] * 100:+.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
