"""Speed of the search fitness: the plain path (one supernet forward per arch and chunk, as
``evaluate_mlm``) against ``SupernetFitness`` (embeddings computed once, prefix cache, blocked
MLM head), fp32 and bf16, on two workloads, in one run; plus bf16-vs-fp32 ranking agreement.

    .venv/bin/python benchmarks/bench_fitness.py --threads 2     # default: size small, 256 x 128, a few minutes
    .venv/bin/python benchmarks/bench_fitness.py --quick         # smoke run: 32 sequences, fewer candidates
    .venv/bin/python benchmarks/bench_fitness.py --tau-supernet DIR --tau-data DIR   # also Kendall tau

What is measured, and how:
- **workloads**: (a) ``--independent`` random archs of the space (little shared prefix: only
  what sorting finds); (b) one generation of a real evolution: ``run_search`` (SPOS settings
  scaled to ``--population``: parents = population / 5, half mutants with per-slot probability
  0.1, half uniform crossovers) driven by an instant proxy fitness that rewards a fixed
  random choice per slot, so selection converges as it does in a search; the benchmark
  takes the archs of generation ``--generation`` (children of that generation's parents); with
  ``--warm`` the cache is first filled by the previous generation (untimed), as in the search,
  where it has just been evaluated (cross-call reuse is small: the archs of one call are
  evaluated chunk by chunk, so mostly the last chunk's states survive into the next call).
- **plain path**: ``evaluate_mlm(supernet, valid, batch_size, arch=...)`` per arch (what the
  fitness did before), timed on the first ``--plain-candidates`` archs of each workload.
- **new path**: one ``SupernetFitness(...)(archs)`` call over the whole workload (a fresh
  fitness each time, warmed up by one arch outside the workload, or by the previous generation
  with ``--warm``); ``reused`` is the share of slot passes skipped thanks to the cache.
- **peak**: square matmul TFLOP/s (fp32 and bf16) measured in the same run, at the start and at
  the end (a shared machine's speed varies); efficiency = model FLOP/s of a full evaluation
  (2 x MACs of the encoder + embeddings projection + MLM head at the masked positions) over the
  dtype's peak. With reuse the *effective* FLOP/s can exceed what is executed.
- **Kendall tau** (optional, needs a trained supernet): fitness of ``--tau-candidates`` random
  archs in fp32 and in bf16 on the supernet's data; tau-b between the two rankings.

Synthetic token ids (speed does not depend on the text), a randomly initialised supernet
(speed does not depend on the weights). Writes ``benchmarks/results/fitness.json``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine_info, matmul_peak, write_result  # noqa: E402

from lvbert.arch import count_macs, get_size  # noqa: E402
from lvbert.objectives.mlm import evaluate_mlm  # noqa: E402
from lvbert.search import EvolutionConfig, run_search  # noqa: E402
from lvbert.search.fitness import DEFAULT_CACHE_MB, DEFAULT_HEAD_ROWS, SupernetFitness  # noqa: E402
from lvbert.space import SearchSpace  # noqa: E402
from lvbert.supernet import LvBertSupernet  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fitness.json"
TARGET_PER_SECOND = 1.0


def synthetic_batch(n: int, length: int, vocab: int, seed: int = 0) -> dict:
    """Random token ids, 15% of the positions masked ([MASK] = 4, labels the original ids)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, length), generator=g)
    chosen = torch.rand(n, length, generator=g) < 0.15
    return {
        "input_ids": ids.masked_fill(chosen, 4),
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
        "labels": torch.where(chosen, ids, torch.full_like(ids, -100)),
    }


def evolution_generations(space: SearchSpace, population: int, generations: int, seed: int = 0) -> list[list[str]]:
    """The archs of each generation of a real ``run_search`` driven by an instant proxy fitness."""
    rng = random.Random(seed)
    score = {(i, op): rng.random() for i, ok in enumerate(space._slot_tokens) for op in ok}
    noise = random.Random(seed + 1)
    calls: list[list[str]] = []

    def proxy(archs):
        calls.append(list(archs))
        return [{"fitness": sum(score[(i, t)] for i, t in enumerate(space._check_shape(a))) + noise.random(), "loss": 0.0}
                for a in archs]  # fmt: skip

    parents = max(2, population // 5)
    mutations = population // 2
    cfg = EvolutionConfig(population=population, generations=generations, parents=parents, mutations=mutations,
                          crossovers=population - mutations, mutation_prob=0.1, seed=seed)  # fmt: skip
    run_search(space, proxy, cfg, None, progress=False)
    return calls


def flops_per_candidate(arch: str, size, seq_len: int, tokens: int, masked: int) -> float:
    """2 x multiply-accumulates of one full evaluation: backbone on every token, MLM head on the masked ones."""
    head = size.hidden_size * size.embedding_size + size.embedding_size * size.vocab_size
    return 2.0 * (count_macs(arch, size, seq_len) * tokens + head * masked)


def time_plain(net, batch: dict, archs: list[str], batch_size: int, bf16: bool) -> dict:
    evaluate_mlm(net, batch, batch_size, arch=archs[0], bf16=bf16)  # warm-up: allocator, kernels
    t0 = time.perf_counter()
    for arch in archs:
        evaluate_mlm(net, batch, batch_size, arch=arch, bf16=bf16)
    seconds = time.perf_counter() - t0
    return {"candidates": len(archs), "seconds": seconds, "candidates_per_second": len(archs) / seconds}


def time_new(net, batch: dict, archs: list[str], warm: list[str] | None, batch_size: int, bf16: bool, cache_mb: float,
             head_rows: int, probe: str, compile: bool = False) -> dict:  # fmt: skip
    fit = SupernetFitness(net, batch, batch_size=batch_size, bf16=bf16, cache_mb=cache_mb, head_rows=head_rows,
                          compile=compile)  # fmt: skip
    t0 = time.perf_counter()
    if warm:
        fit(warm)  # the previous generation, as the search has just evaluated it
    else:
        fit.evaluate(probe)  # warm-up (an arch outside the workload): allocator, kernels, embeddings
    warm_seconds = time.perf_counter() - t0  # with compile: the graphs are built here
    before = fit.cache_info()
    t0 = time.perf_counter()
    fit(archs)
    seconds = time.perf_counter() - t0
    info = fit.cache_info()
    computed = info["slots_computed"] - before["slots_computed"]
    reused = info["slots_reused"] - before["slots_reused"]
    return {"candidates": len(archs), "seconds": seconds, "candidates_per_second": len(archs) / seconds,
            "slots_reused_share": reused / max(computed + reused, 1), "cache_bytes": info["bytes"],
            "cache_evictions": info["evictions"], "warm_up_seconds": warm_seconds}  # fmt: skip


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def tau_bf16_vs_fp32(supernet_dir: str, data: str, candidates: int, sequences: int, batch_size: int,
                     compile: bool = False) -> dict:  # fmt: skip
    """Kendall tau between the fp32 and bf16 fitness (and loss) of random archs on a trained supernet;
    with ``compile`` also between the compiled and the eager bf16 fitness."""
    from lvbert.data.masking import MaskingConfig, fixed_mask_validation
    from lvbert.data.packed import open_data
    from lvbert.model_dir import supernet_identity, trained_space

    net = LvBertSupernet.from_pretrained(supernet_dir).eval()
    space = trained_space(Path(supernet_dir))
    mode = supernet_identity(Path(supernet_dir))["mask_mode"]
    valid = fixed_mask_validation(open_data(data), sequences, seed=0, config=MaskingConfig(mode=mode))
    rng = random.Random(0)
    archs: list[str] = []
    while len(archs) < candidates:
        a = space.sample(rng)
        if a not in archs:
            archs.append(a)
    t0 = time.perf_counter()
    fp32 = SupernetFitness(net, valid, batch_size=batch_size)(archs)
    bf16 = SupernetFitness(net, valid, batch_size=batch_size, bf16=True)(archs)
    f32, f16 = [r["fitness"] for r in fp32], [r["fitness"] for r in bf16]
    compiled = None
    if compile:
        fc = [r["fitness"] for r in SupernetFitness(net, valid, batch_size=batch_size, bf16=True, compile=True)(archs)]
        compiled = {"kendall_tau_fitness_vs_eager_bf16": kendall_tau_b(f16, fc),
                    "max_abs_fitness_diff_vs_eager_bf16": max(abs(a - b) for a, b in zip(f16, fc)),
                    "best_compiled_bf16": archs[max(range(candidates), key=lambda i: fc[i])]}  # fmt: skip
    top = max(1, candidates // 10)
    best32 = set(sorted(range(candidates), key=lambda i: -f32[i])[:top])
    best16 = set(sorted(range(candidates), key=lambda i: -f16[i])[:top])
    return {
        "supernet": supernet_dir,
        "candidates": candidates,
        "valid_sequences": int(valid["input_ids"].shape[0]),
        "seq_len": int(valid["input_ids"].shape[1]),
        "size": {"hidden_size": net.config.hidden_size, "num_slots": net.num_slots, "vocab_size": net.config.vocab_size},
        "kendall_tau_fitness": kendall_tau_b(f32, f16),
        "kendall_tau_loss": kendall_tau_b([r["loss"] for r in fp32], [r["loss"] for r in bf16]),
        "top10pct_overlap": len(best32 & best16) / top,
        "fitness_fp32_range": [min(f32), max(f32)],
        "max_abs_fitness_diff": max(abs(a - b) for a, b in zip(f32, f16)),
        "best_fp32": archs[max(range(candidates), key=lambda i: f32[i])],
        "best_bf16": archs[max(range(candidates), key=lambda i: f16[i])],
        "compiled": compiled,
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 32 sequences, 4 independent archs, population 10")
    p.add_argument("--size", default="small", help="supernet size (default small)")
    p.add_argument("--sequences", type=int, default=256, help="validation sequences (default 256)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default 128)")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per forward pass (default 64)")
    p.add_argument("--independent", type=int, default=6, help="random archs of workload (a) (default 6)")
    p.add_argument("--population", type=int, default=25, help="evolution population (default 25; the search's is 50)")
    p.add_argument("--generation", type=int, default=3, help="the evolution generation timed (default 3)")
    p.add_argument("--warm", action="store_true", help="fill the cache with the previous generation first")
    p.add_argument("--plain-candidates", type=int, default=2, help="archs the plain path is timed on (default 2)")
    p.add_argument("--cache-mb", type=float, default=DEFAULT_CACHE_MB, help=f"prefix cache budget (default {DEFAULT_CACHE_MB:g})")
    p.add_argument("--head-rows", type=int, default=DEFAULT_HEAD_ROWS, help=f"MLM head block (default {DEFAULT_HEAD_ROWS})")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated (default float32,bfloat16)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--compile", action="store_true", help="also time SupernetFitness(compile=True) (torch.compile)")
    p.add_argument("--tau-supernet", help="trained supernet folder: also measure Kendall tau bf16 vs fp32")
    p.add_argument("--tau-data", help="prepared data folder of that supernet (its valid split)")
    p.add_argument("--tau-candidates", type=int, default=50, help="random archs for Kendall tau (default 50)")
    p.add_argument("--tau-sequences", type=int, default=256, help="validation sequences for Kendall tau (default 256)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(RESULTS), help="results file (default benchmarks/results/fitness.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.sequences, args.independent, args.population, args.plain_candidates = 32, 4, 10, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if bool(args.tau_supernet) != bool(args.tau_data):
        p.error("--tau-supernet and --tau-data go together")
    device = torch.device(args.device)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, "
          f"load {info['load_average_at_start']:.1f}", file=sys.stderr)  # fmt: skip
    peaks = {"start": {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}}

    size = get_size(args.size)
    torch.manual_seed(0)
    net = LvBertSupernet.from_size(args.size).to(device).eval()
    batch = {k: v.to(device) for k, v in synthetic_batch(args.sequences, args.seq_len, size.vocab_size).items()}
    tokens, masked = batch["input_ids"].numel(), int((batch["labels"] != -100).sum())
    space = SearchSpace(size=args.size)
    rng = random.Random(0)
    probe = space.sample(rng)
    independent = []
    while len(independent) < args.independent:
        a = space.sample(rng)
        if a not in independent and a != probe:
            independent.append(a)
    gens = evolution_generations(space, args.population, args.generation + 1)
    workloads = {"independent": (independent, None),
                 "evolution": (gens[args.generation], gens[args.generation - 1] if args.warm else None)}  # fmt: skip

    rows = []
    for dtype in args.dtypes.split(","):
        bf16 = dtype == "bfloat16"
        for name, (archs, warm) in workloads.items():
            print(f"timing {name} {dtype} ...", file=sys.stderr, flush=True)
            flops = sum(flops_per_candidate(a, size, args.seq_len, tokens, masked) for a in archs) / len(archs)
            plain = time_plain(net, batch, archs[: args.plain_candidates], args.batch_size, bf16)
            new = time_new(net, batch, archs, warm, args.batch_size, bf16, args.cache_mb, args.head_rows, probe)
            paths = [("plain", plain), ("new", new)]
            if args.compile:
                paths.append(("compiled", time_new(net, batch, archs, warm, args.batch_size, bf16, args.cache_mb,
                                                   args.head_rows, probe, compile=True)))  # fmt: skip
            for path, r in paths:
                r["effective_tflops"] = r["candidates_per_second"] * flops / 1e12
                r["efficiency_vs_peak"] = r["effective_tflops"] / peaks["start"][dtype]
            rows.append({"workload": name, "dtype": dtype, **dict(paths),
                         "speedup": new["candidates_per_second"] / plain["candidates_per_second"],
                         "flops_per_candidate": flops})  # fmt: skip
            compiled = rows[-1].get("compiled")
            print(f"  plain {plain['candidates_per_second']:.3f}/s, new {new['candidates_per_second']:.3f}/s "
                  f"(x{rows[-1]['speedup']:.2f}, {new['slots_reused_share']:.0%} of slot passes reused)"
                  + (f", compiled {compiled['candidates_per_second']:.3f}/s" if compiled else ""),
                  file=sys.stderr, flush=True)  # fmt: skip
    peaks["end"] = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}

    tau = None
    if args.tau_supernet:
        print("Kendall tau bf16 vs fp32 ...", file=sys.stderr, flush=True)
        tau = tau_bf16_vs_fp32(args.tau_supernet, args.tau_data, args.tau_candidates, args.tau_sequences, args.batch_size,
                               compile=args.compile)  # fmt: skip

    result = {
        "benchmark": "fitness",
        "quick": args.quick,
        "machine": info,
        "device": str(device),
        "matmul_peak_tflops": peaks,
        "setup": {
            "size": args.size,
            "sequences": args.sequences,
            "seq_len": args.seq_len,
            "batch_size": args.batch_size,
            "cache_mb": args.cache_mb,
            "head_rows": args.head_rows,
            "independent_archs": len(independent),
            "evolution": {"population": args.population, "parents": max(2, args.population // 5),
                          "mutation_prob": 0.1, "generation": args.generation, "warm": args.warm,
                          "candidates": len(workloads["evolution"][0]),
                          "proxy_fitness": "fixed random score per slot op + noise (instant)"},  # fmt: skip
            "plain_candidates": args.plain_candidates,
            "tokens": "synthetic random ids, 15% masked",
            "target_candidates_per_second": TARGET_PER_SECOND,
        },
        "fitness_speed": rows,
        "kendall_tau": tau,
    }
    out = write_result(args.out, result)
    print(markdown(result))
    print(f"\nwritten to {out}")
    return 0


def markdown(result: dict) -> str:
    s, m, pk = result["setup"], result["machine"], result["matmul_peak_tflops"]
    lines = [
        f"Fitness speed on {m['cpu']} ({m['torch_threads']} torch threads, load {m['load_average_at_start']:.1f}); "
        f"size {s['size']}, {s['sequences']} x {s['seq_len']} tokens, batch {s['batch_size']}, cache {s['cache_mb']:g} MiB",
        f"matmul peak TFLOP/s: fp32 {pk['start']['float32']:.3f} -> {pk['end']['float32']:.3f}, "
        f"bf16 {pk['start']['bfloat16']:.3f} -> {pk['end']['bfloat16']:.3f} (start -> end)",
        "",
        "| workload | dtype | plain cand/s | new cand/s | speed-up | slot passes reused | new: share of peak "
        "| compiled cand/s (warm-up s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["fitness_speed"]:
        c = r.get("compiled")
        compiled = f"{c['candidates_per_second']:.3f} ({c['warm_up_seconds']:.0f})" if c else "not run"
        lines.append(f"| {r['workload']} | {r['dtype']} | {r['plain']['candidates_per_second']:.3f} "
                     f"| {r['new']['candidates_per_second']:.3f} | {r['speedup']:.2f}x "
                     f"| {r['new']['slots_reused_share']:.0%} | {r['new']['efficiency_vs_peak']:.0%} | {compiled} |")  # fmt: skip
    t = result["kendall_tau"]
    if t:
        lines += ["", f"Kendall tau bf16 vs fp32 over {t['candidates']} random archs ({t['supernet']}, "
                      f"{t['valid_sequences']} x {t['seq_len']}): fitness {t['kendall_tau_fitness']:.3f}, "
                      f"loss {t['kendall_tau_loss']:.3f}, top-10% overlap {t['top10pct_overlap']:.0%}"]  # fmt: skip
        if t.get("compiled"):
            c = t["compiled"]
            lines.append(f"Compiled vs eager bf16: Kendall tau {c['kendall_tau_fitness_vs_eager_bf16']:.3f}, "
                         f"largest fitness difference {c['max_abs_fitness_diff_vs_eager_bf16']:.4f}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
