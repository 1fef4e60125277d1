"""Atomic checkpoints: weights (safetensors), optimizer, scheduler, step, random states.

A checkpoint is a folder ``<out>/checkpoints/step-NNNNNNNN``. It is written under a
temporary name and renamed when complete, so a run killed at any moment leaves
the last complete checkpoint loadable; folders still named ``*.tmp*`` are ignored
and cleaned up. Only the last ``keep_last`` checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from lvbert.utils import atomic_write_json

_STEP_DIR = re.compile(r"^step-(\d{8})$")


def checkpoint_root(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir) -> list[Path]:
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / "trainer_state.json").exists()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(out_dir) -> Path | None:
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    out_dir,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    trainer_state: dict,
    keep_last: int = 2,
    write_extra=None,
) -> Path:
    """Write a complete checkpoint atomically and prune old ones. Call on the main process only."""
    root = checkpoint_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f"step-{step:08d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict() if scheduler is not None else {}, tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    if write_extra is not None:  # e.g. the tokenizer and the run config, inside the atomic folder
        write_extra(tmp)
    atomic_write_json(tmp / "trainer_state.json", {"step": step, **trainer_state})
    _fsync_dir(tmp)
    if final.exists():  # same step written again (e.g. the final save after a periodic one)
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(out_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob("step-*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path, model, optimizer=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Load a checkpoint folder into ``model`` (and optimizer/scheduler); returns its trainer state."""
    path = Path(path)
    load_model(model, str(path / "model.safetensors"))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    if restore_rng:
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "trainer_state.json").read_text())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
