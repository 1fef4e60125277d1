"""``lvbert pretrain``: pre-train one architecture from scratch (ELECTRA or MLM)."""

from __future__ import annotations

from lvbert.recipes.options import add_options, resolve


def register(sub) -> None:
    from lvbert.recipes.pretrain import PretrainConfig

    p = sub.add_parser(
        "pretrain",
        help="pre-train an architecture from scratch (electra or mlm)",
        description="Pre-train one architecture with ELECTRA's replaced-token detection (a narrow generator with the "
        "same layer list) or masked LM. Runs on one process, or on several under torchrun / accelerate launch.",
    )
    add_options(p, PretrainConfig)
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="DIR",
                   help="continue the run in DIR (default: --out) from its last checkpoint")
    p.set_defaults(func=run)


def run(args) -> int:
    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    fixed = {"out": args.resume} if isinstance(args.resume, str) else {}
    out = pretrain(resolve(PretrainConfig, args, **fixed), resume=bool(args.resume))
    print(f"model written to {out}")
    return 0
