"""Checks the deployment recipes (distill, quantize, nas, export, predict) run before any work:
option values, output folders, and the weight files of the models they read."""

from __future__ import annotations

from pathlib import Path

from lvbert.errors import LvBertError


def check_rates(cfg, *names: str) -> None:
    """A one-line error for a learning rate (or other option) that is set and not positive."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and not value > 0:
            raise LvBertError(f"--{name.replace('_', '-')} must be positive, got {value}")


def check_non_negative(cfg, *names: str) -> None:
    """A one-line error for an option (a weight decay, a clip, a step count where 0 means off) below 0."""
    for name in names:
        value = getattr(cfg, name)
        if not value >= 0:
            raise LvBertError(f"--{name.replace('_', '-')} must be 0 or more, got {value}")


def check_run_output(out, inputs: dict, overwrite: bool, resume: bool, own_run: bool | None = None) -> Path:
    """The --out folder of a training command (distill, quantize, nas train), checked before any work.

    Never one of ``inputs``; an existing non-empty folder only when it is this command's own run and
    ``--resume`` was given (``own_run``, default: it holds a ``run_config.yaml``; the run's settings are
    then checked by ``prepare_run_dir``), or with ``--overwrite`` (its old contents removed).
    """
    from lvbert.recipes.common import RUN_CONFIG
    from lvbert.utils import check_out_dir, check_output_dir

    out = check_out_dir(out)
    if resume and overwrite:
        raise LvBertError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    if own_run is None:
        own_run = resume and (out / RUN_CONFIG).is_file()
    if resume and not own_run:
        raise LvBertError(f"cannot resume: {out} holds no run of this command ({RUN_CONFIG} missing); start it without "
                          "--resume")  # fmt: skip
    return check_output_dir(out, inputs=inputs, overwrite=overwrite, own_run=own_run)


def check_model_weights(folder, option: str) -> None:
    """A one-line error for a ``.safetensors`` file in ``folder`` that is empty, truncated or not one
    (safetensors' own error names no file); folders without such files are left to the loaders."""
    from safetensors import safe_open

    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as e:  # SafetensorError, or an OSError for an unreadable file
            raise LvBertError(f"{option} {folder}: {path.name} is empty, truncated or not a safetensors file "
                              f"({str(e).splitlines()[0][:100] if str(e) else type(e).__name__}); write the model "
                              "again") from None  # fmt: skip
