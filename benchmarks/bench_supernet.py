"""Supernet training cost: per-step overhead against the extracted standalone model,
training throughput at tiny and small size, and peak memory against the largest
standalone model.

    .venv/bin/python benchmarks/bench_supernet.py              # batch 32 x 128, the full run
    .venv/bin/python benchmarks/bench_supernet.py --quick      # smoke test: tiny batches, prints only

Every step is one optimizer step as the training loop does it: ``mlm_objective``
(vocabulary logits only at the masked positions) under fp32 or bf16 autocast,
backward, gradient clipping at 1.0, AdamW with the recipe's parameter groups
(``build_optimizer``), all in train mode with dropout. Batches are synthetic: random
token ids, every sequence full length (no padding), 15% of the positions carrying
labels. Three measurements:

1. **overhead**: for several architectures (``bert``, ``lv-bert-small``, two seeded
   random ones) the supernet on that path and ``supernet.extract(arch)`` (a plain
   ``LvBertForMaskedLM``, its own optimizer) train on the same batch, steps
   interleaved (the order alternates each repetition) so that other load on the
   shared machine hits both alike; the median step of each is compared. The
   supernet keeps one optimizer over all archs, as in training.
2. **throughput**: supernet training with a fresh uniformly sampled architecture
   per step (the same sequence for fp32 and bf16, whose steps alternate), tokens/s =
   tokens / mean step time (the mean, not the median: per-arch costs differ and
   training pays their average).
3. **memory**: each measurement in a fresh Python process: peak resident set size
   (``VmHWM``, i.e. ``ru_maxrss`` of this process alone) after a few training steps minus
   the peak right after the imports.
   The supernet first trains the all-C, all-A and all-F paths (so every sub-layer
   has its optimizer state, as after any real run), then steps on all-F; the
   reference is the standalone all-F model (the largest in the space).

Writes ``benchmarks/results/supernet.json`` (not with ``--quick``) and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from lvbert.arch import get_size, parse_arch  # noqa: E402
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM  # noqa: E402
from lvbert.objectives import mlm_objective  # noqa: E402
from lvbert.supernet import LvBertSupernet  # noqa: E402
from lvbert.training.optim import build_optimizer  # noqa: E402

from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results" / "supernet.json"
TARGET_OVERHEAD = 1.05


def make_batch(batch: int, seq: int, vocab: int, seed: int = 0) -> dict:
    """Random ids (no padding), 15% of positions labelled with their own id."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    chosen = torch.rand(batch, seq, generator=g) < 0.15
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def autocast(dtype: str):
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_step(model, optimizer, batch: dict, dtype: str):
    """``step(arch)`` runs one optimizer step of ``model`` (``arch`` None for a plain model)."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step(arch: str | None = None) -> None:
        with autocast(dtype):
            out = mlm_objective(model, batch, arch=arch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def new_supernet(size: str, seed: int = 0) -> LvBertSupernet:
    torch.manual_seed(seed)
    return LvBertSupernet.from_size(size).train()


def sample_arch(rng: random.Random, allowed: list[str]) -> str:
    return "".join(rng.choice(types) for types in allowed)


# ----------------------------------------------------------------------------- 1. overhead


def measure_overhead(size: str, archs: dict, batch: dict, dtype: str, steps: int, warmup: int) -> list[dict]:
    supernet = new_supernet(size)
    super_opt = build_optimizer(supernet, lr=1e-4)
    super_step = make_step(supernet, super_opt, batch, dtype)
    rows = []
    for name, arch in archs.items():
        arch = supernet.check_arch(arch)
        plain = supernet.extract(arch).train()
        plain_step = make_step(plain, build_optimizer(plain, lr=1e-4), batch, dtype)
        fns = {"supernet": lambda arch=arch: super_step(arch), "standalone": plain_step}
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        times = {k: [] for k in fns}
        for rep in range(steps):
            order = list(fns) if rep % 2 == 0 else list(fns)[::-1]
            for k in order:
                t0 = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t0)
        s, p = statistics.median(times["supernet"]), statistics.median(times["standalone"])
        rows.append({"arch_name": name, "arch": arch, "dtype": dtype, "supernet_s": round(s, 4),
                     "standalone_s": round(p, 4), "overhead": round(s / p, 3)})
    return rows


# ----------------------------------------------------------------------------- 2. throughput


def measure_throughput(size: str, batch_size: int, seq: int, dtypes: list[str], steps: int, warmup: int, seed: int = 0) -> list[dict]:
    supernet = new_supernet(size)
    batch = make_batch(batch_size, seq, supernet.config.vocab_size, seed)
    tokens = batch_size * seq
    optimizer = build_optimizer(supernet, lr=1e-4)
    steps_by_dtype = {d: make_step(supernet, optimizer, batch, d) for d in dtypes}
    rng = random.Random(f"{seed}/bench-archs")
    for _ in range(warmup):
        arch = sample_arch(rng, supernet.allowed)
        for fn in steps_by_dtype.values():
            fn(arch)
    times = {d: [] for d in dtypes}
    for rep in range(steps):
        arch = sample_arch(rng, supernet.allowed)  # the same arch for every dtype
        order = dtypes if rep % 2 == 0 else dtypes[::-1]
        for d in order:
            t0 = time.perf_counter()
            steps_by_dtype[d](arch)
            times[d].append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in supernet.parameters())
    rows = []
    for d in dtypes:
        mean = statistics.fmean(times[d])
        rows.append({"size": size, "dtype": d, "batch": batch_size, "seq_len": seq, "params": n_params,
                     "mean_s_per_step": round(mean, 4), "median_s_per_step": round(statistics.median(times[d]), 4),
                     "tokens_per_s": round(tokens / mean)})
    return rows


# ----------------------------------------------------------------------------- 3. memory


def peak_rss_kb() -> int:
    """This process's peak resident set size. ``VmHWM`` belongs to the address space, so
    it starts afresh at exec; ``ru_maxrss`` (the fallback off Linux) keeps the peak of the
    process that spawned us when that one was larger."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_worker(spec: dict) -> dict:
    """Runs in a fresh process: peak RSS growth of training one model (see the module docstring)."""
    torch.manual_seed(0)
    base_kb = peak_rss_kb()  # peak after the imports
    is_super = spec["kind"] == "supernet"
    if is_super:
        model = LvBertSupernet.from_size(spec["size"]).train()
        n = model.num_slots
        warm_archs = ["C" * n, "A" * n]
    else:  # built directly, so that the peak never holds a supernet
        model = LvBertForMaskedLM(LvBertConfig.from_size(spec["size"], arch="F" * get_size(spec["size"]).num_slots)).train()
        n, warm_archs = model.config.num_slots, []
    all_f = "F" * n
    batch = make_batch(spec["batch"], spec["seq_len"], model.config.vocab_size)
    step = make_step(model, build_optimizer(model, lr=1e-4), batch, spec["dtype"])
    for arch in warm_archs:
        step(arch)
    for _ in range(spec["steps"]):
        step(all_f if is_super else None)
    peak_kb = peak_rss_kb()
    params = sum(p.numel() for p in model.parameters())
    return {"model": spec["kind"], "arch": all_f, "params": params,
            "weights_and_adam_mb": round(params * 4 * 3 / 2**20, 1),
            "peak_rss_delta_mb": round((peak_kb - base_kb) / 1024, 1)}


def measure_memory(size: str, batch: int, seq: int, dtype: str, steps: int) -> list[dict]:
    rows = []
    for kind in ("supernet", "standalone"):
        spec = {"kind": kind, "size": size, "batch": batch, "seq_len": seq, "dtype": dtype, "steps": steps}
        proc = subprocess.run([sys.executable, __file__, "--memory-worker", json.dumps(spec)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"memory worker {kind} failed:\n{proc.stderr[-2000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"size": size, "dtype": dtype, **row})
    ref = rows[1]["peak_rss_delta_mb"]
    for r in rows:
        r["vs_standalone"] = round(r["peak_rss_delta_mb"] / ref, 2) if ref > 0 else None
    return rows


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant in the overhead and small-size runs")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--overhead-size", default="small")
    p.add_argument("--overhead-dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--sizes", default="tiny,small", help="sizes of the throughput run")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--skip", default="", help="comma list of parts to skip: overhead,throughput,memory")
    p.add_argument("--quick", action="store_true", help="smoke test: batch 4 x 32, 2 steps, 2 archs; prints only")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.memory_worker:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))))
        return 0
    if args.quick:
        args.batch, args.seq_len, args.steps, args.warmup, args.no_write = 4, 32, 2, 1, True
    skip = set(filter(None, args.skip.split(",")))
    dtypes = args.dtypes.split(",")

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    t_start = time.time()
    result = {
        "benchmark": "LvBertSupernet training: overhead vs extracted model, throughput, peak memory",
        "config": {"batch": args.batch, "seq_len": args.seq_len, "steps": args.steps, "warmup": args.warmup,
                   "quick": args.quick, "data": "synthetic random ids, no padding, 15% positions labelled",
                   "step": "mlm_objective (masked-only logits), backward, clip 1.0, AdamW (build_optimizer)"},
        "machine": info,
    }
    if "overhead" not in skip:
        n = 24
        rng = random.Random("bench-supernet")
        archs = {"bert": parse_arch("bert", num_slots=n), "lv-bert-small": parse_arch("lv-bert-small", num_slots=n)}
        for i in range(2):
            archs[f"random {i + 1}"] = "".join(rng.choice("CAF") for _ in range(n))
        if args.quick:
            archs = dict(list(archs.items())[:2])
        batch = make_batch(args.batch, args.seq_len, 30522 if args.overhead_size != "tiny" else 4096)
        rows = measure_overhead(args.overhead_size, archs, batch, args.overhead_dtype, args.steps, args.warmup)
        ratios = [r["overhead"] for r in rows]
        result["overhead"] = {"size": args.overhead_size, "rows": rows, "target": TARGET_OVERHEAD,
                              "geomean": round(statistics.geometric_mean(ratios), 3), "max": max(ratios)}
    if "throughput" not in skip:
        rows = []
        for size in args.sizes.split(","):
            # tiny steps are ~10x cheaper: more of them for a stable mean
            steps = args.steps * (4 if size == "tiny" else 1)
            rows += measure_throughput(size, args.batch, args.seq_len, dtypes, steps, args.warmup)
        result["throughput"] = rows
    if "memory" not in skip:
        result["memory"] = measure_memory(args.overhead_size, args.batch, args.seq_len, "fp32", steps=2)
    info["load_average_at_end"] = os.getloadavg()[0]
    info["wall_s"] = round(time.time() - t_start, 1)

    print(markdown(result))
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


def markdown(result: dict) -> str:
    c, m = result["config"], result["machine"]
    lines = [
        f"Batch {c['batch']} x {c['seq_len']}{' (--quick)' if c['quick'] else ''}; {m['cpu']}, {m['cores']} cores, "
        f"torch {m['torch']}; load average {m['load_average_at_start']:.1f} -> {m['load_average_at_end']:.1f}.",
    ]
    if "overhead" in result:
        o = result["overhead"]
        lines += ["", f"Overhead, size {o['size']}, median step (target <= {o['target']:.2f}x):", "",
                  "| arch | dtype | supernet s/step | standalone s/step | overhead |", "|---|---|---:|---:|---:|"]
        for r in o["rows"]:
            lines.append(f"| {r['arch_name']} `{r['arch']}` | {r['dtype']} | {r['supernet_s']:.3f} | "
                         f"{r['standalone_s']:.3f} | {r['overhead']:.3f}x |")
        lines.append(f"| geometric mean | | | | {o['geomean']:.3f}x |")
    if "throughput" in result:
        lines += ["", "Supernet training, a uniformly sampled arch per step:", "",
                  "| size | dtype | parameters | mean s/step | tokens/s |", "|---|---|---:|---:|---:|"]
        for r in result["throughput"]:
            lines.append(f"| {r['size']} | {r['dtype']} | {r['params']:,} | {r['mean_s_per_step']:.3f} | {r['tokens_per_s']:,} |")
    if "memory" in result:
        lines += ["", "Peak memory of training (fresh process each, fp32; all-F path):", "",
                  "| model | size | parameters | weights + AdamW state MB | peak RSS growth MB | vs standalone |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in result["memory"]:
            lines.append(f"| {r['model']} | {r['size']} | {r['params']:,} | {r['weights_and_adam_mb']:.0f} | "
                         f"{r['peak_rss_delta_mb']:.0f} | {r['vs_standalone'] or float('nan'):.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
