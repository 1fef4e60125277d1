"""The onnxruntime rewrites of the ONNX export (lvbert.export.ort_passes): exact, and they land."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from lvbert.export import onnx as export_module  # noqa: E402
from lvbert.export.ort_passes import optimize_for_onnxruntime  # noqa: E402
from lvbert.modeling_lvbert import LvBertConfig, LvBertForSequenceClassification  # noqa: E402
from lvbert.quantization import QuantSpec, calibrate_activations, init_weight_alphas, quantize_model  # noqa: E402


def _batch(n, seq, seed, pad=0):
    ids = torch.randint(5, 60, (n, seq), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    if pad:
        mask[0, -pad:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _session(proto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _run(proto, batch):
    return _session(proto).run(None, {k: v.numpy() for k, v in batch.items()})[0]


def _fused_ops(proto, tmp_path) -> set:
    """The operators onnxruntime runs after its own graph optimizations."""
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return {n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A W8A8 model with every slot type, exported twice: as quantize_static writes it, and rewritten."""
    config = LvBertConfig(arch="CAFCAF", vocab_size=64, hidden_size=32, num_attention_heads=2, conv_heads=2,
                          intermediate_size=48, embedding_size=16, max_position_embeddings=40, num_labels=3)  # fmt: skip
    torch.manual_seed(0)
    model = LvBertForSequenceClassification(config).eval()
    quantize_model(model, QuantSpec(8, 8))
    init_weight_alphas(model)
    calib = [_batch(4, 24, s) for s in range(2)]
    calibrate_activations(model, calib)
    tmp = tmp_path_factory.mktemp("ort_passes")
    raw_dir, fast_dir, portable_dir = tmp / "raw", tmp / "fast", tmp / "portable"
    for d in (raw_dir, fast_dir, portable_dir):
        d.mkdir()
    export_module.export_onnx(model, raw_dir, calib, rewrite=False)
    export_module.export_onnx(model, fast_dir, calib)
    export_module.export_onnx(model, portable_dir, calib, portable=True)
    load = lambda d: onnx.load(str(d / "model.onnx"))  # noqa: E731
    return {"model": model, "raw": load(raw_dir), "fast": load(fast_dir), "portable": load(portable_dir), "tmp": tmp}


def test_rewrites_are_exact_and_land(exported, tmp_path):
    raw, fast = exported["raw"], exported["fast"]
    counts = optimize_for_onnxruntime(copy.deepcopy(raw))
    n_ln = sum(n.op_type == "LayerNormalization" for n in raw.graph.node)
    n_dense = sum(n.op_type == "MatMul" and "DequantizeLinear" in {_producer(raw, i) for i in n.input} for n in raw.graph.node)
    # every residual connection before a LayerNorm (the embeddings' too), every int8 dense layer
    assert counts == {"residual_sums": n_ln, "gathers_then_dequantize": 2, "integer_matmuls": n_dense}, counts
    assert n_ln == 7 and n_dense > 10
    ops = {n.op_type for n in fast.graph.node}
    assert "MatMulIntegerToFloat" in ops and "SkipLayerNormalization" not in _fused_ops(fast, tmp_path)
    assert "SkipLayerNormalization" in _fused_ops(raw, tmp_path)  # what the rewrite avoids
    # the embedding tables are read as int8 rows: no DequantizeLinear of a whole table is left
    big = {i.name for i in fast.graph.initializer if numpy_helper.to_array(i).size >= 64 * 16}
    assert not [n for n in fast.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in big]
    onnx.checker.check_model(fast)
    for seq, pad in ((24, 0), (17, 5)):
        batch = _batch(3, seq, 10 + seq, pad)
        a, b = _run(raw, batch), _run(fast, batch)
        np.testing.assert_allclose(b, a, atol=2e-4 * max(1.0, np.abs(a).max()), rtol=0)
        with torch.no_grad():
            ref = exported["model"](**batch).logits.numpy()
        assert (b.argmax(-1) == ref.argmax(-1)).all()


def _producer(proto, name):
    return next((n.op_type for n in proto.graph.node if name in n.output), None)


def test_portable_keeps_standard_operators(exported):
    portable = exported["portable"]
    assert all(n.domain in ("", "ai.onnx") for n in portable.graph.node)
    assert {"QuantizeLinear", "DequantizeLinear", "Sum"} <= {n.op_type for n in portable.graph.node}
    batch = _batch(2, 20, 3)
    np.testing.assert_allclose(_run(portable, batch), _run(exported["fast"], batch), atol=1e-4, rtol=0)


def _model(nodes, inputs, inits, outputs=("y",)):
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              inits)  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_patterns_that_must_not_be_rewritten():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.integers(-127, 128, (8, 6)).astype(np.int8), "w")
    inits = [w, numpy_helper.from_array(np.float32(0.02), "sw"), numpy_helper.from_array(np.int8(0), "zw"),
             numpy_helper.from_array(np.float32(0.05), "sa"), numpy_helper.from_array(np.int8(0), "za"),
             numpy_helper.from_array(rng.standard_normal((2, 6)).astype(np.float32), "bias2d"),
             numpy_helper.from_array(np.ones(6, np.float32), "g"), numpy_helper.from_array(np.zeros(6, np.float32), "b"),
             numpy_helper.from_array(np.ones(6, np.float32), "c")]  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sa", "za"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "sa", "za"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["m"]),
        helper.make_node("Add", ["m", "bias2d"], ["mb"]),  # a 2-D addend is no bias: stays an Add
        helper.make_node("Add", ["mb", "c"], ["s"]),  # an Add of an initializer is no residual connection
        helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], axis=-1),
        helper.make_node("Add", ["mb", "r"], ["s2"]),  # a residual sum read twice is left alone
        helper.make_node("LayerNormalization", ["s2", "g", "b"], ["y2"], axis=-1),
    ]
    proto = _model(nodes, [_f("x", [2, 8]), _f("r", [2, 6])], inits, outputs=("y", "y2", "s2"))
    feed = {"x": rng.standard_normal((2, 8)).astype(np.float32), "r": rng.standard_normal((2, 6)).astype(np.float32)}
    before = _session(proto).run(None, feed)
    counts = optimize_for_onnxruntime(proto)
    assert counts == {"residual_sums": 0, "gathers_then_dequantize": 0, "integer_matmuls": 1}, counts
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Add") == 3 and "Sum" not in ops
    fused = next(n for n in proto.graph.node if n.op_type == "MatMulIntegerToFloat")
    assert len(fused.input) == 6  # no bias taken in
    after = _session(proto).run(None, feed)
    for a, b in zip(before, after):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)


def test_per_row_scaled_tables_are_dequantized_before_the_lookup():
    rng = np.random.default_rng(1)
    table = rng.integers(-127, 128, (10, 4)).astype(np.int8)
    inits = [numpy_helper.from_array(table, "t"), numpy_helper.from_array(np.linspace(0.01, 0.1, 10, dtype=np.float32), "st"),
             numpy_helper.from_array(np.zeros(10, np.int8), "zt")]  # fmt: skip
    nodes = [helper.make_node("DequantizeLinear", ["t", "st", "zt"], ["td"], axis=0),
             helper.make_node("Gather", ["td", "ids"], ["y"], axis=0)]  # fmt: skip
    proto = _model(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])], inits)
    assert optimize_for_onnxruntime(proto)["gathers_then_dequantize"] == 0  # the scale depends on the row
    per_tensor = copy.deepcopy(proto)
    per_tensor.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.float32(0.03), "st"))
    per_tensor.graph.initializer[2].CopyFrom(numpy_helper.from_array(np.int8(0), "zt"))
    del per_tensor.graph.node[0].attribute[:]
    feed = {"ids": np.array([3, 0, 9], np.int64)}
    before = _session(per_tensor).run(None, feed)[0]
    assert optimize_for_onnxruntime(per_tensor)["gathers_then_dequantize"] == 1
    assert [n.op_type for n in per_tensor.graph.node] == ["Gather", "DequantizeLinear"]
    np.testing.assert_array_equal(_session(per_tensor).run(None, feed)[0], before)


def test_two_layers_reading_one_quantized_tensor_share_its_uint8_copy():
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (8, 6)).astype(np.int8), "w1"),
             numpy_helper.from_array(rng.integers(-127, 128, (8, 5)).astype(np.int8), "w2"),
             numpy_helper.from_array(np.float32(0.02), "sw"), numpy_helper.from_array(np.int8(0), "zw"),
             numpy_helper.from_array(np.float32(0.05), "sa"), numpy_helper.from_array(np.int8(3), "za")]  # fmt: skip
    nodes = [helper.make_node("QuantizeLinear", ["x", "sa", "za"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sa", "za"], ["xd1"]),
             helper.make_node("DequantizeLinear", ["xq", "sa", "za"], ["xd2"]),
             helper.make_node("DequantizeLinear", ["w1", "sw", "zw"], ["wd1"]),
             helper.make_node("DequantizeLinear", ["w2", "sw", "zw"], ["wd2"]),
             helper.make_node("MatMul", ["xd1", "wd1"], ["y"]),
             helper.make_node("MatMul", ["xd2", "wd2"], ["y2"])]  # fmt: skip
    proto = _model(nodes, [_f("x", [3, 8])], inits, outputs=("y", "y2"))
    feed = {"x": rng.standard_normal((3, 8)).astype(np.float32)}
    before = _session(proto).run(None, feed)
    assert optimize_for_onnxruntime(proto)["integer_matmuls"] == 2
    quantize = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantize) == 1  # the int8 one is gone, one uint8 copy serves both layers
    zero_point = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}[quantize[0].input[2]]
    assert zero_point.dtype == np.uint8 and int(zero_point) == 131
    for a, b in zip(before, _session(proto).run(None, feed)):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
