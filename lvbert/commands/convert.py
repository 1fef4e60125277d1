"""``lvbert convert``: a thin wrapper over :mod:`lvbert.recipes.convert`."""

from __future__ import annotations

from lvbert.options import add_options, resolve_run


def register(sub) -> None:
    from lvbert.recipes.convert import ConvertConfig

    p = sub.add_parser(
        "convert",
        help="a released LV-BERT or ELECTRA TensorFlow checkpoint into an lvbert model folder (no TensorFlow needed)",
        description="PATH --out DIR [--part discriminator|generator|both]: PATH is a checkpoint prefix "
        "(model.ckpt-N), a folder holding one, or the release zip; arch and sizes are read from the checkpoint, "
        "the tokenizer from its vocab.txt. See docs/convert.md.",
    )
    add_options(p, ConvertConfig)
    p.set_defaults(func=run_convert, config_class=ConvertConfig)


def run_convert(args) -> int:
    from lvbert.recipes.convert import ConvertConfig, convert

    cfg, _ = resolve_run(ConvertConfig, args)
    convert(cfg)
    return 0
