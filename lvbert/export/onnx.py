"""ONNX export of a fine-tuned classifier, and int8 deployment of a quantized (KDLSQ) one.

:func:`export_onnx` writes the model as an fp32 ONNX graph (``torch.onnx.export(dynamo=True)``,
dynamic batch and sequence length; inputs ``input_ids``, ``attention_mask``, ``token_type_ids``,
output ``logits``). For a quantized model it then writes the int8 graph onnxruntime runs with
integer matmuls: the fake-quantized weights are exported as their dequantized values (exactly on
the quantization grid), and onnxruntime's ``quantize_static`` (QDQ format, symmetric int8)
quantizes every dense layer and convolution, and the word and position embedding tables (int8
initializers), with **the learned clip values** handed over as
scales (``TensorQuantOverrides``: weight scale alpha_w / Q, activation scale alpha_a / 127), so
the weights get exactly the codes the fake-quant model uses. Each quantized layer reads its own
copy of its input, so only it sees the quantized values (a residual connection reading the same
tensor stays fp32, and C's gate and linear layer keep their own clips), and the layers' outputs
are not re-quantized. Both graphs are then rewritten for onnxruntime
(:mod:`lvbert.export.ort_passes`: residual sums that keep it off its slow SkipLayerNormalization
kernel, int8 embedding lookups, every dense layer one ``MatMulIntegerToFloat`` with its bias;
``portable=True`` keeps standard ONNX operators only), and onnxruntime runs the depthwise
convolutions as ``QLinearConv``. Differences that remain, measured by
:func:`agreement`: int8 allows the code -128 where the fake-quant model stops at -127, and A's
query, key and value stay fp32 in the graph (the attention matmuls are not quantized).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from lvbert.errors import LvBertError
from lvbert.export.ort_passes import optimize_for_onnxruntime
from lvbert.model_dir import quiet_transformers
from lvbert.quantization import QUANT_MODULES, quantized_weights
from lvbert.tasks.encoding import collate
from lvbert.utils import atomic_write_bytes, warn

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_FILE = "model.onnx"


def require_deploy() -> None:
    """A one-line error when the deploy extra is missing."""
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise LvBertError(f"the ONNX export needs {', '.join(missing)}: pip install -e .[deploy] (or pip install onnx "
                          "onnxscript onnxruntime)")  # fmt: skip


class _Logits(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def dequantized_copy(model: nn.Module) -> nn.Module:
    """A plain (unquantized) copy of ``model`` whose weights are the fake-quantized values."""

    config = model.config.__class__(**{k: v for k, v in model.config.to_dict().items() if k != "quantization"})
    with quiet_transformers():
        plain = AutoModelForSequenceClassification.from_config(config)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith(".alpha")}
    with torch.no_grad():
        for name, weight, q in quantized_weights(model):
            state[name] = q(weight).detach().clone()
    plain.load_state_dict(state)
    return plain.eval()


def _export_fp32(model: nn.Module, path: Path) -> None:
    """The fp32 graph: ``torch.onnx.export(dynamo=True)``, dynamic batch and sequence length, quiet."""

    ids = torch.randint(5, 100, (2, 16))
    example = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=model.config.max_position_embeddings)
    shapes = {name: {0: batch, 1: seq} for name in INPUTS}
    exporter_log = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), warnings.catch_warnings():  # its progress
            warnings.simplefilter("ignore")
            program = torch.onnx.export(_Logits(model).eval(), example, dynamo=True, input_names=list(INPUTS),
                                        output_names=["logits"], dynamic_shapes=shapes)  # fmt: skip
    finally:
        exporter_log.setLevel(level)
    program.save(str(path))


def _int8_plan(model: nn.Module, graph) -> tuple[list[str], dict]:
    """The nodes to quantize (dense layers and convolutions with a weight initializer, and the
    embedding lookups) and the scale overrides from the quantized model's learned alphas, matched
    by weight value. Each quantized layer reads its own copy of its input (an ``Identity`` node,
    edited into ``graph``), so that only that layer sees the quantized values, as in the fake-quant
    model: a residual connection reading the same tensor stays fp32, and layers with different
    learned clips on one tensor (C's gate and linear layer) keep each its own scale."""
    import onnx
    from onnx import numpy_helper


    by_value = {}
    for name, m in model.named_modules():
        if isinstance(m, QUANT_MODULES):
            w = m.wq(m.weight).detach().float().numpy()
            for candidate in (w, np.ascontiguousarray(w.T)) if w.ndim == 2 else (w,):
                by_value[candidate.tobytes()] = m
    inits = {i.name: i for i in graph.initializer}

    def int8(scale: float) -> list[dict]:
        return [{"scale": np.array(scale, dtype=np.float32), "zero_point": np.array(0, dtype=np.int8)}]

    nodes, overrides, copies = [], {}, []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv", "Gather"):
            continue
        w_name = node.input[0] if node.op_type == "Gather" else node.input[1] if len(node.input) > 1 else None
        if w_name not in inits:
            continue
        m = by_value.get(numpy_helper.to_array(inits[w_name]).astype(np.float32).tobytes())
        if m is None:
            continue
        nodes.append(node.name)
        overrides[w_name] = int8(float(m.wq.alpha.detach().clamp(min=1e-8)) / m.wq.qmax)
        aq = getattr(m, "aq", None)  # embedding tables: weights only
        if node.op_type != "Gather" and aq is not None and aq.bits is not None:
            act = node.input[0]
            copy = f"{act}__{node.name}"
            copies.append((node, onnx.helper.make_node("Identity", [act], [copy], name=f"copy_{copy}")))
            node.input[0] = copy
            overrides[copy] = int8(float(aq.alpha.detach().clamp(min=1e-8)) / aq.qmax)
    if copies:  # each copy right before its reader: the graph stays in topological order
        before = {node.name: identity for node, identity in copies}
        order = []
        for node in graph.node:
            if node.name in before:
                order.append(before[node.name])
            order.append(node)
        order = [onnx.NodeProto.FromString(n.SerializeToString()) for n in order]
        del graph.node[:]
        graph.node.extend(order)
    return nodes, overrides


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _Reader:
    """onnxruntime's calibration reader over a few batches (needed for the tensors without overrides)."""

    def __init__(self, batches: list[dict]):
        self.batches = [{k: b[k].cpu().numpy() for k in INPUTS} for b in batches]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return self.batches[self.i - 1]

    def rewind(self):
        self.i = 0


def export_onnx(model: nn.Module, out_dir, calib_batches: list[dict] | None = None, dynamic_int8: bool = False,
                portable: bool = False, rewrite: bool = True) -> Path:
    """Write ``out_dir/model.onnx``: int8 for a quantized model with 8-bit activations (its learned
    scales; ``calib_batches`` for the rest), fp32 otherwise, both rewritten for onnxruntime
    (:mod:`lvbert.export.ort_passes`; ``portable``: standard ONNX ops only, the int8 model then
    stays a QDQ graph that other runtimes read too; ``rewrite=False``: none of them, the graph as
    ``torch.onnx`` and ``quantize_static`` write it); ``dynamic_int8`` (a model that is not
    quantized): onnxruntime's post-training dynamic int8 (``quantize_dynamic``: int8 weights per
    tensor, activations quantized at run time), the baseline a user would try first, as
    onnxruntime writes it. Returns the path."""
    require_deploy()
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static


    out = Path(out_dir) / ONNX_FILE
    spec = getattr(model.config, "quantization", None)
    plain = dequantized_copy(model) if spec else model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        _export_fp32(plain, fp32)
        if dynamic_int8:
            if spec:
                raise LvBertError("--dynamic-int8 is the post-training baseline for a model that is not quantized; "
                                  "this model is (its export is already int8)")  # fmt: skip
            dyn = Path(tmp) / "dynamic.onnx"
            with _quiet_root_logger():
                quantize_dynamic(str(fp32), str(dyn), weight_type=QuantType.QInt8)
            atomic_write_bytes(out, dyn.read_bytes())
            return out
        if not spec or not spec.get("act_bits"):
            proto = onnx.load(str(fp32))
            if rewrite:
                optimize_for_onnxruntime(proto, portable=portable)
            atomic_write_bytes(out, proto.SerializeToString())
            return out
        if not calib_batches:
            raise LvBertError("the int8 export needs calibration batches")
        proto = onnx.load(str(fp32))
        nodes, overrides = _int8_plan(model, proto.graph)
        if not nodes:
            raise LvBertError("no quantized layer was found in the exported graph; cannot write the int8 model")
        onnx.save(proto, str(fp32))
        int8 = Path(tmp) / "int8.onnx"
        with _quiet_root_logger():  # onnxruntime logs advice on the root logger
            quantize_static(str(fp32), str(int8), _Reader(calib_batches), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=False,
                            nodes_to_quantize=nodes, extra_options={"TensorQuantOverrides": overrides,
                                                                    "ActivationSymmetric": True, "WeightSymmetric": True,
                                                                    "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm", "Conv"],
                                                                    "DedicatedQDQPair": True})  # fmt: skip
        proto = onnx.load(str(int8))
        if rewrite:
            optimize_for_onnxruntime(proto, portable=portable)
        atomic_write_bytes(out, proto.SerializeToString())
    return out


class OnnxClassifier:
    """``model.onnx`` of a model folder run by onnxruntime: ``logits(batch) -> tensor`` (threads: torch's)."""

    def __init__(self, model_dir, threads: int | None = None):
        require_deploy()
        import onnxruntime as ort

        path = Path(model_dir) / ONNX_FILE
        if not path.is_file():
            raise LvBertError(f"{model_dir} has no {ONNX_FILE}; write one with lvbert export --model {model_dir} "
                              "(lvbert quantize writes one itself)")  # fmt: skip
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's errors (InvalidProtobuf, InvalidArgument, Fail) share no base class
            if not type(e).__module__.startswith("onnxruntime"):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            why = "the file is empty" if not path.stat().st_size else first.split("failed:")[-1].strip()[:160]
            raise LvBertError(f"{path} is not a valid ONNX model ({why}); write it again with lvbert export --model "
                              f"{model_dir} --overwrite") from None  # fmt: skip

    def logits(self, batch: dict) -> torch.Tensor:
        feed = {k: batch[k].cpu().numpy() for k in INPUTS}
        return torch.from_numpy(self.session.run(None, feed)[0])

    def predict_logits(self, enc, batch_size: int, pad_id: int) -> torch.Tensor:
        """As :func:`lvbert.tasks.encoding.predict_logits`: [N, num_labels] in the split's order."""

        order = sorted(range(len(enc.input_ids)), key=lambda i: len(enc.input_ids[i]))
        out = None
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            logits = self.logits(collate(enc, rows, pad_id))
            if out is None:
                out = torch.empty(len(order), logits.shape[-1])
            out[rows] = logits.float()
        return out


def agreement(model: nn.Module, onnx_model: OnnxClassifier, batches) -> dict:
    """Predictions of the torch model and of its ONNX export over ``batches``: agreement and max |logit diff|."""
    same = total = 0
    worst = 0.0
    model.eval()
    with torch.no_grad():
        for b in batches:
            a = model(**{k: b[k] for k in INPUTS}).logits.float()
            o = onnx_model.logits(b).float()
            same += int((a.argmax(-1) == o.argmax(-1)).sum())
            total += a.shape[0]
            worst = max(worst, float((a - o).abs().max()))
    return {"agreement": same / max(total, 1), "examples": total, "max_abs_logit_diff": worst}


def export_checked(model, out: Path, calib: list[dict] | None, dev_enc, pad: int, dynamic_int8: bool = False,
                   portable: bool = False) -> dict:
    """``out/model.onnx`` and, given ``dev_enc`` (an encoded dev split), its agreement with ``model``."""

    model = model.cpu().eval()
    path = export_onnx(model, out, calib, dynamic_int8=dynamic_int8, portable=portable)
    res = {"file": path.name, "bytes": path.stat().st_size}
    if dev_enc is None:
        print(f"ONNX model written to {path} ({res['bytes']:,} bytes)")
        return res
    n = len(dev_enc)
    batches = [collate(dev_enc, list(range(s, min(s + 64, n))), pad) for s in range(0, n, 64)]
    res.update(agreement(model, OnnxClassifier(out), batches))
    print(f"ONNX model written to {path} ({res['bytes']:,} bytes): predictions agree with the torch model on "
          f"{100 * res['agreement']:.2f}% of {res['examples']} dev examples")  # fmt: skip
    if res["agreement"] < 0.99 and not dynamic_int8:
        warn(f"the ONNX model agrees with the torch model on only {100 * res['agreement']:.2f}% of dev examples")
    return res
