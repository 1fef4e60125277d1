"""``lvbert convert``: a thin wrapper over :mod:`lvbert.recipes.convert`."""

from __future__ import annotations

from lvbert.options import add_options, resolve_run
from lvbert.recipes.convert import ConvertConfig, convert


def register(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="a released LV-BERT or ELECTRA TensorFlow checkpoint into an lvbert model folder (no TensorFlow needed)",
        description="PATH --out DIR [--part discriminator|generator|both]: PATH is a checkpoint prefix "
        "(model.ckpt-N), a folder holding one, or the release zip; arch and sizes are read from the checkpoint, "
        "the tokenizer from its vocab.txt. The converted config sets conv_mask_padding=false: the convolutions see "
        "the padding positions, as the official code computes; set it to true in config.json for outputs that do "
        "not depend on padding.",
    )
    add_options(p, ConvertConfig)
    p.set_defaults(func=run_convert, config_class=ConvertConfig)


def run_convert(args) -> int:
    cfg, _ = resolve_run(ConvertConfig, args)
    convert(cfg)
    return 0
