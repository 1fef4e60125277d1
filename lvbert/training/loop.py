"""The one training loop, shared by supernet training, pre-training and fine-tuning.

The loop knows nothing about the task: an *objective* ``objective(model, batch,
**context) -> dict`` returns ``{"loss": tensor, ...}`` (any other scalar entries are
logged, averaged over micro-batches); ``batches`` yields the micro-batches; an
optional ``before_step(step) -> dict`` gives per-step context (the supernet's
sampled ``arch``) passed to the objective. Determinism for exact resume: pass
``batches`` as a function ``(step, micro) -> batch`` that depends only on its
arguments; the loop restores the torch RNG (dropout) from the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from lvbert import threads
from lvbert.errors import LvBertError
from lvbert.training.checkpoint import load_latest_good, save_checkpoint
from lvbert.training.distributed import DistInfo, barrier, mean_across


@dataclass
class LoopConfig:
    """Settings of the training loop (the recipe's optimizer and schedule are built outside)."""

    out_dir: str  # metrics.jsonl, tensorboard/ and checkpoints/ go here
    max_steps: int  # optimizer steps
    grad_accum: int = 1  # micro-batches per optimizer step
    clip_norm: float = 1.0  # global gradient-norm clipping (0 = off)
    bf16: bool = False  # bf16 autocast (CPU or CUDA)
    log_every: int = 10  # steps between metric lines
    save_every: int = 0  # steps between checkpoints (0 = only at the end)
    keep_last: int = 2  # checkpoints kept
    save_final: bool = True  # checkpoint at the last step (off when the caller keeps its own best model)
    eval_every: int = 0  # steps between evaluate() calls (0 = only at the end)
    seed: int = 0  # seeds torch's RNG (dropout) at the start of a fresh run
    progress: bool = True  # tqdm progress bar on the main process
    tensorboard: bool = True  # also write TensorBoard events

    def __post_init__(self) -> None:
        if self.max_steps <= 0:
            raise LvBertError(f"the number of steps must be positive, got {self.max_steps}")
        if self.grad_accum <= 0:
            raise LvBertError(f"gradient accumulation must be positive, got {self.grad_accum}")


def autocast_context(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class MetricsLog:
    """metrics.jsonl (+ TensorBoard) on the main process."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None):
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            # Drop records after the checkpoint we resume from: they will be produced again.
            kept = []
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if rec.get("step", 0) <= resume_step:
                    kept.append(line)
            self.path.write_text("".join(k + "\n" for k in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"))
            except Exception:  # tensorboard missing or broken: JSON lines are enough
                self.tb = None

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _count_tokens(batch: dict) -> int:
    if "attention_mask" in batch and torch.is_tensor(batch["attention_mask"]):
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


def train_loop(
    model: nn.Module,
    objective: Callable[..., dict],
    batches: Callable[[int, int], dict] | Iterable[dict],
    optimizer: torch.optim.Optimizer,
    scheduler,
    cfg: LoopConfig,
    *,
    dist_info: DistInfo | None = None,
    before_step: Callable[[int], dict] | None = None,
    evaluate: Callable[[nn.Module, int], dict] | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
    resume: bool = False,
    find_unused_parameters: bool = False,
) -> dict:
    """Train ``model`` for ``cfg.max_steps`` optimizer steps; returns a summary dict.

    Args:
        model: the module to train, already on ``dist_info.device``; wrapped in DDP here
            when several processes run (``find_unused_parameters`` for the supernet).
        objective: ``objective(model, batch, **context) -> {"loss": tensor, **scalars}``.
        batches: ``(step, micro) -> batch`` (deterministic, resumable) or an iterable.
        before_step: ``step -> context dict`` (e.g. ``{"arch": ...}``), logged with the step.
        evaluate: ``(model, step) -> metrics`` every ``cfg.eval_every`` steps and at the end.
        on_checkpoint: called with each checkpoint's folder before it is made final (to add the tokenizer).
        resume: continue from the latest good checkpoint in ``cfg.out_dir``. A run resumed at its
            last step trains nothing and is evaluated again, so its summary keeps its results.
    """
    info = dist_info or DistInfo(device=next(model.parameters()).device)
    out_dir = Path(cfg.out_dir)
    start_step = 0
    if resume:
        _, state = load_latest_good(out_dir, model, optimizer, scheduler)  # a broken newest one is skipped
        if state is not None:
            start_step = int(state["step"])
    if start_step == 0:
        torch.manual_seed(cfg.seed + info.rank)
    log = MetricsLog(out_dir, info.is_main, cfg.tensorboard, start_step if resume else None)

    train_model = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(
            model,
            device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
        )
    iterator = None if callable(batches) else iter(batches)

    def next_batch(step: int, micro: int) -> dict:
        nonlocal iterator
        if iterator is None:
            return batches(step, micro)
        try:
            return next(iterator)
        except StopIteration:
            iterator = iter(batches)
            return next(iterator)

    bar = None
    if cfg.progress and info.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=start_step, desc="train", dynamic_ncols=True, unit="step")

    params = [p for p in model.parameters() if p.requires_grad]
    record: dict = {}
    window_tokens, window_start = 0, time.perf_counter()
    last_eval: dict = {}
    step = start_step
    model.train()
    try:
        while step < cfg.max_steps:
            context = before_step(step) if before_step else {}
            sums: dict[str, float] = {}
            tokens = 0
            for micro in range(cfg.grad_accum):
                batch = _to_device(next_batch(step, micro), info.device)
                tokens += _count_tokens(batch)
                sync = contextlib.nullcontext()
                if info.enabled and micro < cfg.grad_accum - 1:
                    sync = train_model.no_sync()
                with sync:
                    with autocast_context(info.device, cfg.bf16):
                        out = objective(train_model, batch, **context)
                    loss = out["loss"]
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower the learning rate or use fp32")
                    (loss / cfg.grad_accum).backward()
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            grad_norm = None
            if cfg.clip_norm and cfg.clip_norm > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], cfg.clip_norm))
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_tokens += tokens * info.world_size
            threads.tick()  # the lvbert command's thread governor: fewer threads while others use the cores

            record = {"step": step, **{k: v / cfg.grad_accum for k, v in sums.items()}}
            record["lr"] = optimizer.param_groups[0]["lr"]
            if grad_norm is not None:
                record["grad_norm"] = grad_norm
            record.update({k: v for k, v in context.items() if isinstance(v, (str, int, float))})

            if step % cfg.log_every == 0 or step == cfg.max_steps:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                record["tokens_per_s"] = window_tokens / elapsed
                record["loss"] = mean_across(record["loss"], info)
                window_tokens, window_start = 0, time.perf_counter()
                log.write(record)
            if bar is not None:
                post = {"loss": f"{record['loss']:.3f}"}
                for key in ("mlm_accuracy", "accuracy", "rtd_accuracy"):
                    if key in record:
                        post[key.replace("_accuracy", "_acc")] = f"{record[key]:.3f}"
                if "tokens_per_s" in record:
                    post["tok/s"] = f"{record['tokens_per_s']:.0f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)

            if evaluate is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps):
                model.eval()
                with torch.no_grad(), autocast_context(info.device, cfg.bf16):
                    last_eval = evaluate(model, step) or {}
                model.train()
                log.write({"step": step, **{f"eval/{k}": v for k, v in last_eval.items()}})

            if (cfg.save_every and step % cfg.save_every == 0) or (step == cfg.max_steps and cfg.save_final):
                if info.is_main:
                    trainer_state = {"loop": asdict(cfg)}
                    save_checkpoint(
                        out_dir, step, model, optimizer, scheduler, trainer_state, cfg.keep_last, write_extra=on_checkpoint
                    )
                barrier(info)
        if evaluate is not None and start_step >= cfg.max_steps:  # a finished run resumed: same numbers again
            model.eval()
            with torch.no_grad(), autocast_context(info.device, cfg.bf16):
                last_eval = evaluate(model, step) or {}
            model.train()
    finally:
        if bar is not None:
            bar.close()
        log.close()
    # Per-step metrics live in metrics.jsonl; keeping them all here would grow without bound.
    return {"step": step, "start_step": start_step, "last": record, "eval": last_eval}


def eval_curve(run: Path, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``eval/<key>`` in a run's ``metrics.jsonl`` (what :class:`MetricsLog` wrote);
    empty when the run has none, unreadable lines skipped."""
    steps, values = [], []
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return steps, values
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if f"eval/{key}" in rec:
            steps.append(int(rec["step"]))
            values.append(float(rec[f"eval/{key}"]))
    return steps, values

