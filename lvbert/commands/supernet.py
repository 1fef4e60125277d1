"""``lvbert supernet train|extract``: pre-train the weight-sharing supernet; take one arch out of it."""

from __future__ import annotations

from lvbert.options import add_options, resolve, resolve_run


def register(sub) -> None:
    from lvbert.recipes.supernet import ExtractConfig, SupernetTrainConfig

    p = sub.add_parser("supernet", help="weight-sharing supernet over layer types")
    ssub = p.add_subparsers(dest="supernet_command", metavar="ACTION", parser_class=type(p))
    ssub.required = True
    t = ssub.add_parser(
        "train",
        help="pre-train the supernet with single-path sampling (MLM)",
        description="Pre-train the supernet: every step samples one architecture (the same on every process) "
        "and trains that path with masked LM. Runs on one process, or on several under torchrun / accelerate launch.",
    )
    add_options(t, SupernetTrainConfig, resume=True)
    t.set_defaults(func=run_train, config_class=SupernetTrainConfig)
    e = ssub.add_parser(
        "extract",
        help="write one arch of a trained supernet as a standalone model folder",
        description="The arch's path with the supernet's weights, as an LvBertForMaskedLM folder (with the "
        "tokenizer) that 'lvbert finetune', 'lvbert eval' and AutoModel load; its outputs equal the supernet's path.",
    )
    add_options(e, ExtractConfig)
    e.set_defaults(func=run_extract, config_class=ExtractConfig)


def run_train(args) -> int:
    from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet

    cfg, resume = resolve_run(SupernetTrainConfig, args)
    out = train_supernet(cfg, resume=resume)
    print(f"supernet written to {out}")
    return 0


def run_extract(args) -> int:
    from lvbert.recipes.supernet import ExtractConfig, extract_arch

    out = extract_arch(resolve(ExtractConfig, args))
    print(f"model written to {out}")
    return 0
