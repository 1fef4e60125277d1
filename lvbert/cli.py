"""The ``lvbert`` command line: a thin dispatch onto typed, importable functions.

Each command family lives in its own module that exposes ``register(subparsers)``;
a registered sub-command stores a callable in ``func`` that takes the parsed
namespace and returns an exit status. User mistakes raise :class:`LvBertError`,
printed here as one line with exit status 2 (no traceback); a failed file-system write
(full disk, read-only folder) is one line with exit status 1 (``LVBERT_TRACEBACK=1`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lvbert.errors import LvBertError, write_failure

# Modules that add sub-commands. A module that fails to import (e.g. an optional
# dependency missing) is reported only when its command is used.
COMMAND_MODULES = [
    "lvbert.commands.arch",
    "lvbert.commands.data",
    "lvbert.commands.supernet",
    "lvbert.commands.search",
    "lvbert.commands.nas",
    "lvbert.commands.pretrain",
    "lvbert.commands.finetune",
    "lvbert.commands.eval",
    "lvbert.commands.distill",
    "lvbert.commands.kg",
    "lvbert.commands.quantize",
    "lvbert.commands.quickstart",
    "lvbert.commands.convert",
    "lvbert.commands.compress",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every user error
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lvbert", description="LV-BERT: layer-variety BERT encoders.")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads of torch for this command (default: torch's, one per core, fewer while other "
                             "processes keep them busy)")  # fmt: skip
    parser.add_argument("--force-bf16", action="store_true",
                        help="run --bf16 even on a CPU without native bf16 instructions (AVX512-BF16 or AMX), where it "
                             "is about 100x slower than fp32; without it such a CPU runs fp32 with a one-line note")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # command family not written yet
                continue
            raise
        module.register(sub)
    return parser


class OneLineWarnings:
    """Print warnings as 'lvbert: warning: ...' lines while a command runs."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.showwarning = lambda message, *a, **k: print(f"lvbert: warning: {message}", file=sys.stderr)
        return self

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.force_bf16:
        os.environ["LVBERT_FORCE_BF16"] = "1"
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    from lvbert import threads

    if threads.wanted_by_default(args.threads):
        threads.enable()  # the training loop adapts the thread count to other load (lvbert/threads.py)
    try:
        with OneLineWarnings():
            return int(args.func(args) or 0)
    except LvBertError as e:
        print(f"lvbert: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lvbert: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a full disk or a read-only folder is one line too; anything else is a bug
        message = write_failure(e)
        if message is None or os.environ.get("LVBERT_TRACEBACK"):
            raise
        print(f"lvbert: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
