"""Typed run configs as command lines: each dataclass field is an option.

``add_options(parser, Config)`` adds ``--field-name`` for every field (help from the
field's ``metadata["help"]``; booleans get ``--x/--no-x``); ``resolve(Config, args)``
builds the config from defaults, then an optional YAML file (``--config``), then the
options given on the command line. Unknown YAML keys are errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

import yaml

from lvbert.errors import LvBertError


def _base_type(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def add_options(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(cls)
    parser.add_argument("--config", metavar="YAML", help="read options from a YAML file (command-line options win)")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "")
        if default is not None and default != "":
            help_text += f" (default: {default})"
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            kind = tp if tp in (int, float, str) else str
            parser.add_argument(
                flag, type=kind, default=argparse.SUPPRESS, help=help_text, metavar=f.metadata.get("metavar", f.name.upper())
            )


def resolve(cls, args: argparse.Namespace, **fixed):
    """Defaults < YAML (--config) < command-line options < ``fixed``."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict = {}
    path = getattr(args, "config", None)
    if path:
        p = Path(path)
        if not p.is_file():
            raise LvBertError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise LvBertError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise LvBertError(f"config file {path} must hold a mapping of option: value")
        unknown = sorted(set(k.replace("-", "_") for k in loaded) - names)
        if unknown:
            raise LvBertError(f"unknown option(s) {unknown} in {path}; known: {sorted(names)}")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
    values.update({k: v for k, v in vars(args).items() if k in names})
    values.update(fixed)
    missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in values]
    if missing:
        raise LvBertError("missing required option(s): " + ", ".join("--" + m.replace("_", "-") for m in missing))
    try:
        return cls(**values)
    except TypeError as e:
        raise LvBertError(str(e)) from None


def option(text: str, **kw):
    """A dataclass field documented for the command line (its help text)."""
    return dataclasses.field(metadata={"help": text}, **kw)


@dataclasses.dataclass
class TrainingOptions:
    """Options every training command shares (supernet, pretrain); subclasses add their own."""

    data: str = option("prepared data folder (lvbert data prepare)", default=None)
    out: str = option("run folder", default="runs/train")
    size: str = option("size preset: tiny, small, medium, base", default="small")
    steps: int = option("optimizer steps", default=20000)
    batch_size: int = option("global batch size (sequences per optimizer step, all processes)", default=128)
    grad_accum: int = option("micro-batches per step", default=1)
    lr: float | None = option("peak learning rate (default 5e-4; 2e-4 for base)", default=None)
    warmup_steps: int | None = option("linear warm-up steps (default min(10000, steps/10))", default=None)
    weight_decay: float = option("AdamW weight decay (not on LayerNorm and biases)", default=0.01)
    clip_norm: float = option("global gradient-norm clip", default=1.0)
    bf16: bool = option("bf16 autocast", default=False)
    dropout: float = option("hidden and attention dropout", default=0.1)
    seed: int = option("seed of the data order, masks, initialisation (and the supernet's sampled archs)", default=0)
    log_every: int = option("steps between metric lines", default=10)
    save_every: int = option("steps between checkpoints", default=1000)
    keep_last: int = option("checkpoints kept", default=2)
    eval_every: int = option("steps between validations", default=500)
    eval_sequences: int = option("fixed-mask validation sequences", default=256)
    device: str = option("auto, cpu, cuda", default="auto")
    progress: bool = option("progress bar", default=True)

    def __post_init__(self) -> None:
        if not self.data:
            raise LvBertError("--data is required: a folder written by 'lvbert data prepare'")
        for name in ("steps", "batch_size", "grad_accum", "eval_sequences", "log_every", "keep_last"):
            if getattr(self, name) <= 0:
                raise LvBertError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")


def to_yaml(cfg) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
