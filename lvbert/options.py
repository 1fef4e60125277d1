"""Typed run configs as command lines: each dataclass field is an option.

``add_options(parser, Config)`` adds ``--field-name`` for every field (help from the
field's ``metadata["help"]``; booleans get ``--x/--no-x``; ``list[str]`` fields take a
comma-separated list or several words), plus ``--config YAML`` and, for resumable
commands, ``--resume [DIR]``. ``resolve(Config, args)`` builds the config from, in
increasing priority: the field defaults, the config saved in the run folder (when
resuming), the YAML file, the command-line options, and ``fixed`` values.

Every value, from the command line or from YAML, is converted to the field's declared
type by :func:`coerce` (YAML reads ``1e-3`` as a string, and ``X | None`` must not fall
back to ``str``); a value that does not fit is a one-line error naming the option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
from pathlib import Path

import yaml

from lvbert.errors import LvBertError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class FieldType:
    """What :func:`coerce` turns a raw value into."""

    base: type  # int, float, str, bool (the element type for lists)
    optional: bool = False  # ``X | None``
    is_list: bool = False  # ``list[X]``


def field_type(hint) -> FieldType:
    """``float | None`` -> FieldType(float, optional=True); ``list[str] | None`` -> FieldType(str, True, True)."""
    optional = False
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"option type {hint} is not supported (one type, optionally with None)")
        hint = args[0]
        origin = typing.get_origin(hint)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return FieldType(args[0] if args else str, optional, True)
    if hint not in (int, float, str, bool):
        raise TypeError(f"option type {hint} is not supported (int, float, str, bool or a list of them)")
    return FieldType(hint, optional)


def _scalar(value, base: type, name: str):
    what = {int: "an integer", float: "a number", bool: "true or false", str: "text"}[base]
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                pass
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise LvBertError(f"--{name.replace('_', '-')} must be {what}, got {value!r}")


def coerce(value, ftype: FieldType, name: str):
    """``value`` (from argparse or YAML) as the declared type; LvBertError when it does not fit."""
    if value is None or (ftype.optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if ftype.optional:
            return None
        raise LvBertError(f"--{name.replace('_', '-')} needs a value")
    if ftype.is_list:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        items = [q.strip() for p in items for q in (p.split(",") if isinstance(p, str) else [p])]
        return [_scalar(p, ftype.base, name) for p in items if not (isinstance(p, str) and p.strip() == "")]
    return _scalar(value, ftype.base, name)


def _argparse_type(ftype: FieldType, name: str):
    def convert(text: str):
        try:
            return coerce(text, FieldType(ftype.base, ftype.optional), name)
        except LvBertError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = ftype.base.__name__  # argparse names the type in its messages
    return convert


def config_fields(cls) -> dict[str, tuple[dataclasses.Field, FieldType]]:
    """``{name: (field, type)}`` of a config dataclass, types resolved."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, field_type(hints[f.name])) for f in dataclasses.fields(cls)}


def flag_name(name: str) -> str:
    """The command-line flag of a field: ``--max-latency``; a trailing underscore (a Python keyword
    as a field name, ``with_``) is dropped: ``--with``."""
    return "--" + name.rstrip("_").replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (), resume: bool = False) -> None:
    """An option per field of ``cls`` (``metadata["positional"]`` makes it a positional argument)."""
    parser.add_argument("--config", metavar="YAML", help="read options from a YAML file (command-line options win)")
    if resume:
        parser.add_argument(
            "--resume", nargs="?", const=True, default=False, metavar="DIR",
            help="continue the run in DIR (default: --out) from its last checkpoint; its saved options are the defaults",
        )  # fmt: skip
    for name, (f, ftype) in config_fields(cls).items():
        if name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "")
        if default not in (None, "", [], ()) and not isinstance(default, bool):
            help_text += f" (default: {default})"
        if f.metadata.get("positional"):
            parser.add_argument(name, nargs="?", default=argparse.SUPPRESS, type=_argparse_type(ftype, name),
                                metavar=f.metadata.get("metavar", name.upper()), help=help_text)  # fmt: skip
            continue
        flag, metavar = flag_name(name), f.metadata.get("metavar", name.rstrip("_").upper())
        if ftype.base is bool and not ftype.is_list:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)  # fmt: skip
        elif ftype.is_list:
            parser.add_argument(flag, dest=name, nargs="+", default=argparse.SUPPRESS, metavar=metavar,
                                help=help_text + " (several values, or one comma-separated)")  # fmt: skip
        else:
            parser.add_argument(flag, dest=name, type=_argparse_type(ftype, name), default=argparse.SUPPRESS,
                                metavar=metavar, help=help_text)  # fmt: skip


def read_yaml_options(path: str | Path, cls) -> dict:
    """The options in a YAML file (a mapping); unknown keys are errors."""
    p = Path(path)
    if not p.is_file():
        raise LvBertError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise LvBertError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise LvBertError(f"config file {path} must hold a mapping of option: value")
    names = set(config_fields(cls))
    values = {}
    for k, v in loaded.items():
        key = str(k).replace("-", "_")
        values[key + "_" if key not in names and key + "_" in names else key] = v  # with: -> with_
    unknown = sorted(set(values) - names)
    if unknown:
        raise LvBertError(f"unknown option(s) {unknown} in {path}; known: {sorted(names)}")
    return values


def collect(cls, args: argparse.Namespace, base: dict | None = None, **fixed) -> dict:
    """Typed option values: ``base`` < YAML (``--config``) < command line < ``fixed`` (no defaults filled in)."""
    fields = config_fields(cls)
    values: dict = {k: v for k, v in (base or {}).items() if k in fields}
    path = getattr(args, "config", None)
    if path:
        values.update(read_yaml_options(path, cls))
    values.update({k: v for k, v in vars(args).items() if k in fields})
    values.update(fixed)
    values = {k: coerce(v, fields[k][1], k) for k, v in values.items()}
    if values.get("bf16"):  # no bf16 on a CPU without native bf16 instructions (about 100x slower there)
        from lvbert.hardware import resolve_bf16

        values["bf16"] = resolve_bf16(True, values.get("device", "auto"), force=os.environ.get("LVBERT_FORCE_BF16") == "1")
    return values


def resolve(cls, args: argparse.Namespace, base: dict | None = None, **fixed):
    """The config ``cls`` from the options (see :func:`collect`) and the field defaults."""
    values = collect(cls, args, base, **fixed)
    missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and f.name not in values]  # fmt: skip
    if missing:
        raise LvBertError("missing required option(s): " + ", ".join("--" + m.replace("_", "-") for m in missing))
    try:
        return cls(**values)
    except TypeError as e:
        raise LvBertError(str(e)) from None


# Options that cannot change a run's result: they may differ on ``--resume``; any other option is refused.
RESUME_FREE = frozenset({"progress", "log_every", "threads", "keep_last", "overwrite", "out", "config"})


def _recorded_options(run_dir: Path) -> tuple[dict, bool]:
    """``(options, training)``: the options a run folder was started with and whether it is a training
    run (``run_config.yaml``; fine-tuning's ``results.json`` or unfinished ``.OUT.partial/progress.json``)
    rather than a search (``search_config.json``, which a resume may extend)."""

    run_dir = Path(run_dir)
    partial = run_dir.parent / f".{run_dir.name}.partial" / "progress.json"
    try:
        if (run_dir / "run_config.yaml").is_file():
            return dict((yaml.safe_load((run_dir / "run_config.yaml").read_text(encoding="utf-8")) or {}).get("config") or {}), True
        if (run_dir / "search_config.json").is_file():
            return dict(json.loads((run_dir / "search_config.json").read_text(encoding="utf-8")).get("options") or {}), False
        for path in (run_dir / "results.json", partial):  # lvbert finetune
            if path.is_file():
                return dict(json.loads(path.read_text(encoding="utf-8")).get("options") or {}), True
    except (ValueError, yaml.YAMLError, UnicodeDecodeError, AttributeError, TypeError):
        pass  # the recipe reports a broken file when it reads it
    return {}, False


def saved_options(run_dir: str | Path) -> dict:
    """The options a run folder was started with: ``config`` of ``run_config.yaml`` (training runs),
    ``options`` of ``search_config.json`` (searches) or of fine-tuning's ``results.json`` (or its
    unfinished ``.OUT.partial/progress.json``); empty when there are none or they cannot be read."""
    return _recorded_options(Path(run_dir))[0]


def check_resume_options(cls, given: dict, saved: dict, run_dir, strict: bool = False) -> None:
    """A one-line error when an option given on ``--resume`` differs from the one the run was started
    with: the result would not be the run's. Options in :data:`RESUME_FREE` may differ; a saved
    ``None`` was not recorded (e.g. the blocks one ``nas train`` job trains) and is not compared,
    unless ``strict`` (the recipe compares its complete options)."""
    fields = config_fields(cls)
    for name, value in given.items():
        if name in RESUME_FREE or name not in fields or name not in saved or (saved[name] is None and not strict):
            continue
        try:
            before = None if saved[name] is None else coerce(saved[name], fields[name][1], name)
        except LvBertError:
            continue  # an unreadable saved value: the recipe's own checks report the folder
        if before != value:
            raise LvBertError(f"cannot resume {run_dir}: {flag_name(name)} was {before!r} and is now {value!r}; "
                              f"resume with the same settings or start a new run in another --out")  # fmt: skip


def resolve_run(cls, args: argparse.Namespace):
    """``(config, resume)`` of a resumable command: ``--resume DIR`` sets ``out`` and makes the
    options saved in ``DIR`` the defaults (:func:`saved_options`), so ``--resume DIR`` alone continues a run.
    A training run's options given again with other values are refused (:func:`check_resume_options`)."""
    resume = getattr(args, "resume", False)
    fixed = {"out": resume} if isinstance(resume, str) else {}
    base = None
    if resume:
        out = fixed.get("out") or getattr(args, "out", None)
        if out is None and getattr(args, "config", None):
            out = read_yaml_options(args.config, cls).get("out")
        base, training = _recorded_options(Path(out)) if out else ({}, False)
        if training and base:
            check_resume_options(cls, collect(cls, args, None, **fixed), base, out)
    return resolve(cls, args, base=base or None, **fixed), bool(resume)


def option(text: str, **kw):
    """A dataclass field documented for the command line (its help text)."""
    metadata = {"help": text}
    for key in ("positional", "metavar"):
        if key in kw:
            metadata[key] = kw.pop(key)
    return dataclasses.field(metadata=metadata, **kw)


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
        if self.lr is not None and not self.lr > 0:
            raise LvBertError(f"--lr must be positive, got {self.lr}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise LvBertError(f"--warmup-steps must be 0 or more, got {self.warmup_steps}")
        if not 0 <= self.dropout < 1:
            raise LvBertError(f"--dropout must be in [0, 1), got {self.dropout}")


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
