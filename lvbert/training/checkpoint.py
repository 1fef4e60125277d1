"""Atomic checkpoints: weights (safetensors), optimizer, scheduler, step, random states.

A checkpoint is a folder ``<out>/checkpoints/step-NNNNNNNN``. It is written under a
temporary name and renamed when complete, so a run killed at any moment leaves
the last complete checkpoint loadable; folders still named ``*.tmp*`` are ignored
and cleaned up. Only the last ``keep_last`` checkpoints are kept.

Nothing is unpickled on resume: ``optimizer.pt``, ``scheduler.pt`` and ``rng.pt``
hold only tensors and plain Python values (numbers, strings, lists, tuples, dicts)
and are read with ``torch.load(weights_only=True)``, which refuses any other
object, so a checkpoint from someone else cannot run code. A checkpoint that
cannot be read (a truncated file, invalid JSON) is reported by file and the
previous good one is used (:func:`load_latest_good`).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_model

from lvbert.errors import LvBertError
from lvbert.utils import atomic_write_json, fix_permissions

_STEP_DIR = re.compile(r"^step-(\d{8})$")
FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json")


class CheckpointError(LvBertError):
    """A checkpoint file that cannot be read (names the file and why)."""


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


# ----------------------------------------------------------------------------- random states as plain values


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) random states as tensors and plain values only."""
    version, internal, gauss = random.getstate()
    key, pos, has_gauss, cached = np.random.get_state()[1:]
    state = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},  # fmt: skip
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- writing


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
    """Write a complete checkpoint atomically and prune old ones. Call on the main process only.

    A failed write (full disk, read-only folder) removes its temporary folder before the
    error goes up, so it does not fill the disk further; earlier checkpoints are untouched.
    """
    root = checkpoint_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f"step-{step:08d}.tmp-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        save_model(model, str(tmp / "model.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(_plain_scheduler_state(scheduler), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        if write_extra is not None:  # e.g. the tokenizer, inside the atomic folder
            write_extra(tmp)
        atomic_write_json(tmp / "trainer_state.json", {"step": step, **trainer_state})
        fix_permissions(tmp)
        _fsync_dir(tmp)
        if final.exists():  # same step written again (e.g. the final save after a periodic one)
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    for old in list_checkpoints(out_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob("step-*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _plain_scheduler_state(scheduler) -> dict:
    if scheduler is None:
        return {}
    # LambdaLR stores callable objects' __dict__ (never plain functions); ours are functions, stored as None
    return {k: v for k, v in scheduler.state_dict().items()}


# ----------------------------------------------------------------------------- reading


def _torch_file(path: Path):
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except Exception as e:  # pickle.UnpicklingError for planted objects, RuntimeError/EOFError for cut files
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "Unsupported operand" in str(e):
            raise CheckpointError(
                f"{path} holds objects other than tensors and plain values; refusing to load it (unpickling could run "
                "code); use a checkpoint written by lvbert"
            ) from None
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__}: {text[:120]})") from None


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Every file of a checkpoint folder, read and checked, nothing applied yet.

    Returns ``{"model": state dict, "optimizer": ..., "scheduler": ..., "rng": ..., "trainer_state": ...}``;
    raises :class:`CheckpointError` naming the first file that is missing, cut or unsafe.
    """
    path = Path(path)
    out = {}
    try:
        out["model"] = load_file(str(path / "model.safetensors"))
    except FileNotFoundError:
        raise CheckpointError(f"{path / 'model.safetensors'} is missing") from None
    except Exception as e:  # safetensors raises its own error types for truncated or invalid files
        raise CheckpointError(f"{path / 'model.safetensors'} cannot be read ({type(e).__name__}: {str(e)[:120]})") from None
    out["optimizer"] = _torch_file(path / "optimizer.pt")
    out["scheduler"] = _torch_file(path / "scheduler.pt")
    out["rng"] = _torch_file(path / "rng.pt")
    state_path = path / "trainer_state.json"
    try:
        out["trainer_state"] = json.loads(state_path.read_text(encoding="utf-8"))
        int(out["trainer_state"]["step"])
    except FileNotFoundError:
        raise CheckpointError(f"{state_path} is missing") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{state_path} is not a valid trainer state ({type(e).__name__})") from None
    if not isinstance(out["rng"], dict) or not {"python", "numpy", "torch"} <= set(out["rng"]):
        raise CheckpointError(f"{path / 'rng.pt'} is not a random-state file written by this version of lvbert")
    return out


def apply_checkpoint(contents: dict, model, optimizer=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Load what :func:`read_checkpoint` read into the model (and optimizer, scheduler, RNG); returns the trainer state."""
    # safetensors stores a shared tensor (tied embeddings, ELECTRA's shared embeddings) under one
    # of its names: a missing name is fine when another name of the same tensor was loaded.
    names_of: dict[int, set[str]] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        names_of.setdefault(id(t), set()).add(name)
    alias = {n: names for names in names_of.values() for n in names}
    missing, unexpected = model.load_state_dict(contents["model"], strict=False)
    missing = [m for m in missing if not (alias.get(m, set()) & contents["model"].keys())]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if optimizer is not None:
        optimizer.load_state_dict(contents["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(contents["scheduler"])
    if restore_rng:
        set_rng_state(contents["rng"])
    return contents["trainer_state"]


def load_latest_good(out_dir, model, optimizer=None, scheduler=None) -> tuple[Path | None, dict | None]:
    """Resume from the newest checkpoint that reads back completely.

    A broken checkpoint (a cut file, a planted pickle) is skipped with a warning naming the
    file, and the one before it is tried. Returns ``(folder, trainer state)``, or
    ``(None, None)`` when the run has no checkpoint; raises :class:`CheckpointError` when it
    has checkpoints and none of them is good.
    """
    ckpts = list_checkpoints(out_dir)
    problems = []
    for path in reversed(ckpts):
        try:
            contents = read_checkpoint(path)
        except CheckpointError as e:
            problems.append(str(e))
            warnings.warn(f"checkpoint {path.name} is broken: {e}; trying the one before it", stacklevel=2)
            continue
        return path, apply_checkpoint(contents, model, optimizer, scheduler)
    if problems:
        raise CheckpointError(
            f"no checkpoint of {out_dir} can be read ({len(problems)} broken, newest: {problems[0]}); "
            "start the run again without --resume in a new --out"
        )
    return None, None


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
