"""CPU inference latency of the deployment paths of a classifier, side by side in one run.

For each size (LV-BERT-small's 24-slot list at the small and base presets, a 30,522 vocabulary,
two labels), at batch 1 and 8 and sequence 128, one thread: the fp32 PyTorch model; torchao's
int8 dynamic-activation / int8-weight model (``lvbert predict --runtime torchao``, eager) and
the same under ``torch.compile`` (inductor, compiled per batch shape in the warm-up round); onnxruntime
on the fp32 ONNX export; onnxruntime on the int8 export of the W8A8 quantized model (``lvbert
quantize``: the learned scales, integer matmuls, rewritten for onnxruntime by
``lvbert.export.ort_passes``), and the same as a plain QDQ graph (``--portable``) and as
``quantize_static`` writes it (no rewrite); onnxruntime's own post-training dynamic int8 (``lvbert
export --dynamic-int8``, the baseline a user would try first), also with onnxruntime's
SkipLayerNormalization fusion switched off (a session option an informed user could set: that
kernel is slow on CPU); and what an Optimum user runs (its O2 level, then dynamic int8):
onnxruntime's transformer optimizer (``onnxruntime.transformers.optimizer``: fused attention,
skip-LayerNorm, bias-GELU where its patterns match) on the fp32 graph, then dynamic int8 -- on
lvbert's graph as ``torch.onnx`` writes it, and for the ``bert`` arch also on Hugging Face
``BertForSequenceClassification`` of the same sizes exported as Optimum exports it (TorchScript
exporter), where its attention fusion applies. "Best onnxruntime path" is the fastest of those
baselines at each setting. The
weights are random and the quantized model's clip values initialised and calibrated (percentile,
on random batches) but not trained: latency does not depend on them. The paths alternate within
every round, so other load on the machine hits all alike (at 2 threads each timed call follows an
untimed one of the same path: onnxruntime's threads spin for a while after a call and took the
cores from the next path, up to 1.4x slower measured); medians are reported with the matmul
peak measured in the same run (fp32 by torch; int8 by onnxruntime's u8 x s8 integer matmul, the
kernel every int8 path here runs), the int8 export's achieved dense-layer int8 ops/s against
that peak, and the file sizes. Writes ``benchmarks/results/quantize.json``.

    .venv/bin/python benchmarks/bench_quantize.py [--sizes small base] [--batches 1 8] [--threads 1 2] [--rounds 10]
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

from _machine import machine_info, matmul_peak, write_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "quantize.json"
OURS = "ORT int8 (QAT export)"
BASELINES = ("ORT dynamic int8 (PTQ)", "ORT dynamic int8, SkipLayerNorm fusion off",
             "ORT optimized + dynamic int8 (Optimum O2)", "HF BERT: ORT optimized + dynamic int8")
OPTIMUM = ("ORT dynamic int8 (PTQ)", "ORT optimized + dynamic int8 (Optimum O2)", "HF BERT: ORT optimized + dynamic int8")


def int8_peak(threads: int, m: int = 1024, k: int = 768, n: int = 3072, reps: int = 10) -> float:
    """onnxruntime's u8 x s8 integer matmul (``MatMulIntegerToFloat``, the kernel of every int8 path
    here; VNNI where the CPU has it) on one [m, k] x [k, n] product, in TOPS."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "w"),
             numpy_helper.from_array(np.float32(0.01), "sa"), numpy_helper.from_array(np.float32(0.01), "sw"),
             numpy_helper.from_array(np.uint8(128), "za"), numpy_helper.from_array(np.int8(0), "zw")]  # fmt: skip
    node = helper.make_node("MatMulIntegerToFloat", ["a", "w", "sa", "sw", "za", "zw"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {"a": rng.integers(0, 256, (m, k)).astype(np.uint8)}
    sess.run(None, feed)
    t0 = time.perf_counter()
    for _ in range(reps):
        sess.run(None, feed)
    return round(2 * m * k * n * reps / (time.perf_counter() - t0) / 1e12, 4)


def dense_macs_per_token(model) -> int:
    """Multiply-adds per token of the layers the int8 export runs as integer kernels (every quantized
    dense layer and depthwise convolution; not the attention matmuls, the embedding lookups or the head)."""
    from lvbert.quantization import QuantConv1d, QuantLinear

    # a dense layer: in x out; a (grouped) convolution: out x in / groups x kernel -- the weight's size either way
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (QuantLinear, QuantConv1d)))


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


def _session(folder: Path, threads: int, disabled: tuple = ()):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(disabled))  # fmt: skip

    def run(b):
        return torch.from_numpy(sess.run(None, {k: b[k].numpy() for k in ("input_ids", "attention_mask", "token_type_ids")})[0])

    return run


def build(size: str, seq: int, tmp: Path, arch: str = "lv-bert-small"):
    """``make(threads)``: the callables ``batch -> logits`` of every path at that thread count; the
    fake-quant reference; and the model's facts (sizes, fusions, dense multiply-adds per token)."""
    from lvbert.export.onnx import export_onnx
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
    exports = (("fp32", model, {}), ("int8", quant, {}), ("int8 portable", quant, {"portable": True}),
               ("int8 raw", quant, {"rewrite": False}), ("fp32 raw", model, {"rewrite": False}),
               ("dynamic", model, {"dynamic_int8": True}))  # fmt: skip
    for name, m, kw in exports:
        folder = tmp / f"{arch}-{size}-{name.replace(' ', '-')}"
        folder.mkdir()
        export_onnx(m, folder, calib, **kw)
        files[name] = folder
    fusions = {}
    # Optimum exports the model itself: the baseline starts from the graph as torch.onnx writes it
    files["optimized"], fusions["lvbert"] = optimized_dynamic(files["fp32 raw"] / "model.onnx",
                                                              tmp / f"{arch}-{size}-opt", config)  # fmt: skip
    if arch == "bert":
        hf_fp32 = hf_bert_export(config, tmp / f"{size}-hf")
        files["hf optimized"], fusions["hf bert"] = optimized_dynamic(hf_fp32, tmp / f"{size}-hf-opt", config)
    sizes = {k: (v / "model.onnx").stat().st_size for k, v in files.items()}
    from safetensors.torch import save

    sizes["fp32 safetensors"] = len(save({k: v.contiguous() for k, v in model.state_dict().items()}))
    ao = torchao_int8(model)
    ao_compiled = torch.compile(ao)  # static shapes: one compile per batch shape

    def torch_path(m):
        def run(b):
            with torch.no_grad():
                return m(**b).logits

        return run

    def make(threads: int) -> dict:
        paths = {
            "torch fp32": torch_path(model),
            "torchao int8": torch_path(ao),
            "torchao int8 + compile": torch_path(ao_compiled),
            "ORT fp32": _session(files["fp32"], threads),
            OURS: _session(files["int8"], threads),
            "ORT int8, portable QDQ": _session(files["int8 portable"], threads),
            "ORT int8, not rewritten": _session(files["int8 raw"], threads),
            "ORT dynamic int8 (PTQ)": _session(files["dynamic"], threads),
            "ORT dynamic int8, SkipLayerNorm fusion off": _session(files["dynamic"], threads, ("SkipLayerNormFusion",)),
            "ORT optimized + dynamic int8 (Optimum O2)": _session(files["optimized"], threads),
        }
        if "hf optimized" in files:
            paths["HF BERT: ORT optimized + dynamic int8"] = _session(files["hf optimized"], threads)
        return paths

    params = sum(p.numel() for p in model.parameters())
    info = {"arch": arch, "params": params, "dense_macs_per_token": dense_macs_per_token(quant), "file_bytes": sizes,
            "ort_fusions": fusions}  # fmt: skip
    return make, torch_path(quant), info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["small", "base"])
    ap.add_argument("--archs", nargs="+", default=["lv-bert-small", "bert"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds (each runs every path once)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    result = {"machine": machine_info(), "settings": vars(args), "matmul_peak_tflops": {}, "sizes": {}}
    for t in args.threads:
        torch.set_num_threads(t)
        result["matmul_peak_tflops"][f"fp32, {t} threads"] = matmul_peak()
        result["matmul_peak_tflops"][f"int8 (onnxruntime u8 x s8), {t} threads"] = int8_peak(t)
    with tempfile.TemporaryDirectory() as tmp:
        for arch, size in [(a, s) for a in args.archs for s in args.sizes]:
            torch.set_num_threads(1)
            make, fake_quant, info = build(size, args.seq_len, Path(tmp), arch)
            row = {**info, "ms": {}, "speedup_vs_torch_fp32": {}, "ours_vs_best_onnxruntime": {},
                   "max_abs_logit_diff_vs_torch_fp32": {}, "max_abs_logit_diff_vs_fake_quant": {},
                   "ours_int8_tops": {}}  # fmt: skip
            for t in args.threads:
                torch.set_num_threads(t)
                paths = make(t)
                for bs in args.batches:
                    key = f"batch {bs}, {t} thread{'s' if t > 1 else ''}"
                    batch = _batch(bs, args.seq_len, 30522, 100 + bs)
                    ref = paths["torch fp32"](batch).float()
                    ref_q = fake_quant(batch).float()
                    times = {k: [] for k in paths}
                    diffs, diffs_q = {}, {}
                    for r in range(args.rounds + 1):  # round 0 warms up
                        for name, fn in paths.items():
                            if t > 1:  # the previous path's threads spin a while after its call: let them go idle
                                fn(batch)
                            t0 = time.perf_counter()
                            out = fn(batch)
                            if r:
                                times[name].append(time.perf_counter() - t0)
                            else:
                                diffs[name] = round(float((out.float() - ref).abs().max()), 4)
                                diffs_q[name] = round(float((out.float() - ref_q).abs().max()), 4)
                    ms = {k: round(1000 * statistics.median(v), 2) for k, v in times.items()}
                    row["ms"][key] = ms
                    row["speedup_vs_torch_fp32"][key] = {k: round(ms["torch fp32"] / v, 2) for k, v in ms.items()}
                    best = min((k for k in BASELINES if k in ms), key=ms.get)
                    best_optimum = min((k for k in OPTIMUM if k in ms), key=ms.get)
                    row["ours_vs_best_onnxruntime"][key] = {
                        "optimum_best": best_optimum, "vs_optimum_best": round(ms[best_optimum] / ms[OURS], 2),
                        "best": best, "vs_best": round(ms[best] / ms[OURS], 2)}  # fmt: skip
                    row["max_abs_logit_diff_vs_torch_fp32"][key] = diffs
                    row["max_abs_logit_diff_vs_fake_quant"][key] = {k: diffs_q[k] for k in diffs_q if "int8" in k}
                    tops = 2 * info["dense_macs_per_token"] * bs * args.seq_len / (ms[OURS] / 1000) / 1e12
                    row["ours_int8_tops"][key] = round(tops, 4)
                    print(f"{arch} {size} {key}: " + ", ".join(f"{k} {v} ms" for k, v in ms.items())
                          + f" | ours vs best {row['ours_vs_best_onnxruntime'][key]}", flush=True)  # fmt: skip
            result["sizes"][f"{arch} {size}"] = row
    for t in args.threads:
        torch.set_num_threads(t)
        result["matmul_peak_tflops"][f"fp32 after, {t} threads"] = matmul_peak()
        result["matmul_peak_tflops"][f"int8 (onnxruntime u8 x s8) after, {t} threads"] = int8_peak(t)
    write_result(args.out, result)
    print(json.dumps({s: r["ours_vs_best_onnxruntime"] for s, r in result["sizes"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
