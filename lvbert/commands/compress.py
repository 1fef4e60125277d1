"""``lvbert compress``: a thin wrapper over :mod:`lvbert.recipes.compress`."""

from __future__ import annotations

from lvbert.options import add_options, resolve
from lvbert.recipes.compress import PROFILES, CompressConfig, compress


def register(sub) -> None:
    p = sub.add_parser(
        "compress",
        help="a fine-tuned teacher -> a small int8 ONNX model per budget that runs without lvbert, with a report",
        description="--teacher FINETUNED --task T --corpus PREPARED --budget params=0.33x --out DIR: NAS-BERT search "
        "from the teacher, general and task distillation (TinyBERT), KDLSQ int8 training, int8 ONNX export, latency "
        "measured on this machine; DIR/<budget>/ runs with onnxruntime and tokenizers alone, DIR/report.md says "
        "whether it was worth it (against the teacher, its onnxruntime dynamic int8 and a same-size AF student). "
        "Re-running the command continues: finished stages are skipped, an interrupted one resumes. Profiles: "
        + "; ".join(f"{k}: {v.description}" for k, v in PROFILES.items()),
    )
    add_options(p, CompressConfig)
    p.set_defaults(func=run, config_class=CompressConfig)


def run(args) -> int:
    cfg = resolve(CompressConfig, args)
    compress(cfg)
    return 0
