"""LV-BERT: a BERT encoder whose sub-layer slots are each a dynamic convolution (C),
self-attention (A) or feed-forward (F) layer, in any order.

Reads top to bottom: configuration, dropout, embeddings, the three sub-layer types,
the encoder, the Hugging Face model classes and their heads. Imports only torch
and transformers. Shapes: B batch, L sequence length, H hidden size, E
embedding size, N heads, K convolution kernel size, V vocabulary size.
Every sub-layer is post-LN residual, as in the official code:
``LayerNorm(x + dropout(f(x)))``.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from lvbert.arch import Arch, Op, SizeConfig, get_size, is_literal_arch, parse_arch

# ============================================================================ configuration


class LvBertConfig(PretrainedConfig):
    r"""Configuration of an LV-BERT model. Stores and documents values; nothing else.

    Args:
        arch (`str`): the layer list, bottom first: ``C`` dynamic convolution, ``A``
            self-attention, ``F`` feed-forward, ``I`` identity (e.g. ``"AF" * 12`` is BERT), a
            slot optionally with its own settings: ``C(kernel=5) A(heads=2) F(ffn=512) I``.
            Any notation accepted by ``lvbert.arch.parse_arch`` is stored in canonical form,
            settings equal to this config's widths dropped.
        vocab_size (`int`): size of the WordPiece vocabulary (30522 for BERT uncased).
        hidden_size (`int`): H, width of every sub-layer's input and output (above a ``P(hidden=W)``
            slot, a projection, the slots run at width W).
        num_attention_heads (`int`): heads of the A sub-layers (H/64 in the paper's sizes).
        intermediate_size (`int`): inner width of the F sub-layers (4H).
        embedding_size (`int`): E, width of the word/position/type embeddings; projected
            E->H by a dense layer when it differs from H (ELECTRA-small style).
        conv_heads (`int`): N, heads of the C sub-layers; the K kernel weights are shared by
            the H/N channels of a head.
        conv_kernel_size (`int`): K, kernel width of the C sub-layers (9).
        conv_mask_padding (`bool`): zero padded positions before the convolution so that
            padding cannot change real positions' outputs (default). ``False`` reproduces
            the official code, which lets padded positions leak into their neighbours.
        hidden_act (`str`): activation of the F sub-layers and the heads (``"gelu"`` = erf GELU).
        hidden_dropout_prob (`float`): dropout on each sub-layer's output and the embeddings.
        attention_probs_dropout_prob (`float`): dropout on attention probabilities.
        max_position_embeddings (`int`): number of learned positions (512).
        type_vocab_size (`int`): number of token types (segments A/B).
        layer_norm_eps (`float`): LayerNorm epsilon (1e-12 as TF).
        initializer_range (`float`): std of the truncated-normal initialiser.
        classifier_dropout (`float`): dropout before the sequence-classification dense layer.
    """

    model_type = "lvbert"

    def __init__(
        self,
        arch: str = "AF" * 12,
        vocab_size: int = 30522,
        hidden_size: int = 256,
        num_attention_heads: int = 4,
        intermediate_size: int = 1024,
        embedding_size: int = 128,
        conv_heads: int = 4,
        conv_kernel_size: int = 9,
        conv_mask_padding: bool = True,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        classifier_dropout: float = 0.1,
        pad_token_id: int = 0,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):

        self.arch = str(Arch.parse(arch))
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.embedding_size = embedding_size
        self.conv_heads = conv_heads
        self.conv_kernel_size = conv_kernel_size
        self.conv_mask_padding = conv_mask_padding
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.classifier_dropout = classifier_dropout
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)
        if hidden_size % num_attention_heads or hidden_size % conv_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by heads ({num_attention_heads}, {conv_heads})")
        self.arch = str(Arch.parse(self.arch).normalized(self.size_config()))

    @property
    def num_slots(self) -> int:
        return len(self.ops)

    @property
    def ops(self):
        """The slots as :class:`lvbert.arch.Op` objects with every setting filled in."""

        return Arch.parse(self.arch).resolve(self.size_config())

    @property
    def output_size(self) -> int:
        """Width of the encoder's output (``hidden_size`` unless a ``P`` slot changes it): what the heads read."""

        return Arch.parse(self.arch).output_width(self.size_config())

    @classmethod
    def from_size(cls, size="small", arch: str = "bert", **overrides) -> "LvBertConfig":
        """Config for a size preset of ``lvbert.arch.SIZES`` (or a SizeConfig), e.g.
        ``LvBertConfig.from_size("small", arch="lv-bert-small")``. Size fields and
        any other config field can be overridden by keyword."""

        size_fields = {f.name for f in dataclasses.fields(SizeConfig)}
        size_cfg = get_size(size, **{k: v for k, v in overrides.items() if k in size_fields})
        rest = {k: v for k, v in overrides.items() if k not in size_fields}
        fields = size_cfg.to_dict()
        num_slots = fields.pop("num_slots")
        # Named patterns (bert, sandwich, ...) are sized to the preset; a spelled-out arch keeps its length.
        arch = parse_arch(arch, num_slots=None if is_literal_arch(arch) else num_slots)
        return cls(arch=arch, **fields, **rest)

    def size_config(self):
        """The plain :class:`lvbert.arch.SizeConfig` of this config (for counting)."""

        return SizeConfig(
            hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            embedding_size=self.embedding_size,
            conv_heads=self.conv_heads,
            conv_kernel_size=self.conv_kernel_size,
            vocab_size=self.vocab_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            num_slots=max(1, len(Arch.parse(self.arch))),
        )


# ============================================================================ dropout


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout: each element kept with probability 1 - p and scaled by 1 / (1 - p).

    The mask is drawn faster than ``F.dropout`` draws it on CPU. There, 64 random bits give four
    16-bit uniforms (``random_`` on int64, viewed as int16), compared with ``round(p * 2^16)``: 5x
    faster than ``torch.rand`` and ~13x faster than the ``bernoulli_`` inside ``F.dropout`` (one
    core with another job on the other, 1M elements: 1.3 ms vs 6.6 ms vs ~17 ms). The keep rate
    is within 2^-17 of 1 - p. On other devices the mask comes from ``torch.rand``, fast there."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    if x.device.type == "cpu":
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= round(p * 65536) - 32768
    else:
        keep = torch.rand(x.shape, device=x.device) >= p  # float32 draw even under bf16: exact keep rate
    return x.mul(keep).mul_(1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same ``p``, same train/eval switch) using :func:`fast_dropout`."""

    def forward(self, x):
        return fast_dropout(x, self.p, self.training)


# ============================================================================ embeddings


class LvBertEmbeddings(nn.Module):
    """word + position + token type (all E wide) -> LayerNorm -> dropout -> dense E->H if E != H."""

    def __init__(self, config: LvBertConfig):
        super().__init__()
        E = config.embedding_size
        self.word_embeddings = nn.Embedding(config.vocab_size, E, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, E)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, E)
        self.LayerNorm = nn.LayerNorm(E, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.project = nn.Linear(E, config.hidden_size) if E != config.hidden_size else None

    def forward(self, input_ids, token_type_ids=None, position_ids=None, inputs_embeds=None):
        x = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # [B, L, E]
        L = x.shape[1]
        if L > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"sequence length {L} is above the model's {self.position_embeddings.num_embeddings} positions; truncate the input"
            )
        if position_ids is None:  # rows 0..L-1, broadcast over the batch (through the module: it may be quantized)
            x = x + self.position_embeddings(torch.arange(L, device=x.device))
        else:
            x = x + self.position_embeddings(position_ids)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        x = self.dropout(self.LayerNorm(x))
        return self.project(x) if self.project is not None else x  # [B, L, H]


# ============================================================================ the three sub-layer types


def attention_bias(attention_mask: torch.Tensor | None, dtype=torch.bool) -> torch.Tensor | None:
    """[B, L] mask of 1 (token) / 0 (padding) -> [B, 1, 1, L] boolean mask for SDPA (True = attend).

    Returns None when there is no padding, which lets SDPA take its fastest kernel (not while
    exporting a graph: the check depends on the data)."""
    if attention_mask is None:
        return None
    if not torch.compiler.is_exporting() and bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


class AttentionLayer(nn.Module):
    """A: BERT's multi-head self-attention (Q, K, V dense H->H fused into one matmul)."""

    def __init__(self, config: LvBertConfig, heads: int | None = None, width: int | None = None):
        super().__init__()
        H = width or config.hidden_size
        self.num_heads = heads or config.num_attention_heads
        self.qkv = nn.Linear(H, 3 * H)  # rows: query, key, value
        self.dense = nn.Linear(H, H)
        self.LayerNorm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.attention_dropout = config.attention_probs_dropout_prob

    def forward(self, x, attention_mask=None, attn_bias=None, return_scores: bool = False):
        """``return_scores``: also return the pre-softmax scores [B, N, L, L] (padded keys at the dtype's
        minimum), computed without SDPA; the default path keeps SDPA's fused kernel."""
        B, L, H = x.shape
        if attn_bias is None and attention_mask is not None:
            attn_bias = attention_bias(attention_mask)
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, H // self.num_heads).permute(2, 0, 3, 1, 4)  # 3 x [B, N, L, d]
        scores = None
        # On CPU the same math by hand beats SDPA in two cases. In training: with dropout SDPA has no fused
        # kernel and falls back to its math path, which draws Bernoulli masks (slow) and adds safe-softmax
        # passes; without dropout its flash kernel's forward and backward took 1.11-1.21x as long as two GEMMs
        # and a softmax at three of four shapes, 0.97x at the fourth (fp32, L = 64-128,
        # benchmarks/bench_attention.py, docs/benchmarks.md#attention-in-training). In bfloat16 its flash
        # kernel is ~3x slower at L = 64-128 (benchmarks/bench_fitness.py measures it). In fp32 inference
        # SDPA is as fast or faster.
        # An exported graph takes the same math too: SDPA's ONNX decomposition masks every head's scores
        # with Where and zeroes NaN rows after the softmax (IsNaN, Where), three passes over [B, N, L, L]
        # that onnxruntime runs as written; a finite additive mask needs one (docs/benchmarks.md#quantization).
        exporting = torch.compiler.is_exporting()
        cpu = x.device.type == "cpu"
        manual = return_scores or exporting or (
            cpu and ((self.training and torch.is_grad_enabled()) or q.dtype == torch.bfloat16)
        )
        if manual:
            scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))  # [B, N, L, L]
            if attn_bias is not None and exporting:
                scores = scores + torch.where(attn_bias, 0.0, torch.finfo(scores.dtype).min).to(scores.dtype)
            elif attn_bias is not None:
                scores = scores.masked_fill(~attn_bias, torch.finfo(scores.dtype).min)
            p = scores.softmax(dim=-1)
            if self.training and self.attention_dropout > 0:
                p = fast_dropout(p, self.attention_dropout)
            y = torch.matmul(p.to(v.dtype), v)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_bias, dropout_p=self.attention_dropout if self.training else 0.0
            )
        y = y.transpose(1, 2).reshape(B, L, H)
        out = self.LayerNorm(x + self.dropout(self.dense(y)))
        return (out, scores) if return_scores else out


class FeedForwardLayer(nn.Module):
    """F: dense H->FFN, GELU (erf), dense FFN->H."""

    def __init__(self, config: LvBertConfig, ffn: int | None = None, width: int | None = None):
        super().__init__()
        ffn, H = ffn or config.intermediate_size, width or config.hidden_size
        self.intermediate = nn.Linear(H, ffn)
        self.output = nn.Linear(ffn, H)
        self.LayerNorm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.act = _activation(config.hidden_act)

    def forward(self, x, attention_mask=None, attn_bias=None):
        return self.LayerNorm(x + self.dropout(self.output(self.act(self.intermediate(x)))))


class KernelGenerator(nn.Linear):
    """Dense H -> N*K producing the dynamic kernels (its own class: glorot-uniform init, as TF's default)."""


class DynamicConvLayer(nn.Module):
    """C: LV-BERT's dynamic convolution (the official code's operator).

    1. gated input        v = (x W_l + b_l) * sigmoid(x W_g + b_g)             [B, L, H]
    2. span-aware key     s = pointwise(depthwise_K(v))                         [B, L, H]
    3. dynamic kernels    w = softmax_K(s W_k + b_k)                            [B, L, N, K]
    4. lightweight conv   out[t, n, c] = sum_k w[t, n, k] * v[t + k - K//2, n, c]
    5. dense H->H, dropout, residual, LayerNorm.
    """

    def __init__(self, config: LvBertConfig, kernel: int | None = None, heads: int | None = None,
                 width: int | None = None):  # fmt: skip
        super().__init__()
        H, N, K = width or config.hidden_size, heads or config.conv_heads, kernel or config.conv_kernel_size
        self.num_heads, self.kernel_size = N, K
        self.linear = nn.Linear(H, H)
        self.gate = nn.Linear(H, H)
        self.depthwise = nn.Conv1d(H, H, K, padding=K // 2, groups=H, bias=False)
        self.pointwise = nn.Linear(H, H)
        self.kernel = KernelGenerator(H, N * K)
        self.dense = nn.Linear(H, H)
        self.LayerNorm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.mask_padding = config.conv_mask_padding

    def forward(self, x, attention_mask=None, attn_bias=None):
        B, L, H = x.shape
        N, K = self.num_heads, self.kernel_size
        v = self.linear(x) * torch.sigmoid(self.gate(x))
        if self.mask_padding and attention_mask is not None:
            # Zero padded positions: they then act like the convolution's own zero padding.
            v = v * attention_mask[:, :, None].to(v.dtype)
        s = self.pointwise(self.depthwise(v.transpose(1, 2)).transpose(1, 2))
        w = self.kernel(s).view(B, L, N, K).softmax(dim=-1)  # [B, L, N, K]
        out = lightweight_conv(w, v.view(B, L, N, H // N))  # [B, L, N, d]
        return self.LayerNorm(x + self.dropout(self.dense(out.reshape(B, L, H))))


def lightweight_conv(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``out[b, t, n, :] = sum_k w[b, t, n, k] * v[b, t + k - K//2, n, :]`` (zeros outside 0..L-1).

    w: [B, L, N, K] per-position kernels, v: [B, L, N, d] -> [B, L, N, d].
    Computed as one batched matmul with a banded [L, L+K-1] matrix per (b, n) whose row t
    holds w[b, t, n] at columns t..t+K-1: the band is built by the "skew" trick (pad each
    row by L zeros, flatten, re-read with rows one shorter), so no loop over K and no
    gather. The band wastes (L+K-1)/K multiplies on zeros, but a GEMM runs those far
    faster than K separate multiply-add passes over [B, L, H] (forward and backward)."""
    B, L, N, K = w.shape
    P = L + K - 1
    band = F.pad(w.transpose(1, 2), (0, L)).reshape(B, N, L * (L + K))[..., : L * P].view(B, N, L, P)
    v_pad = F.pad(v.transpose(1, 2), (0, 0, K // 2, K // 2))  # [B, N, P, d]
    return torch.matmul(band, v_pad).transpose(1, 2)


class IdentityLayer(nn.Module):
    """I: an empty slot, output = input (no parameters, no LayerNorm)."""

    def forward(self, x, attention_mask=None, attn_bias=None):
        return x


class ProjectionLayer(nn.Module):
    """P: dense (input width) -> ``hidden``, a width change between blocks (NAS-BERT's adapters);
    no residual, no LayerNorm."""

    def __init__(self, config: LvBertConfig, hidden: int, width: int | None = None):
        super().__init__()
        self.dense = nn.Linear(width or config.hidden_size, hidden)

    def forward(self, x, attention_mask=None, attn_bias=None):
        return self.dense(x)


SUBLAYERS = {"C": DynamicConvLayer, "A": AttentionLayer, "F": FeedForwardLayer, "I": IdentityLayer,
             "P": ProjectionLayer}  # fmt: skip


def make_sublayer(op, config: LvBertConfig, width: int | None = None) -> nn.Module:
    """The sub-layer of one slot: ``op`` is an ``lvbert.arch.Op`` (or a type letter); settings it
    leaves out come from ``config``; ``width`` is its input width (default ``config.hidden_size``)."""

    op = Op(op) if isinstance(op, str) else op
    if op.type == "I":
        return IdentityLayer()
    return SUBLAYERS[op.type](config, **op.settings, width=width)


def _activation(name: str):
    if name == "gelu":
        return nn.GELU()
    if name in ("gelu_new", "gelu_tanh", "gelu_pytorch_tanh"):
        return nn.GELU(approximate="tanh")
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unsupported activation {name!r}; use gelu, gelu_new or relu")


# ============================================================================ encoder


class LvBertEncoder(nn.Module):
    """The slots, bottom first; slot i is the sub-layer of the arch's i-th op."""

    def __init__(self, config: LvBertConfig):
        super().__init__()
        ops = config.ops
        self.slots = nn.ModuleList(make_sublayer(op, config, w) for op, w in zip(ops, ops.widths(config.size_config())))

    def forward(self, x, attention_mask=None, output_hidden_states=False, output_attentions=False):
        """Returns ``(x, hidden_states, attentions)``: the input and every slot's output when asked,
        and the pre-softmax scores of each A slot (bottom first) when asked."""
        attn_bias = attention_bias(attention_mask)
        if attn_bias is None:
            attention_mask = None  # no padding: skip masking work everywhere
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for slot in self.slots:
            if output_attentions and isinstance(slot, AttentionLayer):
                x, scores = slot(x, attention_mask, attn_bias, return_scores=True)
                attentions.append(scores)
            else:
                x = slot(x, attention_mask, attn_bias)
            if output_hidden_states:
                hidden_states.append(x)
        return x, hidden_states, attentions


# ============================================================================ Hugging Face models


class LvBertPreTrainedModel(PreTrainedModel):
    config_class = LvBertConfig
    base_model_prefix = "lvbert"
    supports_gradient_checkpointing = False
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        """Official code: truncated normal std 0.02 (within 2 std), depthwise kernel std 1/K,
        kernel generator glorot-uniform, LayerNorm 1/0, biases 0."""
        std = self.config.initializer_range
        if isinstance(module, KernelGenerator):
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Conv1d):
            init.trunc_normal_(module.weight, std=1.0 / module.kernel_size[0], a=-2.0 / module.kernel_size[0], b=2.0 / module.kernel_size[0])
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class LvBertModel(LvBertPreTrainedModel):
    """The backbone: embeddings + encoder. ``last_hidden_state[:, 0]`` summarises the
    sequence (no tanh pooler, as ELECTRA)."""

    def __init__(self, config: LvBertConfig):
        super().__init__(config)
        self.embeddings = LvBertEmbeddings(config)
        self.encoder = LvBertEncoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        **kwargs,
    ):
        """``hidden_states``: the embeddings' output then every slot's output (num_slots + 1 tensors
        [B, L, H]); ``attentions``: the pre-softmax scores [B, N, L, L] of each A slot, bottom first,
        padded keys at the dtype's minimum (``lvbert.arch.attention_slots(config.arch)`` gives their slots)."""
        x = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        x, hidden_states, attentions = self.encoder(x, attention_mask, bool(output_hidden_states), bool(output_attentions))
        out = BaseModelOutput(last_hidden_state=x, hidden_states=tuple(hidden_states) if hidden_states else None,
                              attentions=tuple(attentions) if attentions is not None else None)  # fmt: skip
        return out if return_dict is not False else out.to_tuple()


class LvBertMLMHead(nn.Module):
    """Generator-style MLM head: dense H->E, GELU, LayerNorm(E), decoder tied to the word embeddings + bias."""

    def __init__(self, config: LvBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.output_size, config.embedding_size)
        self.act = _activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)

    def forward(self, h):
        return self.decoder(self.LayerNorm(self.act(self.dense(h))))


def masked_lm_loss(head: nn.Module, sequence_output, labels):
    """Vocabulary logits only where ``labels != -100``: returns (loss, logits [M, V]).

    Rows of ``logits`` follow the masked positions in row-major order, i.e. they
    line up with ``labels[labels != -100]``."""
    selected = labels != -100
    logits = head(sequence_output[selected])  # [M, V]
    targets = labels[selected]
    if targets.numel() == 0:  # nothing masked: a zero that still carries a graph
        return logits.sum() * 0.0, logits
    return F.cross_entropy(logits.float(), targets), logits


class LvBertForMaskedLM(LvBertPreTrainedModel):
    """Backbone + MLM head. With ``labels`` (-100 = not masked) the logits are computed
    only at the masked positions and have shape [M, V]; without, [B, L, V]."""

    _tied_weights_keys = {"mlm_head.decoder.weight": "lvbert.embeddings.word_embeddings.weight"}

    def __init__(self, config: LvBertConfig):
        super().__init__(config)
        self.lvbert = LvBertModel(config)
        self.mlm_head = LvBertMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.mlm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.mlm_head.decoder = new_embeddings

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        **kwargs,
    ):
        base = self.lvbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
        )  # fmt: skip
        h = base.last_hidden_state
        if labels is not None:
            loss, logits = masked_lm_loss(self.mlm_head, h, labels)
        else:
            loss, logits = None, self.mlm_head(h)
        out = MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions)
        return out if return_dict is not False else out.to_tuple()


class LvBertDiscriminatorHead(nn.Module):
    """ELECTRA discriminator head: dense H->H, GELU, dense H->1 (one logit per token: replaced?)."""

    def __init__(self, config: LvBertConfig):
        super().__init__()
        H = config.output_size
        self.dense = nn.Linear(H, H)
        self.act = _activation(config.hidden_act)
        self.out = nn.Linear(H, 1)

    def forward(self, h):
        return self.out(self.act(self.dense(h))).squeeze(-1)


class LvBertForPreTraining(LvBertPreTrainedModel):
    """The ELECTRA discriminator: replaced-token detection. ``labels`` [B, L] are 1 where the
    token was replaced by the generator, 0 where it is original; the BCE loss is averaged
    over non-padding tokens."""

    def __init__(self, config: LvBertConfig):
        super().__init__(config)
        self.lvbert = LvBertModel(config)
        self.discriminator_head = LvBertDiscriminatorHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        **kwargs,
    ):
        base = self.lvbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
        )  # fmt: skip
        logits = self.discriminator_head(base.last_hidden_state)  # [B, L]
        loss = None
        if labels is not None:
            loss = replaced_token_loss(logits, labels, attention_mask)
        out = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions)
        return out if return_dict is not False else out.to_tuple()


def replaced_token_loss(logits, labels, attention_mask=None):
    """Binary cross-entropy of replaced-token detection, mean over non-padding tokens."""
    per_token = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    if attention_mask is None:
        return per_token.mean()
    weights = attention_mask.to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)


class LvBertForSequenceClassification(LvBertPreTrainedModel):
    """Token-0 representation -> dropout -> dense (the official fine-tuning head).
    ``num_labels == 1`` is regression (MSE); otherwise single-label classification (CE)."""

    def __init__(self, config: LvBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.lvbert = LvBertModel(config)
        self.dropout = Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.output_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        **kwargs,
    ):
        base = self.lvbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
        )  # fmt: skip
        logits = self.classifier(self.dropout(base.last_hidden_state[:, 0]))  # [B, num_labels]
        loss = None
        if labels is not None:
            if self.num_labels == 1 or self.config.problem_type == "regression":
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            elif self.config.problem_type == "multi_label_classification":
                loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.long())
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                       attentions=base.attentions)  # fmt: skip
        return out if return_dict is not False else out.to_tuple()


class LvBertForQuestionAnswering(LvBertPreTrainedModel):
    """Extractive QA (SQuAD): dense H->2 on every token gives start and end logits [B, L]. With
    ``start_positions`` / ``end_positions`` [B] the loss is the mean of the two cross-entropies
    (positions outside the input are clamped and ignored, as BERT's head)."""

    def __init__(self, config: LvBertConfig):
        super().__init__(config)
        self.lvbert = LvBertModel(config)
        self.qa_outputs = nn.Linear(config.output_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        **kwargs,
    ):
        base = self.lvbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
        )  # fmt: skip
        start_logits, end_logits = self.qa_outputs(base.last_hidden_state).unbind(-1)  # [B, L] each
        loss = None
        if start_positions is not None and end_positions is not None:
            L = start_logits.shape[1]
            s, e = start_positions.clamp(0, L), end_positions.clamp(0, L)
            loss = (F.cross_entropy(start_logits.float(), s, ignore_index=L)
                    + F.cross_entropy(end_logits.float(), e, ignore_index=L)) / 2  # fmt: skip
        out = QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                           hidden_states=base.hidden_states, attentions=base.attentions)  # fmt: skip
        return out if return_dict is not False else out.to_tuple()


__all__ = [
    "LvBertConfig",
    "LvBertModel",
    "LvBertForMaskedLM",
    "LvBertForPreTraining",
    "LvBertForSequenceClassification",
    "LvBertForQuestionAnswering",
    "LvBertPreTrainedModel",
    "DynamicConvLayer",
    "AttentionLayer",
    "FeedForwardLayer",
    "masked_lm_loss",
    "replaced_token_loss",
]
