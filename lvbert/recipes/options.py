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


def to_yaml(cfg) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
