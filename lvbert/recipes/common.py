"""Set-up shared by the training recipes (supernet, pretrain): run folders, data checks,
step settings, and saving the tokenizer and the resolved config."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lvbert.errors import LvBertError
from lvbert.training.checkpoint import latest_checkpoint
from lvbert.utils import atomic_write_text, check_out_dir

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


def check_positions(seq_len: int, max_positions: int) -> None:
    if seq_len > max_positions:
        raise LvBertError(
            f"the data's sequences have {seq_len} tokens but the model has {max_positions} positions; "
            f"prepare the data with --seq-len {max_positions} or less, or raise max_position_embeddings"
        )


def save_tokenizer(tokenizer, folder: Path) -> None:
    tokenizer.save_pretrained(str(folder))


def default_lr(size: str) -> float:
    """Pre-training peak learning rate of the official recipe (ELECTRA's: 2e-4 for base, else 5e-4)."""
    return 2e-4 if size == "base" else 5e-4


def step_settings(cfg, world_size: int) -> tuple[int, float, int]:
    """(micro-batch per process, peak lr, warm-up steps) of a training config (supernet or pretrain)."""
    if cfg.batch_size % (world_size * cfg.grad_accum):
        raise LvBertError(
            f"--batch-size {cfg.batch_size} must be divisible by processes x --grad-accum = {world_size * cfg.grad_accum}"
        )
    micro = cfg.batch_size // (world_size * cfg.grad_accum)
    lr = cfg.lr if cfg.lr is not None else default_lr(cfg.size)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(10000, cfg.steps // 10)
    return micro, lr, warmup


def loop_config(cfg, out: Path):
    """The loop settings shared by the supernet and pre-training configs."""
    from lvbert.training.loop import LoopConfig

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


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def check_teacher_vocab(teacher_dir: Path, tokenizer, what: str) -> None:
    """The teacher must read the same ids: its tokenizer's vocabulary equals the data's."""
    from lvbert.data.tokenizer import load_tokenizer, vocab_fingerprint

    try:
        t_tok = load_tokenizer(teacher_dir)
    except LvBertError:
        raise LvBertError(f"{teacher_dir} has no tokenizer; save the teacher's tokenizer next to it (the vocabulary must "
                          f"match {what})") from None  # fmt: skip
    if vocab_fingerprint(t_tok) != vocab_fingerprint(tokenizer):
        raise LvBertError(f"the teacher's vocabulary ({len(t_tok):,} tokens) is not the one of {what} "
                          f"({len(tokenizer):,}); the student must read the teacher's token ids: prepare the data "
                          "with the teacher's tokenizer")  # fmt: skip
