"""KDLSQ quantization: the quantizer against hand computations, initialisation, packed storage,
``lvbert quantize`` end to end on a tiny fine-tuned model, resume, ONNX / torchao deployment and
bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from lvbert.cli import main
from lvbert.quantization import (
    Quantizer,
    QuantConv1d,
    QuantEmbedding,
    QuantLinear,
    QuantSpec,
    calibrate_activations,
    fake_quantize,
    kl_alpha,
    load_packed,
    pack_codes,
    percentile_alpha,
    quantize_model,
    quantized_weights,
    save_packed,
    unpack_codes,
)


def _run(x, alpha, bits, kind="act", grad_scale=False):
    q = Quantizer(bits, kind, grad_scale)
    with torch.no_grad():
        q.alpha.fill_(alpha)
    x = torch.tensor(x, requires_grad=True)
    y = q(x)
    y.sum().backward()
    return y.detach(), x.grad, float(q.alpha.grad)


# ============================================================================ the quantizer, by hand


def test_two_bits_is_ternary_with_lsq_alpha_gradient():
    # alpha 2, Q 1: v = x / 2 = [-1.5, -0.6, -0.2, 0.3, 0.7, 2.0]; clipped, round(v) = [-1, -1, 0, 0, 1, 1]
    y, gx, ga = _run([-3.0, -1.2, -0.4, 0.6, 1.4, 4.0], 2.0, 2)
    assert y.tolist() == [-2.0, -2.0, 0.0, 0.0, 2.0, 2.0]
    # d/d alpha: sign(v) outside [-1, 1] (-1 and +1), round(v) - v inside: -0.4, 0.2, -0.3, 0.3
    assert ga == pytest.approx(-1 + 1 - 0.4 + 0.2 - 0.3 + 0.3, abs=1e-6)
    # activations: no gradient outside the clip range
    assert gx.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_four_and_eight_bits_match_hand_values():
    # 4 bits, Q 7, alpha 1: 0.45 * 7 = 3.15 -> 3; -0.3 * 7 = -2.1 -> -2; 1.2 clips to 7
    y, _, ga = _run([0.45, -0.3, 1.2], 1.0, 4)
    assert y.tolist() == pytest.approx([3 / 7, -2 / 7, 1.0], abs=1e-7)
    assert ga == pytest.approx((3 / 7 - 0.45) + (-2 / 7 + 0.3) + 1.0, abs=1e-6)
    # 8 bits, Q 127, alpha 0.5: v = [0.2, -1.002]: 25.4 -> 25; -1.002 clips to -1 (-127)
    y, _, ga = _run([0.1, -0.501], 0.5, 8)
    assert y.tolist() == pytest.approx([0.5 * 25 / 127, -0.5], abs=1e-7)
    assert ga == pytest.approx((25 / 127 - 0.2) - 1.0, abs=1e-6)


def test_weights_pass_gradient_straight_through_and_grad_scale_divides_alpha_grad():
    x = [-3.0, -1.2, -0.4, 0.6, 1.4, 4.0]
    _, gx, ga = _run(x, 2.0, 2, kind="weight")
    assert gx.tolist() == [1.0] * 6  # the STE: everywhere, the clipped values included
    _, _, ga_scaled = _run(x, 2.0, 2, kind="weight", grad_scale=True)
    assert ga_scaled == pytest.approx(ga / math.sqrt(6 * 1), abs=1e-6)  # LSQ: 1 / sqrt(N * Q)
    assert not Quantizer(None, "act")(torch.ones(1)).requires_grad  # off: the input itself


def test_fake_quantize_keeps_dtype_and_grid():
    x = torch.randn(1000, dtype=torch.bfloat16)
    y = fake_quantize(x, torch.tensor(1.5), 4)
    assert y.dtype == torch.bfloat16
    codes = (y.float() / 1.5 * 7).round()
    assert codes.abs().max() <= 7 and len(torch.unique(codes)) <= 15


# ============================================================================ initialisation


def test_percentile_and_kl_initialisation():
    x = torch.arange(1001, dtype=torch.float32) - 500  # -500 .. 500
    assert percentile_alpha(x, 97.5) == pytest.approx(475.0)
    assert percentile_alpha(x, 100) == pytest.approx(500.0)
    g = torch.Generator().manual_seed(0)
    bulk = torch.randn(200_000, generator=g)
    with_outlier = torch.cat([bulk, torch.tensor([60.0])])
    alpha = kl_alpha(with_outlier, 8)
    assert 2.0 < alpha < 20.0, alpha  # the outlier is clipped, the bulk (|x| < ~5) kept
    uniform = torch.rand(200_000, generator=g) * 2 - 1
    assert kl_alpha(uniform, 8) > 0.9  # nothing to clip: close to the maximum


def test_calibration_observes_training_inputs_and_leaves_the_model_unchanged():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = QuantLinear(nn.Linear(4, 3), 8, 8)

        def forward(self, x):
            return self.fc(x)

    torch.manual_seed(0)
    net = Net()
    batches = [{"x": torch.randn(16, 4) * 3} for _ in range(3)]
    assert calibrate_activations(net, batches, "percentile", 100.0) == 3
    seen = torch.cat([b["x"].flatten() for b in batches])
    assert float(net.fc.aq.alpha.detach()) == pytest.approx(float(seen.abs().max()), rel=1e-6)
    assert net.fc.aq.observed is None
    with pytest.raises(Exception, match="at least one"):
        calibrate_activations(net, [])


# ============================================================================ packed storage


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_pack_unpack_round_trip(bits):
    q = 2 ** (bits - 1) - 1
    codes = torch.randint(-q, q + 1, (1001,), generator=torch.Generator().manual_seed(bits)).to(torch.int8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(1001 * bits / 8)
    assert torch.equal(unpack_codes(packed, bits, 1001), codes)


def _tiny_classifier(arch="CAFA", seed=0):
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForSequenceClassification

    torch.manual_seed(seed)
    config = LvBertConfig.from_size("tiny", arch=arch, vocab_size=60, max_position_embeddings=64, num_labels=2)
    return LvBertForSequenceClassification(config).eval()


def test_quantize_model_replaces_the_backbone_not_the_head():
    model = quantize_model(_tiny_classifier(), QuantSpec(4, 8))
    base = model.lvbert
    assert isinstance(base.embeddings.word_embeddings, QuantEmbedding)
    assert isinstance(base.embeddings.position_embeddings, QuantEmbedding)
    assert type(base.embeddings.token_type_embeddings) is nn.Embedding
    assert type(model.classifier) is nn.Linear  # the task head stays fp32
    plain = [n for n, m in base.named_modules() if type(m) in (nn.Linear, nn.Conv1d)]
    assert not plain, plain
    assert any(isinstance(m, QuantConv1d) for m in base.modules())  # C's depthwise convolution
    qkv = [m for n, m in base.named_modules() if n.endswith("qkv")]
    assert qkv and all(m.oq is not None for m in qkv)  # A's query, key and value before Q K^T
    names = {n for n, _, _ in quantized_weights(model)}
    assert names and not any("norm" in n.lower() or "token_type" in n or "classifier" in n for n in names), names
    assert model.config.quantization == {"method": "kdlsq", "weight_bits": 4, "act_bits": 8, "grad_scale": False}
    with pytest.raises(Exception, match="already quantized"):
        quantize_model(model, QuantSpec(4, 8))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_packed_file_loads_back_bit_for_bit(tmp_path, bits):
    from lvbert.quantization import init_weight_alphas

    model = quantize_model(_tiny_classifier(), QuantSpec(bits, 8))
    init_weight_alphas(model)
    sizes = save_packed(model, tmp_path / "q.safetensors")
    other = quantize_model(_tiny_classifier(seed=1), QuantSpec(bits, 8))
    load_packed(other, tmp_path / "q.safetensors")
    ids = torch.randint(5, 60, (3, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, other(input_ids=ids).logits)
    fp32_bytes = sum(t.numel() * 4 for t in model.state_dict().values())
    assert sizes["file_bytes"] < fp32_bytes * (bits + 2) / 32 + 20_000  # the codes, plus fp32 LayerNorm/head/biases
    assert sizes["kdlsq_ratio"] > 32 / bits * 0.6
    with pytest.raises(Exception, match="bits"):
        load_packed(quantize_model(_tiny_classifier(), QuantSpec(3 if bits != 3 else 4, 8)), tmp_path / "q.safetensors")


# ============================================================================ lvbert quantize end to end


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """A tiny model fine-tuned on the synthetic good-word task (dev accuracy ~1)."""
    from test_finetune_recipe import make_model_dir, write_synthetic

    from lvbert.recipes.finetune import finetune

    root = tmp_path_factory.mktemp("quant")
    data = write_synthetic(root / "data", n_train=192, n_dev=64)
    out = root / "ft"
    finetune(make_model_dir(root / "base", arch="CAFA"), "good-word", data, out, lr=1e-3, batch_size=16, epochs=3,
             progress=False, text_column="text", layer_decay=1.0)  # fmt: skip
    return {"model": out, "data": data, "root": root}


def _quantize_argv(ft, out, *extra):
    return ["quantize", "--model", str(ft["model"]), "--task", "good-word", "--data-dir", str(ft["data"]),
            "--text-column", "text", "--out", str(out), "--epochs", "1", "--lr", "1e-4", "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def w8a8(finetuned):
    out = finetuned["root"] / "w8a8"
    assert main(_quantize_argv(finetuned, out, "--weight-bits", "8")) == 0
    return out


def test_quantize_w8a8_keeps_accuracy_packs_and_exports(w8a8, finetuned):
    from lvbert.export.onnx import OnnxClassifier
    from lvbert.model_dir import load_finetuned

    res = json.loads((w8a8 / "results.json").read_text())
    assert res["fp32_score"] > 0.8, res["fp32_score"]  # chance: 0.5
    assert res["runs"][0]["score"] >= res["fp32_score"] - 0.05, res["runs"][0]["history"]
    assert res["quantization"]["weight_bits"] == 8 and res["sizes"]["kdlsq_ratio"] > 3
    assert res["onnx"]["agreement"] >= 0.99, res["onnx"]
    assert not (w8a8 / "train" / "checkpoints").exists()  # a finished run keeps only its model
    for f in ("config.json", "model.safetensors", "quantized.safetensors", "model.onnx", "tokenizer.json", "evals.json"):
        assert (w8a8 / f).is_file(), f
    model = load_finetuned(w8a8)  # the fake-quant model, not silently fp32
    assert any(isinstance(m, QuantLinear) for m in model.modules())
    other = load_finetuned(w8a8)
    load_packed(other, w8a8 / "quantized.safetensors")
    ids = torch.randint(5, 30, (4, 12), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, other(**batch).logits)
    # the int8 graph really runs integer matmuls
    import onnx

    graph = onnx.load(str(w8a8 / "model.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    producer = {o: n.op_type for n in graph.node for o in n.output}
    # only the quantized layers' own input copies (and the int8 embedding lookups) are quantized:
    # no residual reads a quantized tensor and no layer output is re-quantized
    quantized = [producer.get(n.input[0], "initializer") for n in graph.node if n.op_type == "QuantizeLinear"]
    assert quantized and set(quantized) <= {"Identity", "Gather"}, sorted(set(quantized))
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(w8a8.parent / "optimized.onnx")
    ort.InferenceSession(str(w8a8 / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    fused = {n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node}
    assert {"MatMulIntegerToFloat", "QLinearConv"} <= fused, fused  # integer kernels, not dequantize + fp32
    onnx_logits = OnnxClassifier(w8a8).logits(batch)
    assert onnx_logits.shape == (4, 2)


def test_predict_runtimes_agree(w8a8, finetuned, tmp_path):
    files = {}
    for runtime in ("torch", "onnx", "torchao"):
        out = tmp_path / runtime
        assert main(["predict", "--model", str(w8a8), "--task", "good-word", "--data-dir", str(finetuned["data"]),
                     "--text-column", "text", "--out", str(out), "--runtime", runtime]) == 0  # fmt: skip
        files[runtime] = (out / "good-word.tsv").read_text().splitlines()
    n = len(files["torch"]) - 1
    assert n == 64
    for runtime in ("onnx", "torchao"):
        same = sum(a == b for a, b in zip(files["torch"][1:], files[runtime][1:]))
        assert same >= 0.95 * n, (runtime, same)


def test_two_bit_weights_without_kd(finetuned):
    out = finetuned["root"] / "w2"
    assert main(_quantize_argv(finetuned, out, "--weight-bits", "2", "--no-kd", "--no-export", "--init", "kl")) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["teacher"] is None and res["quantization"]["weight_bits"] == 2
    assert res["onnx"] == {"skipped": "--no-export"}
    w8 = json.loads((finetuned["root"] / "w8a8" / "results.json").read_text())
    assert res["sizes"]["file_bytes"] < w8["sizes"]["file_bytes"]
    assert res["sizes"]["kdlsq_ratio"] > w8["sizes"]["kdlsq_ratio"] * 2


def test_export_fp32_and_dynamic_int8(finetuned, tmp_path):
    for extra, kind in (([], "fp32"), (["--dynamic-int8"], "dynamic-int8")):
        out = tmp_path / kind
        assert main(["export", "--model", str(finetuned["model"]), "--out", str(out), "--task", "good-word",
                     "--data-dir", str(finetuned["data"]), "--text-column", "text", *extra]) == 0  # fmt: skip
        res = json.loads((out / "export.json").read_text())
        assert res["kind"] == kind and res["examples"] == 64
        assert res["agreement"] >= (0.99 if kind == "fp32" else 0.9), res
    assert (tmp_path / "dynamic-int8" / "model.onnx").stat().st_size < (tmp_path / "fp32" / "model.onnx").stat().st_size


def test_quantize_resume_is_bit_identical(finetuned, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import lvbert.training.loop as loop

    args = ("--weight-bits", "4", "--save-every", "3", "--no-export")
    straight = tmp_path / "a"
    assert main(_quantize_argv(finetuned, straight, *args)) == 0
    real_save = loop.save_checkpoint

    def save_then_die(out_dir, step, *a, **k):
        path = real_save(out_dir, step, *a, **k)
        if step == 6:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    assert main(_quantize_argv(finetuned, tmp_path / "b", *args)) == 130
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    assert main(_quantize_argv(finetuned, tmp_path / "b", *args, "--resume")) == 0

    def losses(run):
        rows = map(json.loads, (run / "train" / "metrics.jsonl").read_text().splitlines())
        return [(r["step"], r["loss"]) for r in rows if "loss" in r]

    assert losses(straight) and losses(straight) == losses(tmp_path / "b")
    a, b = load_file(straight / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_input_is_one_line(finetuned, demo_home, tmp_path, capsys):
    from test_finetune_recipe import make_model_dir

    plain = make_model_dir(tmp_path / "pretrained")
    cases = [
        (_quantize_argv(finetuned, tmp_path / "o1", "--weight-bits", "9"), "2 to 8"),
        (_quantize_argv(finetuned, tmp_path / "o2", "--weight-bits", "1"), "2 to 8"),
        (_quantize_argv(finetuned, tmp_path / "o3", "--act-bits", "4"), "--act-bits"),
        (_quantize_argv({**finetuned, "model": plain}, tmp_path / "o4"), "not a fine-tuned classifier"),
        (["quantize", "--model", str(finetuned["model"]), "--task", "polarity", "--out", str(tmp_path / "o5")],
         "labels"),
        (["predict", "--model", str(finetuned["model"]), "--task", "good-word", "--data-dir", str(finetuned["data"]),
          "--text-column", "text", "--out", str(tmp_path / "o6"), "--runtime", "onnx"], "no model.onnx"),
        (["predict", "--model", str(finetuned["model"]), "--task", "good-word", "--out", str(tmp_path / "o7"),
          "--runtime", "tensorrt"], "--runtime"),
    ]  # fmt: skip
    for argv, words in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and words in err and "Traceback" not in err, (argv, err)


def test_missing_deploy_extra_is_one_line(finetuned, tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *a, **k):
        if name.split(".")[0] == "onnxruntime":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    capsys.readouterr()
    assert main(["export", "--model", str(finetuned["model"]), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install -e .[deploy]" in err and "\n" not in err, err
