"""Recipes: NAS-BERT (Xu et al., KDD 2021) -- ``lvbert nas train`` and ``lvbert nas search``.

``nas train`` trains one block supernet per teacher block by block-wise distillation, with
progressive shrinking. Each block is its own run (own checkpoints, metrics, resume), so blocks
can be trained by separate jobs (``--blocks 0,1`` and ``--blocks 2,3`` on the same ``--out``).
Output folder:

    <out>/nas.json            the space, the teacher, the bins (what every block job shares)
    <out>/run_config.yaml     the first job's options (what --resume DIR reads back)
    <out>/latency.json        the per-op latency table measured on this device
    <out>/block-N/            a training run: run_config.yaml, metrics.jsonl, tensorboard/, checkpoints/,
                              block.safetensors (the block supernet), shrink.jsonl (every round, every bin),
                              candidates.json (the survivors with their dev losses)

``nas search`` turns the survivors into one model per parameter budget: combinations are visited
in increasing sum of block losses, the first ``--top`` that meet the budgets are chained with
their trained weights and scored on the fixed-mask validation set (masked-LM loss through the
teacher's head), the best is written as a model folder. Output folder:

    <out>/models/<target>/    a standalone LvBertForMaskedLM folder (with the tokenizer) per target
    <out>/evaluated.jsonl     every evaluated combination: arch, params, latency, approximate and real loss
    <out>/pareto.md, pareto.png, results.json
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from lvbert.data.masking import MaskingConfig, fixed_mask_validation
from lvbert.data.packed import check_positions, open_data
from lvbert.data.tokenizer import check_teacher_vocab
from lvbert.errors import LvBertError
from lvbert.model_dir import check_model_weights
from lvbert.nas.latency import NasLatencyTable, measure_arch
from lvbert.nas.report import write_search_report
from lvbert.nas.run import (
    LATENCY_JSON,
    NAS_JSON,
    check_budgets,
    load_nas_run,
    load_teacher,
    read_run_json,
)
from lvbert.nas.select import k_best, parse_budget
from lvbert.nas.shrink import BlockTrainer, assign_bins, dev_batches, rounds_needed, shrink_round, shrink_steps
from lvbert.nas.space import get_space
from lvbert.nas.supernet import NasBlock, TeacherBlocks, block_loss, extract, hidden_distance, sublayer_config
from lvbert.objectives.mlm import evaluate_mlm
from lvbert.options import TrainingOptions, option
from lvbert.tasks.metrics import kendall_tau
from lvbert.training.batches import PretrainBatches
from lvbert.training.loop import train_loop
from lvbert.training.optim import build_optimizer, linear_schedule
from lvbert.training.run import check_run_output, loop_config, prepare_run_dir, step_settings, write_run_config
from lvbert.utils import (
    atomic_write_json,
    atomic_write_text,
    check_out_dir,
    check_output_dir,
    fix_permissions,
    human,
    staging_folder,
)


def _int_list(text, name: str) -> tuple[int, ...] | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        return tuple(int(v) for v in str(text).replace(" ", "").split(",") if v)
    except ValueError:
        raise LvBertError(f"--{name} takes comma-separated integers, e.g. 128,192, got {text!r}") from None


@dataclass
class NasTrainConfig(TrainingOptions):
    teacher: str = option("teacher: an lvbert masked-LM model folder (lvbert pretrain --objective mlm) with the data's "
                          "tokenizer", default=None)  # fmt: skip
    out: str = option("run folder", default="runs/nas")
    space: str = option("search space: nas-bert (LV-BERT's type-only space is 'lvbert supernet train')", default="nas-bert")
    size: str = option("space preset: small (NAS-BERT's: widths 128-512, 4 blocks of 6) or tiny (tests, quickstart)",
                       default="small")  # fmt: skip
    widths: str | None = option("block widths, e.g. 128,192,256 (default: the preset's)", default=None)
    kernels: str | None = option("convolution kernels, e.g. 3,5,7 (default: the preset's)", default=None)
    num_blocks: int | None = option("blocks (default: the preset's, 4)", default=None)
    slots_per_block: int | None = option("slots per block (default: the preset's)", default=None)
    blocks: str | None = option("the blocks this job trains, e.g. 0,1 (default: all, one after another)", default=None)
    steps: int = option("optimizer steps per block", default=20000)
    lr: float | None = option("peak learning rate (default 5e-4)", default=None)
    bins: int = option("progressive shrinking: bins per block by parameters (and latency)", default=10)
    bin_by: str = option("progressive shrinking: bin by 'params' or 'params,latency' (NAS-BERT: both)",
                         default="params,latency")  # fmt: skip
    shrink_start: float = option("progressive shrinking: fraction of the steps trained before the first round "
                                 "(NAS-BERT: 3 warm-up epochs)", default=0.3)  # fmt: skip
    sample: int = option("progressive shrinking: candidates sampled per bin per round (NAS-BERT: 2000)", default=2000)
    keep: int = option("progressive shrinking: candidates left per bin at the end (NAS-BERT: 10)", default=10)
    dev_batches: int = option("progressive shrinking: validation batches scoring each sampled candidate (NAS-BERT: 5)",
                              default=5)  # fmt: skip
    latency_batch_size: int = option("latency table: batch size", default=1)
    latency_seq_len: int = option("latency table: sequence length", default=128)
    latency_repeats: int = option("latency table: timed runs per op (the fastest is kept)", default=10)
    latency_calibrate: int = option("latency table: random whole models measured to calibrate it (0: the raw sum)",
                                    default=8)  # fmt: skip
    overwrite: bool = option("replace an existing --out folder, a NAS run's too (its old contents are removed first)",
                             default=False)  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.teacher:
            raise LvBertError("--teacher is required: an lvbert masked-LM model folder")
        if self.space == "lv-bert":
            raise LvBertError("LV-BERT's type-only space trains with 'lvbert supernet train'; 'lvbert nas' is --space nas-bert")
        if self.space != "nas-bert":
            raise LvBertError(f"unknown --space {self.space!r}; use nas-bert")
        if self.bin_by not in ("params", "params,latency"):
            raise LvBertError(f"--bin-by must be params or params,latency, got {self.bin_by!r}")
        if not 0.0 <= self.shrink_start < 1.0:
            raise LvBertError(f"--shrink-start must be in [0, 1), got {self.shrink_start}")
        if self.latency_calibrate < 0:
            raise LvBertError(f"--latency-calibrate must be 0 or more, got {self.latency_calibrate}")
        for name in ("bins", "sample", "keep", "dev_batches", "latency_batch_size", "latency_seq_len", "latency_repeats"):
            if getattr(self, name) <= 0:
                raise LvBertError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.sample < 2:
            raise LvBertError(f"--sample must be at least 2 (half of the sampled are dropped), got {self.sample}")
        self.nas_space()  # a one-line error for bad widths or kernels now, not after loading

    def nas_space(self):
        return get_space(self.size, widths=_int_list(self.widths, "widths"), kernels=_int_list(self.kernels, "kernels"),
                         num_blocks=self.num_blocks, slots_per_block=self.slots_per_block)  # fmt: skip


# ============================================================================ bins and shrinking


# ============================================================================ nas train


def train_nas(cfg: NasTrainConfig, resume: bool = False) -> Path:
    """Train the block supernets of ``cfg`` (the blocks ``cfg.blocks``); returns the run folder."""

    # a folder holding nas.json is this command's run: blocks may be trained by separate jobs sharing it
    # (nas.json's settings are checked below, and each block's run by prepare_run_dir)
    check_model_weights(cfg.teacher, "--teacher")
    own_run = (check_out_dir(cfg.out) / NAS_JSON).is_file() and not cfg.overwrite
    out = check_run_output(cfg.out, {"--data": cfg.data, "--teacher": cfg.teacher}, cfg.overwrite, resume, own_run)
    space = cfg.nas_space()
    data = open_data(cfg.data)
    teacher, _ = load_teacher(cfg.teacher)
    check_teacher_vocab(Path(cfg.teacher), data.tokenizer, f"the data in {data.path}")
    check_positions(data.seq_len, teacher.config.max_position_embeddings)
    tblocks = TeacherBlocks(teacher, space.num_blocks)  # the one-line error for a shallow teacher
    which = _int_list(cfg.blocks, "blocks")
    which = list(range(space.num_blocks)) if which is None else list(which)
    bad = [b for b in which if not 0 <= b < space.num_blocks]
    if bad:
        raise LvBertError(f"--blocks {cfg.blocks}: the space has blocks 0..{space.num_blocks - 1}")
    tc = teacher.config
    size = space.student_size(tc.embedding_size, tc.vocab_size, tc.max_position_embeddings, tc.type_vocab_size)
    shared = {"space": space.to_dict(), "teacher": str(Path(cfg.teacher).resolve()), "bins": cfg.bins,
              "bin_by": cfg.bin_by, **data.identity()}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    nas_file = out / NAS_JSON
    if nas_file.exists():
        before = read_run_json(nas_file)
        for key, value in shared.items():
            if before.get(key) != value:
                raise LvBertError(f"{out} holds a NAS run whose {key} differs ({before.get(key)!r} vs {value!r}); use "
                                  "the same settings or another --out")  # fmt: skip
    else:
        atomic_write_json(nas_file, shared)
    if not (out / "run_config.yaml").exists():  # what 'lvbert nas train --resume DIR' alone reads back
        from lvbert.training.run import write_run_config

        write_run_config(out, {**asdict(cfg), "blocks": None}, {"kind": "nas", **shared})
    lut_file = out / LATENCY_JSON
    if lut_file.exists():
        lut = NasLatencyTable.from_dict(read_run_json(lut_file))
    else:
        print(f"nas: measuring the latency table ({len(space.widths) * len(space.op_tokens)} ops) ...")
        lut = NasLatencyTable.measure(space, size, cfg.latency_batch_size, cfg.latency_seq_len, repeats=cfg.latency_repeats)
        if cfg.latency_calibrate:
            rng = random.Random(f"{cfg.seed}/latency")
            every = space.block_candidates()
            archs = [[rng.choice(every) for _ in range(space.num_blocks)] for _ in range(cfg.latency_calibrate)]
            cal = lut.calibrate(space, size, archs, repeats=cfg.latency_repeats)
            print(f"nas: latency table calibrated on {len(archs)} whole models (fit error {cal['fit_mean_abs_rel_error']:.1%})")
        atomic_write_json(lut_file, lut.to_dict())
    cands = space.block_candidates()
    params = [space.block_params(c, size) for c in cands]
    latency = [lut.block_ms(c) for c in cands] if cfg.bin_by == "params,latency" else None
    bins = assign_bins(params, latency, cfg.bins)
    masking = MaskingConfig(mode="bert")
    valid = fixed_mask_validation(data, cfg.eval_sequences, seed=cfg.seed, config=masking)
    for n in which:
        _train_block(cfg, n, out / f"block-{n}", space, size, cands, params, bins, tblocks, data, valid, masking,
                     resume or (out / f"block-{n}" / "candidates.json").exists())  # fmt: skip
    return out


def _train_block(cfg, n, folder, space, size, cands, params, bins, tblocks, data, valid, masking, resume) -> None:
    if (folder / "candidates.json").exists():
        print(f"nas: block {n} is trained already ({folder}/candidates.json)")
        return
    identity = {"kind": "nas-block", "block": n, "space": space.to_dict(), **data.identity()}
    resuming = prepare_run_dir(folder, resume and (folder / "run_config.yaml").exists(), identity)
    micro, lr, warmup = step_settings(cfg, 1)
    folder.mkdir(parents=True, exist_ok=True)
    write_run_config(folder, {**asdict(cfg), "block": n, "lr": lr, "warmup_steps": warmup}, identity)
    per_bin = [[i for i, b in enumerate(bins) if b == k] for k in range(cfg.bins)]
    rounds = rounds_needed([len(m) for m in per_bin], cfg.sample, cfg.keep)
    schedule = shrink_steps(cfg.steps, cfg.shrink_start, max(rounds, 1))
    torch.manual_seed(cfg.seed * 1000 + n)
    net = NasBlock(space, tblocks.width, sublayer_config(tblocks.model.config, cfg.dropout))
    model = BlockTrainer(net, len(cands))
    model.alive.copy_(torch.tensor([b >= 0 for b in bins]))
    device = torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model.to(device)
    tblocks.model.to(device)
    print(f"nas: block {n} of {space.num_blocks} (teacher layers {tblocks.bounds[n]}..{tblocks.bounds[n + 1]}): "
          f"{sum(b >= 0 for b in bins):,} candidates in {cfg.bins} bins, {sum(p.numel() for p in net.parameters()):,} "
          f"weights; {cfg.steps} steps x {cfg.batch_size}, shrinking after steps {schedule}")  # fmt: skip
    optimizer = build_optimizer(model, lr, weight_decay=cfg.weight_decay)
    scheduler = linear_schedule(optimizer, warmup, cfg.steps)
    batches = PretrainBatches(data, micro, cfg.grad_accum, 0, 1, masking, cfg.seed + 7919 * n,
                              max_positions=tblocks.model.config.max_position_embeddings)  # fmt: skip
    dev = dev_batches(valid, cfg.batch_size, cfg.dev_batches, device)
    dev_targets = [tblocks.outputs(b, upto=n + 1)[n : n + 2] for b in dev]
    log_path = folder / "shrink.jsonl"

    def before_step(step: int) -> dict:
        alive = model.alive.nonzero().flatten().tolist()
        idx = random.Random(f"{cfg.seed}/nas/{n}/{step}").choice(alive)
        return {"arch": str(cands[idx]), "candidate": idx}

    def objective(m, batch, arch: str, candidate: int) -> dict:
        x, y = tblocks.outputs(batch, upto=n + 1)[n : n + 2]
        return {"loss": block_loss(m.net(x, cands[candidate], batch.get("attention_mask")), y, batch.get("attention_mask"))}

    def dev_loss(idx: int) -> float:
        with torch.no_grad():
            total = sum(float(block_loss(model.net(x, cands[idx], b.get("attention_mask")), y, b.get("attention_mask")))
                        for b, (x, y) in zip(dev, dev_targets))  # fmt: skip
        return total / len(dev)

    def evaluate(m, step: int) -> dict:
        done = int(model.rounds_done)
        if done < len(schedule) and step >= schedule[done]:
            shrink_round(model, per_bin, cfg.sample, cfg.keep, cfg.seed, done, done == len(schedule) - 1, dev_loss, log_path, step, n)
            model.rounds_done.fill_(done + 1)
        return {"alive": int(model.alive.sum())}

    loop = loop_config(cfg, folder)
    loop.eval_every = math.gcd(*schedule, *([cfg.eval_every] if cfg.eval_every else []))
    t0 = time.perf_counter()
    result = train_loop(model, objective, batches, optimizer, scheduler, loop, before_step=before_step, evaluate=evaluate,
                        resume=resuming)  # fmt: skip
    seconds = time.perf_counter() - t0
    alive = model.alive.nonzero().flatten().tolist()
    t1 = time.perf_counter()
    rows = sorted(({"block": str(cands[i]), "index": i, "bin": bins[i], "params": params[i], "dev_loss": dev_loss(i)}
                   for i in alive), key=lambda r: r["dev_loss"])  # fmt: skip

    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(folder / "block.safetensors"))
    shrink_s = sum(json.loads(x).get("seconds", 0.0) for x in log_path.read_text().splitlines()) if log_path.exists() else 0.0
    atomic_write_json(folder / "candidates.json", {"block": n, "step": result["step"], "train_seconds": seconds,
                                                   "shrink_seconds": shrink_s, "score_seconds": time.perf_counter() - t1,
                                                   "candidates": rows})  # fmt: skip
    if not log_path.exists():
        atomic_write_text(log_path, "")
    fix_permissions(folder)
    print(f"nas: block {n} done in {seconds:.0f} s; {len(rows)} candidates kept, best dev loss {rows[0]['dev_loss']:.4f} "
          f"({rows[0]['block']})")  # fmt: skip


# ============================================================================ nas search


@dataclass
class NasSearchConfig:
    supernet: str = option("NAS run folder (lvbert nas train)", default=None)
    data: str = option("prepared data folder: its fixed-mask validation set scores the finalists", default=None)
    targets: str = option("parameter budgets of the backbone (embeddings + encoder), e.g. 5M,10M,800K", default=None)
    max_latency: float | None = option("latency budget in ms (the latency table's batch and sequence length)",
                                       default=None)  # fmt: skip
    top: int = option("finalists per target: the best by the sum of block losses, scored for real (NAS-BERT: 100)",
                      default=100)  # fmt: skip
    eval_sequences: int = option("fixed-mask validation sequences scoring the finalists", default=256)
    batch_size: int = option("sequences per forward pass when scoring", default=64)
    measure: int = option("chosen models and finalists whose whole-model latency is measured (the table's error)",
                          default=20)  # fmt: skip
    seed: int = option("seed of the validation masks", default=0)
    score: str = option("how finalists are scored: mlm (masked-LM loss through the teacher's head) or hidden (distance "
                        "of the final hidden states to the teacher's; for a teacher without a trained MLM head)",
                        default="mlm")  # fmt: skip
    out: str = option("output folder", default="runs/nas-search")
    overwrite: bool = option("replace an existing --out folder", default=False)

    def __post_init__(self) -> None:
        for name in ("supernet", "data", "targets"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")
        self.budgets = [(t.strip(), parse_budget(t)) for t in str(self.targets).split(",") if t.strip()]
        if not self.budgets:
            raise LvBertError("--targets needs at least one budget, e.g. 5M,10M")
        if self.max_latency is not None and not self.max_latency > 0:
            raise LvBertError(f"--max-latency must be positive, got {self.max_latency}")
        for name in ("top", "eval_sequences", "batch_size"):
            if getattr(self, name) <= 0:
                raise LvBertError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.measure < 0:
            raise LvBertError(f"--measure must be 0 or more, got {self.measure}")
        if self.score not in ("mlm", "hidden"):
            raise LvBertError(f"--score must be mlm or hidden, got {self.score!r}")


def search_nas(cfg: NasSearchConfig) -> Path:
    """One model per target from a trained NAS run; returns the output folder."""

    check_budgets(cfg.supernet, cfg.budgets, cfg.max_latency)  # before any weights are loaded: a target below the smallest model is known at once
    out = check_output_dir(cfg.out, inputs={"--supernet": cfg.supernet, "--data": cfg.data}, overwrite=cfg.overwrite)
    space, teacher, tokenizer, lut, nets, rows = load_nas_run(cfg.supernet)
    data = open_data(cfg.data)
    if data.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise LvBertError(f"the data in {data.path} has another vocabulary than the NAS run's teacher; use the same data")
    valid = fixed_mask_validation(data, cfg.eval_sequences, seed=cfg.seed, config=MaskingConfig(mode="bert"))
    tc = teacher.config
    size = space.student_size(tc.embedding_size, tc.vocab_size, tc.max_position_embeddings, tc.type_vocab_size)
    losses = [[r["dev_loss"] for r in block_rows] for block_rows in rows]
    evaluated: dict[tuple, dict] = {}

    def info(combo) -> dict:
        blocks = [rows[n][i]["block"] for n, i in enumerate(combo)]
        return {"blocks": blocks, "params": space.arch_params(blocks, size), "latency_ms": lut.predict(blocks),
                "approx_loss": sum(rows[n][i]["dev_loss"] for n, i in enumerate(combo))}  # fmt: skip

    def score(combo) -> dict:
        if combo not in evaluated:
            d = info(combo)
            model = extract(space, d["blocks"], nets, teacher)
            if cfg.score == "hidden":
                r = {"mlm_loss": hidden_distance(model, teacher, valid, cfg.batch_size), "mlm_accuracy": None}
            else:
                r = evaluate_mlm(model, valid, cfg.batch_size)
            evaluated[combo] = {**d, "arch": str(model.config.arch), "loss": r["mlm_loss"], "mlm_accuracy": r["mlm_accuracy"]}
        return evaluated[combo]

    results, t0 = {}, time.perf_counter()
    for name, budget in cfg.budgets:
        def feasible(combo, budget=budget):
            d = info(combo)
            return d["params"] <= budget and (cfg.max_latency is None or d["latency_ms"] <= cfg.max_latency)

        combos, visits = k_best(losses, cfg.top, feasible)
        if not combos:
            smallest = info(tuple(min(range(len(r)), key=lambda i, r=r: r[i]["params"]) for r in rows))
            limit = f" and {cfg.max_latency} ms" if cfg.max_latency is not None else ""
            raise LvBertError(f"target {name}: no combination of the trained candidates has at most {human(budget)} "
                              f"parameters{limit} (the smallest has {smallest['params']:,}, "
                              f"{smallest['latency_ms']:.1f} ms); raise the target")  # fmt: skip
        scored = []
        from tqdm.auto import tqdm

        for combo in tqdm(combos, desc=f"target {name}", unit="model", dynamic_ncols=True):
            scored.append(score(combo))
        best = min(scored, key=lambda d: d["loss"])
        results[name] = {"budget": budget, "finalists": len(scored), "visited": visits,
                         "kendall_tau_approx_vs_real": kendall_tau([d["approx_loss"] for d in scored],
                                                                   [d["loss"] for d in scored]),
                         "best": best}  # fmt: skip
    select_seconds = time.perf_counter() - t0
    # the table's error against whole models: the chosen ones first, then other finalists
    chosen = [r["best"] for r in results.values()]
    others = [d for d in evaluated.values() if all(d is not c for c in chosen)]
    checks = []
    for d in (chosen + others)[: cfg.measure] if cfg.measure else []:
        ms = measure_arch(d["arch"], size, lut.batch_size, lut.seq_len)
        d["measured_ms"] = ms
        checks.append((d["latency_ms"], ms))
    lut_error = (sum(abs(p - m) / m for p, m in checks) / len(checks)) if checks else None
    with staging_folder(out) as tmp:
        write_search_report(tmp, results, evaluated, space, nets, teacher, tokenizer, lut, cfg.supernet, select_seconds,
                            lut_error, checks)  # fmt: skip
    for name, t in json.loads((out / "results.json").read_text())["targets"].items():
        print(f"{name:>6}: {t['params']:,} parameters, {t['latency_ms']:.2f} ms (table)"
              + (f" / {t['measured_ms']:.2f} ms measured" if t.get("measured_ms") else "")
              + (f", MLM loss {t['mlm_loss']:.4f}, accuracy {t['mlm_accuracy']:.4f}" if cfg.score == "mlm" else
                 f", hidden-state distance to the teacher {t['loss']:.5f}") + f"  {t['blocks']}")  # fmt: skip
    return out


