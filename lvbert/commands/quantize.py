"""``lvbert quantize``: a thin wrapper over :mod:`lvbert.recipes.quantize`."""

from __future__ import annotations

from lvbert.options import add_options, resolve_run
from lvbert.recipes.export import ExportConfig, export
from lvbert.recipes.quantize import QuantizeConfig, quantize


def register(sub) -> None:
    p = sub.add_parser(
        "quantize",
        help="KDLSQ quantization-aware training of a fine-tuned model (2-8 bit weights, 8-bit activations)",
        description="--model FINETUNED --task T --weight-bits B [--act-bits 8|0] --out DIR: the model fake-quantized "
        "with learnable clip values, trained by distillation from its full-precision self (--no-kd: labels only); "
        "writes the quantized model, its packed low-bit weights and results.json.",
    )
    add_options(p, QuantizeConfig, resume=True)
    p.set_defaults(func=run_quantize, config_class=QuantizeConfig)
    register_export(sub)


def run_quantize(args) -> int:
    cfg, resume = resolve_run(QuantizeConfig, args)
    out = quantize(cfg, resume=resume)
    print(f"quantized model written to {out}")
    return 0


def register_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write model.onnx of a fine-tuned or quantized model (fp32, int8 with learned scales, or dynamic int8)",
        description="--model DIR [--task T] [--dynamic-int8]: model.onnx in the model folder for lvbert predict "
        "--runtime onnx; a quantized model exports as int8 with its learned scales (needs --task for calibration); "
        "with --task the predictions are checked against the torch model on the dev split.",
    )
    add_options(p, ExportConfig)
    p.set_defaults(func=run_export, config_class=ExportConfig)


def run_export(args) -> int:
    cfg, _ = resolve_run(ExportConfig, args)
    export(cfg)
    return 0
