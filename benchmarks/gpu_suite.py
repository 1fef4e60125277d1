"""The GPU suite: one command, at most ~8 minutes on one H100 / H200, one JSON with every number
the project's GPU targets are read from (training speed against Hugging Face ELECTRA, MFU, supernet
overhead, search and inference throughput, a projection of the quickstart's ``gpu`` profile).

    .venv/bin/python benchmarks/gpu_suite.py                       # the device's run -> results/gpu_suite.json
    .venv/bin/python benchmarks/gpu_suite.py --quick --device cpu  # smoke test: toy sizes, prints only
    .venv/bin/python benchmarks/gpu_suite.py --budget-s 300 --out /tmp/g.json

Sections, each timed with ``torch.cuda.synchronize()`` around every timed call on CUDA, each in
its own try/except (a failing section records its error, the others still run):

1. ``matmul_peak``: square-matmul TFLOP/s in bf16 and fp32 (8192 x 8192 on CUDA, 1024 on CPU,
   256 with ``--quick``), at the start and at the end of the run; MFU is read against the lower.
2. ``pretrain``: one optimizer step as the training loop does it (bf16 autocast forward, backward,
   clipping at 1.0, AdamW over ``build_optimizer``'s groups, fused on CUDA), the variants of
   ``bench_pretrain.py``: ``LvBertForMaskedLM`` + ``mlm_objective`` vs HF ``ElectraForMaskedLM``,
   ``ElectraPretrainer(LvBertForPreTraining, 64)`` + ``electra_objective`` vs HF ELECTRA doing the
   same step; eager and ``torch.compile``-d (the model; a compile failure is recorded). Tokens/s,
   speed-up against HF in the same mode, and MFU of the ``mlm`` rows: 6 x (backbone MACs/token x
   tokens + MLM head MACs x masked tokens) per step over the step time, as a share of the bf16 peak.
3. ``supernet``: a ``LvBertSupernet`` training step on a given path vs ``supernet.extract(arch)``
   (its own optimizer) on the same batch, steps interleaved; ratio of the median steps.
4. ``search``: ``SupernetFitness`` (bf16) of a random-init supernet on a fixed-mask synthetic
   validation set (256 x 128 on CUDA): candidates/s over N random archs of the space.
5. ``inference``: ``LvBertForSequenceClassification`` sequences/s (64 x 128 on CUDA) in fp32, bf16
   autocast and torchao int8 (``lvbert.export.torchao.torchao_int8``; its error when it fails).
6. ``quickstart_slice``: supernet steps at the quickstart ``gpu`` profile's size, batch and sequence
   length through the step of section 3 for up to ``--slice-s`` seconds; steps/s and the
   *projected* time of the profile's supernet stage (steps / steps per second; no data loading,
   evaluation or checkpoints).

Batches are synthetic (random ids, no padding, 15% of positions chosen); models are randomly
initialised (speed does not depend on the weights). Targets, with pass/fail in the JSON: MFU of our
MLM step >= 0.40, our ELECTRA step >= 2x HF's. ``--budget-s`` (default 480): no section starts
once the run is older than that; those are recorded as skipped. Writes
``benchmarks/results/gpu_suite.json`` (with ``--quick`` only when ``--out`` is given) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import random
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path)
from bench_fitness import synthetic_batch  # noqa: E402
from bench_pretrain import RTD_WEIGHT, build_variants, make_batch, time_interleaved  # noqa: E402
from bench_supernet import make_batch as supernet_batch  # noqa: E402
from bench_supernet import sample_arch  # noqa: E402

from lvbert.arch import GENERATOR_HIDDEN, count_macs, get_size, parse_arch  # noqa: E402
from lvbert.hardware import cpu_capability  # noqa: E402
from lvbert.modeling_lvbert import LvBertConfig, LvBertForSequenceClassification  # noqa: E402
from lvbert.objectives import mlm_objective  # noqa: E402
from lvbert.recipes.quickstart import PROFILES  # noqa: E402
from lvbert.search.fitness import SupernetFitness  # noqa: E402
from lvbert.space import SearchSpace  # noqa: E402
from lvbert.supernet import LvBertSupernet  # noqa: E402
from lvbert.training.optim import param_groups  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_suite.json"
SECTIONS = ("matmul_peak", "pretrain", "supernet", "search", "inference", "quickstart_slice")
TARGET_MFU = 0.40
TARGET_ELECTRA_VS_HF = 2.0
# the order in which the compiled variants are built (the references and the paper's arch first)
COMPILE_FIRST = ["hf electra", "lvbert electra (lv-bert-small)", "hf mlm", "lvbert mlm (bert)",
                 "lvbert mlm (lv-bert-small)"]


# ----------------------------------------------------------------------------- device helpers


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only; CPU work is synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, bf16: bool = True):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def synced(fn, device: torch.device):
    """``fn`` followed by a device sync, so that wall time around a call is the call's device time."""

    def call(*args):
        fn(*args)
        sync(device)

    return call


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def make_optimizer(model: torch.nn.Module, device: torch.device, lr: float = 1e-4) -> torch.optim.AdamW:
    """AdamW over ``build_optimizer``'s parameter groups; torch's fused kernel on CUDA, the plain one on CPU."""
    groups = param_groups(model, 0.01)
    for g in groups:
        g["lr"] = lr * g.pop("lr_scale")
        g.pop("names")
    return torch.optim.AdamW(groups, lr=lr, eps=1e-6, fused=True if device.type == "cuda" else None)


def make_step(model, objective, optimizer, batch: dict, device: torch.device, bf16: bool = True):
    """``step(*extra)``: one optimizer step of ``objective(model, batch, *extra)`` as the training loop does it."""
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def step(*extra) -> None:
        with autocast(device, bf16):
            loss = objective(model, batch, *extra)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    """Square-matmul speed right now on ``device``, in TFLOP/s."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return round(2 * n**3 * reps / (time.perf_counter() - t0) / 1e12, 4)


def error_record(e: BaseException) -> dict:
    return {"error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-3000:]}


# ----------------------------------------------------------------------------- 1. matmul peak


def measure_peaks(device: torch.device, cfg: dict) -> dict:
    n, reps = cfg["peak_n"], cfg["peak_reps"]
    return {"bf16": matmul_peak(device, torch.bfloat16, n, reps), "fp32": matmul_peak(device, torch.float32, n, reps)}


# ----------------------------------------------------------------------------- 2. pretrain


def section_pretrain(device: torch.device, cfg: dict, over_budget) -> dict:
    vocab, seq, bsz = cfg["vocab"], cfg["seq_len"], cfg["batch"]
    generator_hidden = GENERATOR_HIDDEN["small"]
    archs = cfg["archs"]
    batch_cpu = make_batch(bsz, seq, vocab)
    batch = to_device(batch_cpu, device)
    tokens, masked = bsz * seq, int((batch_cpu["labels"] != -100).sum())
    size = get_size("small", vocab_size=vocab)
    head_macs = size.hidden_size * size.embedding_size + size.embedding_size * vocab
    rows, errors = [], {}
    modes = ["eager"] + (["compiled"] if cfg["compile"] else [])
    if not cfg["compile"]:
        errors["compiled"] = "not run: --no-compile (the default with --quick)"
    for mode in modes:
        variants, params = build_variants(archs, vocab, generator_hidden)
        fns, warm_s = {}, {}
        # compiling takes a while: the references and the paper's arch first, in case the budget runs out
        order = [k for k in COMPILE_FIRST if k in variants] + [k for k in variants if k not in COMPILE_FIRST]
        for name in order:
            model, objective, _ = variants[name]
            if mode == "compiled" and over_budget(cfg["reserve_s"]):
                errors[f"{mode} {name}"] = "skipped: compiling would eat the time the later sections need"
                continue
            model.to(device).train()
            run_model = model
            try:
                if mode == "compiled":
                    run_model = torch.compile(model, backend=cfg["compile_backend"])
                step = synced(make_step(run_model, objective, make_optimizer(model, device), batch, device), device)
                t0 = time.perf_counter()
                for _ in range(cfg["warmup"]):
                    step()  # with compile: the graphs are built here
                warm_s[name] = time.perf_counter() - t0
                fns[name] = step
            except Exception as e:  # one variant's failure (a compile error) leaves the others
                errors[f"{mode} {name}"] = error_record(e)["error"]
        try:
            seconds = time_interleaved(fns, cfg["steps"], 0)
        except Exception as e:  # a failure while timing loses this mode's rows only
            errors[f"{mode} timing"] = error_record(e)["error"]
            seconds = {}
        for name, sec in seconds.items():
            arch = name[len("lvbert mlm ("):-1] if name.startswith("lvbert mlm") else "bert"
            row = {"mode": mode, "objective": name.split(" ")[1], "model": name, "params": params[name],
                   "s_per_step": sec, "tokens_per_s": tokens / sec, "warmup_s": round(warm_s[name], 2)}
            if row["objective"] == "mlm":
                flops = 6 * (count_macs(arch, size, seq) * tokens + head_macs * masked)
                row["model_tflops_per_step"] = flops / 1e12
            rows.append(row)
        del variants, fns
        if mode == "compiled":
            torch._dynamo.reset()
        free(device)
    def ref(mode: str, objective: str) -> dict | None:
        return next((x for x in rows if x["mode"] == mode and x["model"] == f"hf {objective}"), None)

    for r in rows:  # speed-up against the HF reference of the same objective, in the same mode and eager
        same, eager = ref(r["mode"], r["objective"]), ref("eager", r["objective"])
        r["vs_hf"] = round(r["tokens_per_s"] / same["tokens_per_s"], 3) if same else None
        r["vs_hf_eager"] = round(r["tokens_per_s"] / eager["tokens_per_s"], 3) if eager else None
    return {"size": "small", "batch": bsz, "seq_len": seq, "vocab": vocab, "tokens_per_step": tokens,
            "masked_per_step": masked, "archs": archs, "generator_hidden": generator_hidden, "rtd_weight": RTD_WEIGHT,
            "dtype": "bf16 autocast", "optimizer": "AdamW, fused" if device.type == "cuda" else "AdamW",
            "steps": cfg["steps"], "warmup": cfg["warmup"], "compile": cfg["compile"],
            "compile_backend": cfg["compile_backend"] if cfg["compile"] else None,
            "mfu": "filled in at the end against min(start, end) bf16 matmul peak", "rows": rows,
            "errors": errors}


def add_mfu(pretrain: dict, peaks: dict | None) -> None:
    """MFU of the mlm rows against the lower of the start and end bf16 peaks."""
    peak = None
    if peaks and "start" in peaks and "end" in peaks:
        peak = min(peaks["start"]["bf16"], peaks["end"]["bf16"])
    elif peaks and "start" in peaks:
        peak = peaks["start"]["bf16"]
    pretrain["mfu"] = f"against a bf16 peak of {peak} TFLOP/s" if peak else "no matmul peak measured"
    for r in pretrain["rows"]:
        if "model_tflops_per_step" in r:
            r["mfu"] = round(r["model_tflops_per_step"] / r["s_per_step"] / peak, 4) if peak else None
    for r in pretrain["rows"]:
        r["s_per_step"], r["tokens_per_s"] = round(r["s_per_step"], 6), round(r["tokens_per_s"])
        if "model_tflops_per_step" in r:
            r["model_tflops_per_step"] = round(r["model_tflops_per_step"], 6)


# ----------------------------------------------------------------------------- 3. supernet


def section_supernet(device: torch.device, cfg: dict) -> dict:
    size, bsz, seq = cfg["size"], cfg["batch"], cfg["seq_len"]
    torch.manual_seed(0)
    net = LvBertSupernet.from_size(size, vocab_size=cfg["model_vocab"]).to(device).train()
    n = net.num_slots
    batch = to_device(supernet_batch(bsz, seq, net.config.vocab_size), device)
    super_step = synced(make_step(net, mlm_objective, make_optimizer(net, device), batch, device), device)
    rng = random.Random("gpu-suite/supernet")
    archs = {"bert": parse_arch("bert", num_slots=n), "lv-bert-small": parse_arch("lv-bert-small", num_slots=n)}
    for i in range(cfg["supernet_random_archs"]):
        archs[f"random {i + 1}"] = sample_arch(rng, net.allowed)
    rows = []
    for name, arch in archs.items():
        arch = net.check_arch(arch)
        plain = net.extract(arch).to(device).train()
        plain_step = synced(make_step(plain, mlm_objective, make_optimizer(plain, device), batch, device), device)
        fns = {"supernet": lambda arch=arch: super_step(arch), "standalone": plain_step}
        t = time_interleaved(fns, cfg["steps"], cfg["warmup"])
        rows.append({"arch_name": name, "arch": arch, "supernet_s": round(t["supernet"], 5),
                     "standalone_s": round(t["standalone"], 5), "ratio": round(t["supernet"] / t["standalone"], 3)})
        del plain, plain_step, fns
    ratios = [r["ratio"] for r in rows]
    return {"size": size, "batch": bsz, "seq_len": seq, "dtype": "bf16 autocast", "steps": cfg["steps"],
            "rows": rows, "ratio_geomean": round(statistics.geometric_mean(ratios), 3), "ratio_max": max(ratios),
            "ratio": "supernet step / extracted model step (median, same batch, interleaved)"}


# ----------------------------------------------------------------------------- 4. search


def section_search(device: torch.device, cfg: dict) -> dict:
    size = cfg["size"]
    torch.manual_seed(0)
    net = LvBertSupernet.from_size(size, vocab_size=cfg["model_vocab"]).to(device).eval()
    valid = synthetic_batch(cfg["search_sequences"], cfg["seq_len"], net.config.vocab_size)
    space = SearchSpace(size=get_size(size, vocab_size=cfg["model_vocab"]), num_slots=net.num_slots,
                        seq_len=cfg["seq_len"])
    rng = random.Random(0)
    probe, archs = space.sample(rng), []
    while len(archs) < cfg["search_archs"]:
        a = space.sample(rng)
        if a != probe and a not in archs:
            archs.append(a)
    fit = SupernetFitness(net, valid, batch_size=cfg["search_batch"], bf16=True)
    t0 = time.perf_counter()
    fit.evaluate(probe)  # warm-up outside the workload: allocator, kernels, embeddings
    sync(device)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = fit(archs)
    sync(device)
    seconds = time.perf_counter() - t0
    info = fit.cache_info()
    passes = info["slots_computed"] + info["slots_reused"]
    return {"size": size, "sequences": cfg["search_sequences"], "seq_len": cfg["seq_len"],
            "batch_size": cfg["search_batch"], "dtype": "bf16 autocast", "weights": "random init",
            "candidates": len(archs), "seconds": round(seconds, 4), "warmup_s": round(warm, 3),
            "candidates_per_s": round(len(archs) / seconds, 3),
            "slots_reused_share": round(info["slots_reused"] / max(passes, 1), 3),
            "fitness_finite": all(math.isfinite(r["fitness"]) for r in results)}


# ----------------------------------------------------------------------------- 5. inference


def section_inference(device: torch.device, cfg: dict) -> dict:
    size, bsz, seq, arch = cfg["size"], cfg["infer_batch"], cfg["seq_len"], "lv-bert-small"
    torch.manual_seed(0)
    config = LvBertConfig.from_size(size, arch=arch, vocab_size=cfg["model_vocab"], num_labels=2)
    model = LvBertForSequenceClassification(config).to(device).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, config.vocab_size, (bsz, seq), generator=g)
    inputs = to_device({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, device)

    def throughput(m, bf16: bool) -> dict:
        def call():
            with torch.inference_mode(), autocast(device, bf16):
                m(**inputs)

        fn = synced(call, device)
        for _ in range(cfg["warmup"]):
            fn()
        times = []
        for _ in range(cfg["infer_steps"]):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        return {"s_per_batch": round(sec, 5), "sequences_per_s": round(bsz / sec, 1)}

    rows = {"fp32": throughput(model, False), "bf16": throughput(model, True)}
    try:
        from lvbert.export.torchao import torchao_int8

        rows["int8_torchao"] = throughput(torchao_int8(model), False)
    except Exception as e:  # torchao's int8 path may be CPU-only
        rows["int8_torchao"] = error_record(e)
    return {"size": size, "arch": arch, "batch": bsz, "seq_len": seq, "steps": cfg["infer_steps"],
            "timing": "median batch, inference_mode", "rows": rows}


# ----------------------------------------------------------------------------- 6. quickstart slice


def section_quickstart_slice(device: torch.device, cfg: dict, seconds_left: float) -> dict:
    p = PROFILES["gpu"]
    if cfg["quick"]:  # toy sizes; the projection still uses the profile's step count
        size, bsz, seq, vocab, num_slots = cfg["size"], cfg["batch"], cfg["seq_len"], cfg["model_vocab"], None
    else:
        size, bsz, seq, vocab, num_slots = p.size, p.supernet_batch, p.seq_len, p.vocab_size, p.num_slots
    torch.manual_seed(0)
    net = LvBertSupernet.from_size(size, vocab_size=vocab, num_slots=num_slots).to(device).train()
    batch = to_device(supernet_batch(bsz, seq, net.config.vocab_size), device)
    step = synced(make_step(net, mlm_objective, make_optimizer(net, device), batch, device, bf16=p.bf16), device)
    rng = random.Random("gpu-suite/quickstart")
    for _ in range(cfg["warmup"]):
        step(sample_arch(rng, net.allowed))
    limit = max(1.0, min(cfg["slice_s"], seconds_left))
    steps, t0 = 0, time.perf_counter()
    while steps < cfg["slice_max_steps"] and (steps < 1 or time.perf_counter() - t0 < limit):
        step(sample_arch(rng, net.allowed))  # a fresh uniformly sampled arch per step, as in training
        steps += 1
    seconds = time.perf_counter() - t0
    steps_per_s = steps / seconds
    return {"profile": "gpu", "size": size, "batch": bsz, "seq_len": seq, "vocab": vocab, "bf16": p.bf16,
            "steps": steps, "seconds": round(seconds, 3), "steps_per_s": round(steps_per_s, 3),
            "tokens_per_s": round(steps_per_s * bsz * seq),
            "profile_supernet_steps": p.supernet_steps,
            "projected_supernet_stage_s": round(p.supernet_steps / steps_per_s, 1),
            "projection": True,
            "note": "a projection: the profile's supernet steps / the measured steps per second on synthetic "
                    "batches (random arch per step); excludes data loading, evaluation and checkpoints"
                    + (" (--quick: toy sizes, the number means nothing)" if cfg["quick"] else "")}


# ----------------------------------------------------------------------------- main


def config(args, device: torch.device) -> dict:
    cuda = device.type == "cuda"
    cfg = {"quick": args.quick, "size": "small", "vocab": 30522, "model_vocab": None, "seq_len": 128,
           "batch": 128 if cuda else 16, "steps": 10 if cuda else 3, "warmup": 3 if cuda else 1,
           "archs": ["lv-bert-small", "bert"], "compile": True, "supernet_random_archs": 2,
           "search_sequences": 256 if cuda else 64, "search_batch": 64, "search_archs": 20 if cuda else 4,
           "infer_batch": 64 if cuda else 16, "infer_steps": 20 if cuda else 3,
           "slice_s": args.slice_s, "slice_max_steps": 100000,
           "peak_n": 8192 if cuda else 1024, "peak_reps": 50 if cuda else 10,
           "compile_backend": args.compile_backend, "reserve_s": min(args.slice_s, 120.0) + 60.0}
    if args.quick:
        cfg.update(size="tiny", vocab=1024, model_vocab=1024, seq_len=32, batch=2, steps=1, warmup=1,
                   archs=["lv-bert-small"], compile=False, supernet_random_archs=0, search_sequences=8,
                   search_batch=4, search_archs=3, infer_batch=2, infer_steps=2, slice_s=5.0, slice_max_steps=2,
                   peak_n=256, peak_reps=10, reserve_s=0.0)
    if args.compile is not None:
        cfg["compile"] = args.compile
    cfg["model_vocab"] = cfg["model_vocab"] or get_size(cfg["size"]).vocab_size
    return cfg


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="smoke test: toy sizes, 1 step; prints only unless --out")
    p.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS}; none with --quick)")
    p.add_argument("--budget-s", type=float, default=480.0, help="start no section after this many seconds")
    p.add_argument("--slice-s", type=float, default=120.0, help="seconds of the quickstart slice (default 120)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="also time the torch.compile-d pre-training step (default: on, off with --quick)")
    p.add_argument("--compile-backend", default="inductor",
                   help="torch.compile backend (default inductor; 'eager' checks the plumbing without a compiler)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma list of sections to run")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: torch sees no CUDA device here (torch {torch.__version__})")
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    cfg = config(args, device)
    wanted = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")

    t_start = time.time()
    info = machine_info()
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else info["cpu"]
    if device.type == "cuda":
        info["gpu"] = device_name
        info["cuda"] = torch.version.cuda
        info["allow_tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    sections: dict = {}

    def elapsed() -> float:
        return time.time() - t_start

    def over_budget(reserve_s: float = 0.0) -> bool:
        return elapsed() > args.budget_s - reserve_s

    def run(name: str, fn) -> None:
        if name not in wanted:
            sections[name] = {"skipped": "not in --sections"}
            return
        if over_budget():
            sections[name] = {"skipped": f"over the time budget ({elapsed():.0f} s > {args.budget_s:g} s)"}
            print(f"[{elapsed():6.1f}s] {name}: skipped (budget)", file=sys.stderr, flush=True)
            return
        print(f"[{elapsed():6.1f}s] {name} ...", file=sys.stderr, flush=True)
        t0 = time.time()
        try:
            sections[name] = fn()
        except Exception as e:  # one failing section leaves the others
            sections[name] = error_record(e)
            print(f"  failed: {sections[name]['error']}", file=sys.stderr, flush=True)
        sections[name]["section_s"] = round(time.time() - t0, 2)
        free(device)

    run("matmul_peak", lambda: {"n": cfg["peak_n"], "reps": cfg["peak_reps"], "start": measure_peaks(device, cfg)})
    run("pretrain", lambda: section_pretrain(device, cfg, over_budget))
    run("supernet", lambda: section_supernet(device, cfg))
    run("search", lambda: section_search(device, cfg))
    run("inference", lambda: section_inference(device, cfg))
    run("quickstart_slice", lambda: section_quickstart_slice(device, cfg, args.budget_s - elapsed()))

    peak = sections.get("matmul_peak", {})
    if "start" in peak:
        try:
            peak["end"] = measure_peaks(device, cfg)
            peak["tflops"] = {d: min(peak["start"][d], peak["end"][d]) for d in ("bf16", "fp32")}
        except Exception as e:
            peak["end"] = error_record(e)
            peak["tflops"] = dict(peak["start"])
        peak["note"] = "TFLOP/s of an n x n matmul; tflops = the lower of start and end (what MFU is read against)"
    if "rows" in sections.get("pretrain", {}):
        add_mfu(sections["pretrain"], {"start": peak["tflops"]} if peak.get("tflops") else None)

    result = {
        "benchmark": "gpu_suite",
        "quick": args.quick,
        "device": str(device),
        "device_name": device_name,
        "torch": torch.__version__,
        "cpu_capability": cpu_capability().to_dict(),
        "machine": info,
        "config": {**cfg, "budget_s": args.budget_s},
        "sections": sections,
        "targets": targets(sections),
        "wall_s": round(elapsed(), 1),
    }
    info["load_average_at_end"] = os.getloadavg()[0]
    text = json.dumps(result, indent=2, default=str)
    print(text)
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"\nwrote {out} in {result['wall_s']} s", file=sys.stderr)
    return 0


def targets(sections: dict) -> dict:
    """The GPU targets: best MFU of our mlm step, best speed-up of our ELECTRA step over HF's (same mode)."""
    rows = sections.get("pretrain", {}).get("rows", [])
    mfu = [r for r in rows if r["model"].startswith("lvbert mlm") and r.get("mfu") is not None]
    electra = [r for r in rows if r["model"].startswith("lvbert electra") and r.get("vs_hf") is not None]
    best_mfu = max(mfu, key=lambda r: r["mfu"], default=None)
    best_el = max(electra, key=lambda r: r["vs_hf"], default=None)
    return {
        "mfu": {"target": TARGET_MFU, "value": best_mfu and best_mfu["mfu"],
                "row": best_mfu and f"{best_mfu['mode']} {best_mfu['model']}",
                "pass": None if best_mfu is None else best_mfu["mfu"] >= TARGET_MFU},
        "electra_vs_hf": {"target": TARGET_ELECTRA_VS_HF, "value": best_el and best_el["vs_hf"],
                          "row": best_el and f"{best_el['mode']} {best_el['model']}",
                          "pass": None if best_el is None else best_el["vs_hf"] >= TARGET_ELECTRA_VS_HF},
        "note": "pass is null when the number was not measured; --quick numbers mean nothing",
    }


if __name__ == "__main__":
    sys.exit(main())
