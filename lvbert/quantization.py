"""Quantization-aware training as KDLSQ-BERT (Jin et al. 2021): fake-quantized LV-BERT models.

**The quantizer** (:class:`Quantizer`): symmetric, per tensor, with a learnable clip value
alpha. With ``Q = 2^(b-1) - 1`` levels on each side,

    x_hat = alpha * round(clip(x / alpha, -1, 1) * Q) / Q

so 2 bits is ternary {-alpha, 0, alpha} and 8 bits has 255 levels (Q = 127). Backward is
LSQ's straight-through estimator re-parametrised on alpha (the KDLSQ code's): d x_hat / d alpha
is ``sign(x / alpha)`` outside [-alpha, alpha] and ``round(x / alpha * Q) / Q - x / alpha`` inside;
weights pass their gradient straight through everywhere, activations only inside the clip
range. LSQ's gradient scale ``1 / sqrt(N * Q)`` on alpha is an option (``grad_scale``); it is
off by default because the KDLSQ code has none and gives the alphas their own, larger learning
rates instead (1e-3 for weight alphas, 3e-2 for activation alphas), which the recipe follows.

**What is quantized** (:func:`quantize_model`, KDLSQ's choice carried over to every slot type):
the word and position embedding tables; every dense layer of the backbone -- the embedding
projection, A's fused query/key/value and output dense, F's two dense layers, and all of C's
weights (the gated input's two dense layers, the depthwise convolution, the pointwise dense, the
kernel generator and the output dense); weights at ``weight_bits``, the input of each of those
layers at ``act_bits`` (8 or off), and A's query, key and value (the fused dense's output)
before Q K^T and P V. LayerNorm, biases, token-type embeddings and the task head (classifier,
QA outputs) stay fp32. Not quantized, unlike KDLSQ: the attention probabilities before P V
(lvbert's A slot runs fused scaled-dot-product attention, which does not expose them).

**Initialisation** (:func:`init_weight_alphas`, :func:`calibrate_activations`): ``percentile``
(alpha = the larger magnitude of the p-th and (100 - p)-th percentiles; the KDLSQ code's weight
reset uses p = 97.5) or ``kl`` (TensorRT's entropy calibration: the clip of a 2048-bin histogram of
|x| minimising KL(P || Q)), activations observed on **training** batches (the KDLSQ code used a
dev batch).

**Storage** (:func:`save_packed`, :func:`load_packed`): the integer codes of each quantized weight
packed b bits each (four 2-bit codes per byte) with its alpha in a safetensors file, everything
else fp32; loading gives back the fake-quant model's weights bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from lvbert.errors import LvBertError
from lvbert.utils import atomic_write_bytes

INIT_METHODS = ("percentile", "kl")
SAMPLE = 200_000  # values kept per observed activation batch (calibration memory stays bounded)


class _Lsq(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, qmax: int, clip_input_grad: bool, grad_scale: float):
        v = x.float() / alpha
        q = torch.round(v.clamp(-1.0, 1.0) * qmax) / qmax
        ctx.save_for_backward(v, q)
        ctx.clip, ctx.scale, ctx.dtype = clip_input_grad, grad_scale, x.dtype
        return (q * alpha).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        v, q = ctx.saved_tensors
        grad = grad.float()
        outside = v.abs() > 1.0
        grad_x = grad.masked_fill(outside, 0.0) if ctx.clip else grad
        grad_alpha = (grad * torch.where(outside, v.sign(), q - v)).sum() * ctx.scale
        return grad_x.to(ctx.dtype), grad_alpha.reshape(()), None, None, None


def fake_quantize(x: torch.Tensor, alpha: torch.Tensor, bits: int, clip_input_grad: bool = True,
                  grad_scale: float = 1.0) -> torch.Tensor:  # fmt: skip
    """``alpha * round(clip(x / alpha, -1, 1) * Q) / Q`` with Q = 2^(bits-1) - 1 and LSQ's gradients."""
    return _Lsq.apply(x, alpha, 2 ** (bits - 1) - 1, clip_input_grad, grad_scale)


class Quantizer(nn.Module):
    """One tensor's quantizer: ``bits`` (None: off), a learnable ``alpha``; ``kind`` is ``weight``
    (gradient passes straight through) or ``act`` (no gradient outside the clip range)."""

    def __init__(self, bits: int | None, kind: str, grad_scale: bool = False):
        super().__init__()
        if kind not in ("weight", "act"):
            raise ValueError(f"kind must be weight or act, got {kind!r}")
        self.bits, self.kind, self.grad_scale = bits, kind, grad_scale
        self.alpha = nn.Parameter(torch.tensor(4.0 if kind == "weight" else 16.0))  # the KDLSQ code's defaults
        self.observed: list[torch.Tensor] | None = None  # calibration: samples of the inputs seen

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return x
        if self.observed is not None:
            flat = x.detach().float().flatten()
            if flat.numel() > SAMPLE:
                flat = flat[torch.randint(flat.numel(), (SAMPLE,), generator=torch.Generator().manual_seed(len(self.observed)))]
            self.observed.append(flat.cpu())
            return x  # calibration runs the model unquantized at this point
        scale = 1.0 / math.sqrt(x.numel() * self.qmax) if self.grad_scale else 1.0
        alpha = self.alpha.clamp(min=1e-8)
        return fake_quantize(x, alpha, self.bits, clip_input_grad=self.kind == "act", grad_scale=scale)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes round(clip(x / alpha) * Q) in [-Q, Q] (int8)."""
        alpha = self.alpha.detach().clamp(min=1e-8)
        return torch.round((x.detach().float() / alpha).clamp(-1.0, 1.0) * self.qmax).to(torch.int8)

    def extra_repr(self) -> str:
        return f"{self.kind}, bits={self.bits}, alpha={float(self.alpha):.4g}"


class QuantLinear(nn.Linear):
    """``nn.Linear`` with a weight quantizer ``wq``, an input quantizer ``aq`` and optionally an
    output quantizer ``oq``; the weight and bias are the original module's parameters."""

    def __init__(self, src: nn.Linear, weight_bits: int, act_bits: int | None, out_bits: int | None = None,
                 grad_scale: bool = False):  # fmt: skip
        nn.Module.__init__(self)
        self.in_features, self.out_features = src.in_features, src.out_features
        self.weight, self.bias = src.weight, src.bias
        self.wq = Quantizer(weight_bits, "weight", grad_scale)
        self.aq = Quantizer(act_bits, "act", grad_scale)
        self.oq = Quantizer(out_bits, "act", grad_scale) if out_bits else None

    def forward(self, x):
        y = F.linear(self.aq(x), self.wq(self.weight), self.bias)
        return self.oq(y) if self.oq is not None else y


class QuantConv1d(nn.Conv1d):
    """``nn.Conv1d`` (C's depthwise convolution) with weight and input quantizers."""

    def __init__(self, src: nn.Conv1d, weight_bits: int, act_bits: int | None, grad_scale: bool = False):
        nn.Module.__init__(self)
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                     "padding_mode", "transposed", "output_padding", "_reversed_padding_repeated_twice"):  # fmt: skip
            setattr(self, name, getattr(src, name))
        self.weight, self.bias = src.weight, src.bias
        self.wq = Quantizer(weight_bits, "weight", grad_scale)
        self.aq = Quantizer(act_bits, "act", grad_scale)

    def forward(self, x):
        return self._conv_forward(self.aq(x), self.wq(self.weight), self.bias)


class QuantEmbedding(nn.Embedding):
    """``nn.Embedding`` whose table is fake-quantized (weights only: its input is ids)."""

    def __init__(self, src: nn.Embedding, weight_bits: int, grad_scale: bool = False):
        nn.Module.__init__(self)
        for name in ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq",
                     "sparse"):  # fmt: skip
            setattr(self, name, getattr(src, name))
        self.weight = src.weight
        self.wq = Quantizer(weight_bits, "weight", grad_scale)

    def forward(self, ids):
        return F.embedding(ids, self.wq(self.weight), self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)  # fmt: skip


QUANT_MODULES = (QuantLinear, QuantConv1d, QuantEmbedding)


@dataclass(frozen=True)
class QuantSpec:
    """What :func:`quantize_model` did; saved in the model's config as ``quantization``."""

    weight_bits: int
    act_bits: int | None = 8
    grad_scale: bool = False
    method: str = "kdlsq"

    def to_dict(self) -> dict:
        return {"method": self.method, "weight_bits": self.weight_bits, "act_bits": self.act_bits,
                "grad_scale": self.grad_scale}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> "QuantSpec":
        return cls(int(d["weight_bits"]), None if d.get("act_bits") is None else int(d["act_bits"]),
                   bool(d.get("grad_scale", False)), d.get("method", "kdlsq"))  # fmt: skip


def check_bits(weight_bits: int, act_bits: int | None) -> None:
    if not 2 <= int(weight_bits) <= 8:
        raise LvBertError(f"--weight-bits must be 2 to 8, got {weight_bits}")
    if act_bits is not None and int(act_bits) != 8:
        raise LvBertError(f"--act-bits must be 8 (KDLSQ's activations) or 0 for off, got {act_bits}")


def quantize_model(model: nn.Module, spec: QuantSpec) -> nn.Module:
    """Replace the backbone's embeddings, dense layers and convolutions with fake-quantized ones (in
    place; the parameters are kept, so the model's outputs start from its full-precision values up to
    the quantization error). The task head stays fp32. Records ``spec`` in ``model.config``."""
    check_bits(spec.weight_bits, spec.act_bits)
    base = getattr(model, "base_model", model)
    if any(isinstance(m, QUANT_MODULES) for m in base.modules()):
        raise LvBertError("this model is already quantized")
    wb, ab, gs = spec.weight_bits, spec.act_bits, spec.grad_scale
    emb = base.embeddings
    for name in ("word_embeddings", "position_embeddings"):
        setattr(emb, name, QuantEmbedding(getattr(emb, name), wb, gs))
    for parent in list(base.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, QUANT_MODULES):
                continue
            if isinstance(child, nn.Linear):
                out_bits = ab if name == "qkv" else None  # A's query, key and value before Q K^T and P V
                setattr(parent, name, QuantLinear(child, wb, ab, out_bits, gs))
            elif isinstance(child, nn.Conv1d):
                setattr(parent, name, QuantConv1d(child, wb, ab, gs))
    if getattr(model, "config", None) is not None:
        model.config.quantization = spec.to_dict()
    return model


def quantizers(model: nn.Module, kind: str | None = None):
    """``(name, Quantizer)`` of every active quantizer (``kind``: weight, act or both)."""
    for name, m in model.named_modules():
        if isinstance(m, Quantizer) and m.bits is not None and (kind is None or m.kind == kind):
            yield name, m


def quantized_weights(model: nn.Module):
    """``(parameter name, weight tensor, its Quantizer)`` of every quantized weight."""
    for name, m in model.named_modules():
        if isinstance(m, QUANT_MODULES):
            yield (f"{name}.weight", m.weight, m.wq)


# ============================================================================ initialisation


def percentile_alpha(x: torch.Tensor, percentile: float) -> float:
    """max(|P_(100-p)|, |P_p|) of ``x``'s values (a sample of at most 2M of them)."""
    flat = x.detach().float().flatten()
    if flat.numel() > 2_000_000:
        flat = flat[torch.randint(flat.numel(), (2_000_000,), generator=torch.Generator().manual_seed(0))]
    lo, hi = torch.quantile(flat, torch.tensor([1 - percentile / 100, percentile / 100]))
    return max(abs(float(lo)), abs(float(hi)), 1e-8)


def kl_alpha(x: torch.Tensor, bits: int, bins: int = 2048) -> float:
    """TensorRT's entropy calibration on |x|: the clip threshold whose quantized histogram (2^(b-1)
    levels) is closest in KL divergence to the clipped reference histogram."""

    a = x.detach().float().abs().flatten()
    amax = float(a.max())
    if amax == 0.0:
        return 1e-8
    hist = torch.histc(a, bins=bins, min=0.0, max=amax).double().numpy()
    levels = 2 ** (bits - 1)
    best, best_i = float("inf"), bins
    for i in range(levels, bins + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        # the i reference bins merged into ``levels`` chunks (np.array_split's sizes), each chunk's mass
        # spread evenly over its non-empty bins
        size, extra = divmod(i, levels)  # the first ``extra`` chunks hold size + 1 bins
        j, cut = np.arange(i), extra * (size + 1)
        chunk = np.where(j < cut, j // (size + 1), extra + (j - cut) // size)
        used = hist[:i] > 0
        mass = np.bincount(chunk, weights=hist[:i], minlength=levels)
        count = np.bincount(chunk, weights=used.astype(float), minlength=levels)
        q = np.where(used, mass[chunk] / np.maximum(count[chunk], 1), 0.0)
        if p.sum() == 0 or q.sum() == 0:
            continue
        nonzero = p > 0
        pn, qn = p / p.sum(), q / q.sum()
        kl = float(np.sum(pn[nonzero] * np.log(pn[nonzero] / np.maximum(qn[nonzero], 1e-12))))
        if kl < best:
            best, best_i = kl, i
    return max((best_i + 0.5) * amax / bins, 1e-8)


def _alpha(values: torch.Tensor, bits: int, method: str, percentile: float) -> float:
    if method not in INIT_METHODS:
        raise LvBertError(f"unknown initialisation {method!r}; choose {' or '.join(INIT_METHODS)}")
    return percentile_alpha(values, percentile) if method == "percentile" else kl_alpha(values, bits)


@torch.no_grad()
def init_weight_alphas(model: nn.Module, method: str = "percentile", percentile: float = 97.5) -> None:
    """Set every weight quantizer's alpha from its weight tensor."""
    for _, weight, q in quantized_weights(model):
        q.alpha.fill_(_alpha(weight, q.bits, method, percentile))


@torch.no_grad()
def calibrate_activations(model: nn.Module, batches, method: str = "percentile", percentile: float = 99.99) -> int:
    """Run ``batches`` (dicts of model inputs) through the model with the activation quantizers
    observing (and passing through), then set their alphas from what they saw. The weights are
    fake-quantized during the pass, as they will be in training. Returns the number of batches."""
    acts = [q for _, q in quantizers(model, "act")]
    for q in acts:
        q.observed = []
    was = model.training
    model.eval()
    n = 0
    try:
        for batch in batches:
            model(**batch)
            n += 1
    finally:
        model.train(was)
        seen = {id(q): q.observed for q in acts}
        for q in acts:
            q.observed = None
    if n == 0:
        raise LvBertError("activation calibration needs at least one training batch")
    for q in acts:
        values = torch.cat(seen[id(q)]) if seen[id(q)] else None
        if values is not None and values.numel():
            q.alpha.fill_(_alpha(values, q.bits, method, percentile))
    return n


# ============================================================================ packed storage


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int8 codes in [-Q, Q] -> uint8 bytes, ``bits`` bits per code (offset by Q so they are unsigned)."""

    q = 2 ** (bits - 1) - 1
    u = (codes.to(torch.int16) + q).to(torch.uint8).numpy().reshape(-1, 1)
    bitplanes = np.unpackbits(u, axis=1)[:, 8 - bits :]  # the low ``bits`` bits of each code, MSB first
    return torch.from_numpy(np.packbits(bitplanes.reshape(-1)).copy())


def unpack_codes(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: ``count`` int8 codes."""

    q = 2 ** (bits - 1) - 1
    planes = np.unpackbits(packed.numpy())[: count * bits].reshape(count, bits)
    full = np.concatenate([np.zeros((count, 8 - bits), dtype=np.uint8), planes], axis=1)
    u = np.packbits(full, axis=1).reshape(-1)
    return (torch.from_numpy(u.astype(np.int16)) - q).to(torch.int8)


def save_packed(model: nn.Module, path) -> dict:
    """Write ``path`` (safetensors): each quantized weight as packed codes + alpha, every other tensor
    as it is (fp32). Returns sizes: the file's bytes and KDLSQ's count (quantized weights at b bits,
    everything else at 32)."""

    path = Path(path)
    quant = {name: (w, q) for name, w, q in quantized_weights(model)}
    tensors, meta = {}, {"format": "lvbert-packed-v1"}
    bits_quant = bits_rest = 0
    for name, t in model.state_dict().items():
        if name in quant:
            w, q = quant[name]
            tensors[f"{name}.codes"] = pack_codes(q.codes(w), q.bits)
            meta[f"{name}.shape"] = ",".join(map(str, w.shape))
            meta[f"{name}.bits"] = str(q.bits)
            bits_quant += w.numel() * q.bits
        else:
            tensors[name] = t.detach().contiguous().cpu()
            bits_rest += t.numel() * 32
    atomic_write_bytes(path, save(tensors, metadata=meta))
    full = sum(t.numel() for t in model.state_dict().values()) * 32
    return {"file_bytes": path.stat().st_size, "kdlsq_ratio": round(full / (bits_quant + bits_rest), 2)}


@torch.no_grad()
def load_packed(model: nn.Module, path) -> None:
    """Load a :func:`save_packed` file into a model quantized with the same spec: quantized weights
    become code / Q * alpha, which the fake-quant forward maps to the same codes (bit for bit)."""

    quant = {name: q for name, _, q in quantized_weights(model)}
    state = {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "lvbert-packed-v1":
            raise LvBertError(f"{path} is not an lvbert packed file")
        keys = set(f.keys())
        for name in model.state_dict():
            if name in quant:
                if f"{name}.codes" not in keys:
                    raise LvBertError(f"{path} lacks {name}; it was written for another model or bit width")
                shape = tuple(int(s) for s in meta[f"{name}.shape"].split(","))
                bits = int(meta[f"{name}.bits"])
                if bits != quant[name].bits:
                    raise LvBertError(f"{path} stores {name} at {bits} bits, the model quantizes it at {quant[name].bits}")
                state[name] = ("codes", f.get_tensor(f"{name}.codes"), shape, bits)
            elif name in keys:
                state[name] = ("plain", f.get_tensor(name))
            else:
                raise LvBertError(f"{path} lacks {name}")
    plain = {k: v[1] for k, v in state.items() if v[0] == "plain"}
    model.load_state_dict(plain, strict=False)  # the alphas first: the weights below use them
    params = dict(model.named_parameters())
    for name, entry in state.items():
        if entry[0] == "codes":
            _, packed, shape, bits = entry
            q = quant[name]
            codes = unpack_codes(packed, bits, math.prod(shape)).view(shape)
            alpha = q.alpha.detach().clamp(min=1e-8)
            params[name].copy_((codes.float() / q.qmax) * alpha)
