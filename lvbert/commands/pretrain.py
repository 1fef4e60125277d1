"""``lvbert pretrain``: pre-train one architecture from scratch (ELECTRA or MLM)."""

from __future__ import annotations

from lvbert.options import add_options, resolve_run


def register(sub) -> None:
    from lvbert.recipes.pretrain import PretrainConfig

    p = sub.add_parser(
        "pretrain",
        help="pre-train an architecture from scratch (electra or mlm)",
        description="Pre-train one architecture with ELECTRA's replaced-token detection (a narrow generator with the "
        "same layer list) or masked LM. Runs on one process, or on several under torchrun / accelerate launch.",
    )
    add_options(p, PretrainConfig, resume=True)
    p.set_defaults(func=run, config_class=PretrainConfig)


def run(args) -> int:
    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    cfg, resume = resolve_run(PretrainConfig, args)
    out = pretrain(cfg, resume=resume)
    print(f"model written to {out}")
    return 0
