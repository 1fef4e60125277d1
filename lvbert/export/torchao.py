"""In-PyTorch int8 deployment through torchao: int8 dynamic activations, int8 weights.

:func:`torchao_int8` turns a fine-tuned classifier (a quantized one first becomes its plain copy
with the fake-quantized weights, :func:`lvbert.export.onnx.dequantized_copy`) into one whose dense
layers run torchao's ``Int8DynamicActivationInt8WeightConfig``: weights int8 per output channel,
activations quantized per token at run time. The scales are torchao's own, not the learned clip
values (the learned 8-bit weights sit on a per-tensor grid, which the per-channel int8 grid holds
almost exactly); the convolutions, embeddings and attention stay fp32. Needs ``torchao`` (the
``deploy`` extra).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings

from torch import nn

from lvbert.errors import LvBertError


@contextlib.contextmanager
def _quiet():
    """torchao logs that its CUDA kernels do not load and warns about torch.compile internals."""
    loggers = [logging.getLogger(), logging.getLogger("torchao")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def require_torchao():
    """``torchao.quantization`` or a one-line error saying how to install it."""
    try:
        with _quiet():
            import torchao.quantization as tq
    except ImportError as e:
        raise LvBertError(f"--runtime torchao needs torchao ({e}): pip install -e .[deploy] (or pip install "
                          "torchao==0.18.0; a bare pip install may pull another torch)") from None  # fmt: skip
    return tq


def torchao_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (a classifier; quantized or not) with torchao int8 dense layers, in eval mode."""

    tq = require_torchao()
    if getattr(model.config, "quantization", None):
        from lvbert.export.onnx import dequantized_copy

        plain = dequantized_copy(model)
    else:
        plain = copy.deepcopy(model).eval()
    with _quiet():
        tq.quantize_(plain, tq.Int8DynamicActivationInt8WeightConfig())
    return plain.eval()
