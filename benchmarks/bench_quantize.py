"""CPU inference latency of the deployment paths of a classifier, side by side in one run.

For each size (LV-BERT-small's 24-slot list at the small and base presets, a 30,522 vocabulary,
two labels), at batch 1 and 8 and sequence 128, one thread: the fp32 PyTorch model; torchao's
int8 dynamic-activation / int8-weight model (``lvbert predict --runtime torchao``, eager) and
the same under ``torch.compile`` (inductor, compiled per batch shape in the warm-up round); onnxruntime
on the fp32 ONNX export; onnxruntime on the int8 export of the W8A8 quantized model (``lvbert
quantize``: QDQ with the learned scales, integer matmuls); onnxruntime's own post-training
dynamic int8 (``lvbert export --dynamic-int8``, the baseline a user would try first); and what an
Optimum user runs (its O2 level, then dynamic int8): onnxruntime's transformer optimizer
(``onnxruntime.transformers.optimizer``: fused attention, skip-LayerNorm, bias-GELU where its patterns
match) on the fp32 graph, then dynamic int8 -- on lvbert's graph, and for the ``bert`` arch also on
Hugging Face ``BertForSequenceClassification`` of the same sizes exported as Optimum exports it
(TorchScript exporter), where its attention fusion applies. The
weights are random and the quantized model's clip values initialised and calibrated (percentile,
on random batches) but not trained: latency does not depend on them. The paths alternate within
every round, so other load on the machine hits all alike; medians are reported with the matmul
peak measured in the same run, and the file sizes. Writes ``benchmarks/results/quantize.json``.

    .venv/bin/python benchmarks/bench_quantize.py [--sizes small base] [--batches 1 8] [--rounds 10]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import machine_info, matmul_peak  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "quantize.json"
PATHS = ("torch fp32", "torchao int8", "torchao int8 + compile", "ORT fp32", "ORT int8 (QAT export)",
         "ORT dynamic int8 (PTQ)", "ORT optimized + dynamic int8 (Optimum O2)", "HF BERT: ORT optimized + dynamic int8")


def _batch(n: int, seq: int, vocab: int, seed: int) -> dict:
    ids = torch.randint(5, vocab, (n, seq), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}


def optimized_dynamic(fp32_onnx: Path, folder: Path, config) -> Path:
    """An Optimum user's path: onnxruntime's transformer optimizer on the fp32 graph, then dynamic int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    folder.mkdir()
    opt = optimize_model(str(fp32_onnx), model_type="bert", num_heads=config.num_attention_heads,
                         hidden_size=config.hidden_size)  # fmt: skip
    fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(folder / "optimized.onnx"))
    quantize_dynamic(str(folder / "optimized.onnx"), str(folder / "model.onnx"), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops: no type inference
    return folder, fused


def hf_bert_export(config, folder: Path) -> Path:
    """Hugging Face ``BertForSequenceClassification`` of ``config``'s sizes, exported as Optimum does
    (the TorchScript exporter, dynamic batch and sequence axes)."""
    from transformers import BertConfig, BertForSequenceClassification

    folder.mkdir()
    hf = BertForSequenceClassification(BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_slots // 2,
        num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings, num_labels=2)).eval()  # fmt: skip
    ids = torch.randint(5, 100, (2, 16))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(hf, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(folder / "fp32.onnx"),
                      input_names=names, output_names=["logits"], dynamo=False, opset_version=17,
                      dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})  # fmt: skip
    return folder / "fp32.onnx"


def build(size: str, seq: int, tmp: Path, arch: str = "lv-bert-small") -> tuple[dict, dict]:
    """The callables ``batch -> logits`` of every path, and the file sizes."""
    from lvbert.export.onnx import OnnxClassifier, export_onnx
    from lvbert.export.torchao import torchao_int8
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForSequenceClassification
    from lvbert.quantization import QuantSpec, calibrate_activations, init_weight_alphas, quantize_model

    config = LvBertConfig.from_size(size, arch=arch, vocab_size=30522, num_labels=2)
    torch.manual_seed(0)
    model = LvBertForSequenceClassification(config).eval()
    quant = LvBertForSequenceClassification(copy.deepcopy(config)).eval()  # quantize_model records itself in the config
    quant.load_state_dict(model.state_dict())
    quantize_model(quant, QuantSpec(8, 8))
    init_weight_alphas(quant)
    calib = [_batch(8, seq, 30522, s) for s in range(2)]
    calibrate_activations(quant, calib)
    files = {}
    for name, m, dyn in (("fp32", model, False), ("int8", quant, False), ("dynamic", model, True)):
        folder = tmp / f"{arch}-{size}-{name}"
        folder.mkdir()
        export_onnx(m, folder, calib, dynamic_int8=dyn)
        files[name] = folder
    fusions = {}
    files["optimized"], fusions["lvbert"] = optimized_dynamic(files["fp32"] / "model.onnx", tmp / f"{arch}-{size}-opt",
                                                              config)  # fmt: skip
    if arch == "bert":
        hf_fp32 = hf_bert_export(config, tmp / f"{size}-hf")
        files["hf optimized"], fusions["hf bert"] = optimized_dynamic(hf_fp32, tmp / f"{size}-hf-opt", config)
    sizes = {k: (v / "model.onnx").stat().st_size for k, v in files.items()}
    from safetensors.torch import save

    sizes["fp32 safetensors"] = len(save({k: v.contiguous() for k, v in model.state_dict().items()}))
    ao = torchao_int8(model)
    sessions = {k: OnnxClassifier(v, threads=1) for k, v in files.items()}

    def torch_path(m):
        def run(b):
            with torch.no_grad():
                return m(**b).logits

        return run

    paths = {
        "torch fp32": torch_path(model),
        "torchao int8": torch_path(ao),
        "torchao int8 + compile": torch_path(torch.compile(ao)),  # static shapes: one compile per batch shape
        "ORT fp32": sessions["fp32"].logits,
        "ORT int8 (QAT export)": sessions["int8"].logits,
        "ORT dynamic int8 (PTQ)": sessions["dynamic"].logits,
        "ORT optimized + dynamic int8 (Optimum O2)": sessions["optimized"].logits,
    }
    if "hf optimized" in sessions:
        paths["HF BERT: ORT optimized + dynamic int8"] = sessions["hf optimized"].logits
    params = sum(p.numel() for p in model.parameters())
    return paths, {"arch": arch, "params": params, "file_bytes": sizes, "ort_fusions": fusions}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["small", "base"])
    ap.add_argument("--archs", nargs="+", default=["lv-bert-small", "bert"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds (each runs every path once)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    result = {"machine": machine_info(), "settings": vars(args),
              "matmul_peak_tflops": {"fp32": matmul_peak()}, "sizes": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for arch, size in [(a, s) for a in args.archs for s in args.sizes]:
            paths, info = build(size, args.seq_len, Path(tmp), arch)
            row = {**info, "ms": {}, "speedup_vs_torch_fp32": {}, "max_abs_logit_diff_vs_torch_fp32": {}}
            for bs in args.batches:
                batch = _batch(bs, args.seq_len, 30522, 100 + bs)
                ref = paths["torch fp32"](batch).float()
                times = {k: [] for k in paths}
                diffs = {}
                for r in range(args.rounds + 1):  # round 0 warms up
                    for name, fn in paths.items():
                        t0 = time.perf_counter()
                        out = fn(batch)
                        if r:
                            times[name].append(time.perf_counter() - t0)
                        else:
                            diffs[name] = round(float((out.float() - ref).abs().max()), 4)
                ms = {k: round(1000 * statistics.median(v), 2) for k, v in times.items()}
                row["ms"][f"batch {bs}"] = ms
                row["speedup_vs_torch_fp32"][f"batch {bs}"] = {k: round(ms["torch fp32"] / v, 2) for k, v in ms.items()}
                row["max_abs_logit_diff_vs_torch_fp32"][f"batch {bs}"] = diffs
                print(f"{arch} {size} batch {bs}: " + ", ".join(f"{k} {v} ms" for k, v in ms.items()), flush=True)
            result["sizes"][f"{arch} {size}"] = row
    result["matmul_peak_tflops"]["fp32_after"] = matmul_peak()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({s: r["speedup_vs_torch_fp32"] for s, r in result["sizes"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
