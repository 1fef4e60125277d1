"""``lvbert supernet train``: pre-train the weight-sharing supernet (single-path sampling)."""

from __future__ import annotations

from lvbert.recipes.options import add_options, resolve


def register(sub) -> None:
    from lvbert.recipes.supernet import SupernetTrainConfig

    p = sub.add_parser("supernet", help="weight-sharing supernet over layer types")
    ssub = p.add_subparsers(dest="supernet_command", metavar="ACTION", parser_class=type(p))
    ssub.required = True
    t = ssub.add_parser(
        "train",
        help="pre-train the supernet with single-path sampling (MLM)",
        description="Pre-train the supernet: every step samples one architecture (the same on every process) "
        "and trains that path with masked LM. Runs on one process, or on several under torchrun / accelerate launch.",
    )
    add_options(t, SupernetTrainConfig)
    t.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="DIR",
        help="continue the run in DIR (default: --out) from its last checkpoint",
    )
    t.set_defaults(func=run_train)


def run_train(args) -> int:
    from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet

    fixed = {}
    if isinstance(args.resume, str):
        fixed["out"] = args.resume
    cfg = resolve(SupernetTrainConfig, args, **fixed)
    out = train_supernet(cfg, resume=bool(args.resume))
    print(f"supernet written to {out}")
    return 0
