"""Set-up shared by the training recipes (supernet, pretrain): run folders, data checks,
validation on the fixed-mask set, and saving the tokenizer and the resolved config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import yaml

from lvbert.errors import LvBertError
from lvbert.training.checkpoint import latest_checkpoint
from lvbert.utils import atomic_write_text

RUN_CONFIG = "run_config.yaml"


def prepare_run_dir(out: str | Path, resume: bool, identity: dict) -> bool:
    """Check ``out`` for a fresh run or a resume; returns True when resuming from a checkpoint.

    ``identity`` holds what must not change across a resume (sizes, space, tokenizer,
    sequence length); a mismatch is a one-line error and nothing is overwritten.
    """
    out = Path(out)
    saved = out / RUN_CONFIG
    if not resume:
        if saved.exists() or latest_checkpoint(out) is not None:
            raise LvBertError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
        return False
    if not saved.exists():
        raise LvBertError(f"cannot resume: {out} holds no run ({RUN_CONFIG} missing); start it without --resume")
    before = yaml.safe_load(saved.read_text()).get("identity", {})
    for key, value in identity.items():
        if key in before and before[key] != value:
            raise LvBertError(
                f"cannot resume {out}: {key} was {before[key]!r} and is now {value!r}; use the same settings or another --out"
            )
    return latest_checkpoint(out) is not None


def write_run_config(out: str | Path, cfg_dict: dict, identity: dict) -> None:
    text = yaml.safe_dump({"config": cfg_dict, "identity": identity}, sort_keys=False)
    atomic_write_text(Path(out) / RUN_CONFIG, text)


def data_identity(data_dir: str | Path) -> tuple[dict, object]:
    """(identity fields, tokenizer) of a prepared data folder."""
    from lvbert.data.packed import load_data_tokenizer, load_manifest

    manifest = load_manifest(data_dir)
    tokenizer = load_data_tokenizer(data_dir)
    fingerprint = manifest.get("tokenizer", {}).get("fingerprint") or manifest.get("tokenizer", {}).get("sha256")
    return {"seq_len": int(manifest["seq_len"]), "tokenizer": fingerprint, "vocab_size": len(tokenizer)}, tokenizer


def check_positions(seq_len: int, max_positions: int) -> None:
    if seq_len > max_positions:
        raise LvBertError(
            f"the data's sequences have {seq_len} tokens but the model has {max_positions} positions; "
            f"prepare the data with --seq-len {max_positions} or less, or raise max_position_embeddings"
        )


def save_tokenizer(tokenizer, folder: Path) -> None:
    tokenizer.save_pretrained(str(folder))


def default_lr(size: str) -> float:
    """Pre-training peak learning rate of the recipe (REFERENCE.md section 6)."""
    return 2e-4 if size == "base" else 5e-4


def finalize_dir(tmp: Path, final: Path) -> None:
    """Replace ``final`` by the complete folder ``tmp`` (rename; the old one goes only after)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


@torch.no_grad()
def mlm_eval(model, valid: dict, batch_size: int = 64, arch: str | None = None, device=None) -> dict:
    """Masked-LM accuracy and loss over a fixed-mask set; exact counts, same order every time.

    ``model`` is an MLM model (``LvBertForMaskedLM``) or the supernet (then ``arch`` is needed).
    """
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    n = valid["input_ids"].shape[0]
    correct, total, loss_sum = 0, 0, 0.0
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size].to(device) for k, v in valid.items() if k in ("input_ids", "attention_mask", "token_type_ids", "labels")}
        kwargs = {"arch": arch} if arch is not None else {}
        out = model(**batch, **kwargs)
        targets = batch["labels"][batch["labels"] != -100]
        correct += int((out.logits.argmax(-1) == targets).sum())
        total += int(targets.numel())
        loss_sum += float(out.loss) * int(targets.numel())
    model.train(was_training)
    return {"mlm_accuracy": correct / max(total, 1), "mlm_loss": loss_sum / max(total, 1), "masked_tokens": total}


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
