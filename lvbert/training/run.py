"""Run folders of the training commands: the output check, the saved ``run_config.yaml`` that a
``--resume`` is checked against, the step settings (micro-batch, default learning rates, warm-up)
and the loop settings a config maps to."""

from __future__ import annotations

from pathlib import Path

import yaml

from lvbert.errors import LvBertError
from lvbert.training.checkpoint import latest_checkpoint
from lvbert.training.loop import LoopConfig
from lvbert.utils import atomic_write_text, check_out_dir, check_output_dir

RUN_CONFIG = "run_config.yaml"


def prepare_run_dir(out: str | Path, resume: bool, identity: dict) -> bool:
    """Check ``out`` for a fresh run or a resume; returns True when resuming from a checkpoint.

    ``identity`` holds what must not change across a resume (sizes, space, tokenizer,
    sequence length); a mismatch is a one-line error and nothing is overwritten.
    """
    out = check_out_dir(out)
    saved = out / RUN_CONFIG
    if not resume:
        if saved.exists() or latest_checkpoint(out) is not None:
            raise LvBertError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
        return False
    if not saved.exists():
        raise LvBertError(f"cannot resume: {out} holds no run ({RUN_CONFIG} missing); start it without --resume")
    try:
        before = (yaml.safe_load(saved.read_text(encoding="utf-8")) or {}).get("identity", {})
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
        raise LvBertError(f"cannot resume: {saved} is not a run config written by lvbert; start a new run") from None
    for key, value in identity.items():
        if key in before and before[key] != value:
            raise LvBertError(
                f"cannot resume {out}: {key} was {before[key]!r} and is now {value!r}; use the same settings or another --out"
            )
    return latest_checkpoint(out) is not None


def write_run_config(out: str | Path, cfg_dict: dict, identity: dict) -> None:
    text = yaml.safe_dump({"config": cfg_dict, "identity": identity}, sort_keys=False)
    atomic_write_text(Path(out) / RUN_CONFIG, text)


def pretrain_lr(size: str) -> float:
    """Pre-training peak learning rate of the official recipe (ELECTRA's: 2e-4 for base, else 5e-4)."""
    return 2e-4 if size == "base" else 5e-4


def finetune_lr(hidden_size: int, large: float) -> float:
    """Fine-tuning peak learning rate: 3e-4 for hidden sizes <= 384 (small, medium), else ``large``
    (ELECTRA's 1e-4 for GLUE and SQuAD, KG-BERT's 5e-5 for graphs and the conditional MLM)."""
    return 3e-4 if hidden_size <= 384 else large


def step_settings(cfg, world_size: int) -> tuple[int, float, int]:
    """(micro-batch per process, peak lr, warm-up steps) of a training config (supernet or pretrain)."""
    if cfg.batch_size % (world_size * cfg.grad_accum):
        raise LvBertError(
            f"--batch-size {cfg.batch_size} must be divisible by processes x --grad-accum = {world_size * cfg.grad_accum}"
        )
    micro = cfg.batch_size // (world_size * cfg.grad_accum)
    lr = cfg.lr if cfg.lr is not None else pretrain_lr(cfg.size)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(10000, cfg.steps // 10)
    return micro, lr, warmup


def loop_config(cfg, out: Path) -> LoopConfig:
    """The loop settings shared by the supernet and pre-training configs."""
    return LoopConfig(
        out_dir=str(out),
        max_steps=cfg.steps,
        grad_accum=cfg.grad_accum,
        clip_norm=cfg.clip_norm,
        bf16=cfg.bf16,
        log_every=cfg.log_every,
        save_every=cfg.save_every,
        keep_last=cfg.keep_last,
        eval_every=cfg.eval_every,
        seed=cfg.seed,
        progress=cfg.progress,
    )


def check_run_output(out, inputs: dict, overwrite: bool, resume: bool, own_run: bool | None = None,
                     marker: str = RUN_CONFIG, what: str = "run of this command") -> Path:  # fmt: skip
    """The --out folder of a run (distill, quantize, nas train, search), checked before any work.

    Never one of ``inputs``; an existing non-empty folder only when it is this command's own run and
    ``--resume`` was given (``own_run``, default: it holds the run's ``marker`` file; the run's settings
    are then checked by ``prepare_run_dir`` or the search; ``what`` names such a run in the error), or with
    ``--overwrite`` (its old contents removed).
    """
    out = check_out_dir(out)
    if resume and overwrite:
        raise LvBertError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    if own_run is None:
        own_run = resume and (out / marker).is_file()
    if resume and not own_run:
        raise LvBertError(f"cannot resume: {out} holds no {what} (it does not hold a {what}'s {marker}); start it "
                          "without --resume")  # fmt: skip
    return check_output_dir(out, inputs=inputs, overwrite=overwrite, own_run=own_run)
