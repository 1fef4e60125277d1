"""The weight-sharing supernet: every slot holds one sub-layer of each allowed op.

A slot's choices are layer types (``CAF``: LV-BERT's space) or ops with settings
(``C(kernel=3) C(kernel=5) A F I``: op variants and identity). ``forward(..., arch=...)``
runs exactly one path (single-path one-shot, SPOS); embeddings and the MLM head are
shared by every path. ``extract(arch)`` returns a plain
:class:`~lvbert.modeling_lvbert.LvBertForMaskedLM` whose outputs equal the supernet's on
that path (a parity test ties the two).
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import nn
from transformers.initialization import no_init_weights
from transformers.modeling_outputs import MaskedLMOutput

from lvbert.arch import Arch, SizeConfig, get_size
from lvbert.errors import LvBertError
from lvbert.modeling_lvbert import (
    AttentionLayer,
    LvBertConfig,
    LvBertEmbeddings,
    LvBertForMaskedLM,
    LvBertMLMHead,
    LvBertPreTrainedModel,
    attention_bias,
    make_sublayer,
    masked_lm_loss,
)
from lvbert.space import normalize_choices


def normalize_allowed(allowed, num_slots: int, size=None) -> list[str]:
    """The choices of every slot in canonical form, one string per slot: ``"CAF"`` for layer types,
    ``"C(kernel=3) C A I"`` for ops with settings (ordered C, A, F, I; settings equal to ``size``'s
    values dropped). ``allowed`` is one such string for every slot, or one per slot."""

    return [str(c) for c in normalize_choices(allowed, num_slots, size)]


@functools.lru_cache(maxsize=4096)
def _path_keys(arch: str, size_key: tuple) -> tuple[str, ...]:
    """The module key of each slot's op (``C``, ``A``, ``C_kernel5``) for an arch string."""

    if arch.isalpha() and arch.isupper():  # plain letters: the key is the letter
        return tuple(arch)
    return tuple(op.key for op in Arch.parse(arch).normalized(SizeConfig(*size_key)))


class SupernetEncoder(nn.Module):
    """Slot i is a ModuleDict {op key: sub-layer} over that slot's allowed ops."""

    def __init__(self, config: LvBertConfig, allowed: list[str]):
        super().__init__()
        self.slots = nn.ModuleList(
            nn.ModuleDict({op.key: make_sublayer(op, config) for op in Arch.parse(choices)}) for choices in allowed
        )

    def forward(self, x, keys: tuple[str, ...], attention_mask=None, output_hidden_states: bool = False,
                output_attentions: bool = False):  # fmt: skip
        attn_bias = attention_bias(attention_mask)
        if attn_bias is None:
            attention_mask = None
        hidden, scores = ([x] if output_hidden_states else None), ([] if output_attentions else None)
        for i, (slot, key) in enumerate(zip(self.slots, keys)):
            layer = slot[key]
            if output_attentions and isinstance(layer, AttentionLayer):
                x, s = layer(x, attention_mask, attn_bias, return_scores=True)
                scores.append((i, s))
            else:
                x = layer(x, attention_mask, attn_bias)
            if output_hidden_states:
                hidden.append(x)
        return x, hidden, scores


class SupernetBackbone(nn.Module):
    def __init__(self, config: LvBertConfig, allowed: list[str]):
        super().__init__()
        self.embeddings = LvBertEmbeddings(config)
        self.encoder = SupernetEncoder(config, allowed)


class LvBertSupernet(LvBertPreTrainedModel):
    """Weight-sharing supernet over layer types with a shared MLM head.

    The config's ``arch`` gives the number of slots; ``config.allowed_types`` (one
    string per slot, default ``"CAF"`` everywhere) gives the space. Parameter names
    follow the plain model with the type inserted: ``lvbert.encoder.slots.{i}.{T}.*``.
    """

    _tied_weights_keys = {"mlm_head.decoder.weight": "lvbert.embeddings.word_embeddings.weight"}

    def __init__(self, config: LvBertConfig):
        super().__init__(config)
        self.allowed = normalize_allowed(getattr(config, "allowed_types", "CAF"), config.num_slots, config.size_config())
        config.allowed_types = self.allowed
        self.lvbert = SupernetBackbone(config, self.allowed)
        self.mlm_head = LvBertMLMHead(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.lvbert.embeddings.word_embeddings

    def get_output_embeddings(self):
        return self.mlm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.mlm_head.decoder = new_embeddings

    @property
    def num_slots(self) -> int:
        return len(self.allowed)

    def path_keys(self, arch) -> tuple[str, ...]:
        """The module key of each slot's op (``C``, ``A``, ``C_kernel5``) on ``arch``'s path (not checked)."""
        return _path_keys(str(arch), self._size_key())

    def _size_key(self) -> tuple:
        return dataclasses.astuple(self.config.size_config())

    def check_arch(self, arch) -> str:
        """The canonical string of ``arch``; a one-line error when it is outside the supernet's space."""

        ops = Arch.parse(arch, num_slots=self.num_slots).normalized(self.config.size_config())
        bad = [f"slot {i + 1} is {op} (allowed {a})" for i, (op, a, slot) in
               enumerate(zip(ops, self.allowed, self.lvbert.encoder.slots)) if op.key not in slot]  # fmt: skip
        if bad:
            raise LvBertError(f"architecture {ops} is outside the supernet's space: " + "; ".join(bad))
        return str(ops)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        labels=None,
        arch: str | None = None,
        position_ids=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        **kwargs,
    ):
        """One path's MLM output; with ``output_hidden_states`` the input and the output of every slot,
        with ``output_attentions`` the pre-softmax scores of its A slots (as ``LvBertModel``; the slot
        of each is ``lvbert.arch.attention_slots(arch)``)."""
        if arch is None:
            raise ValueError("the supernet runs one path: pass arch=..., e.g. arch='AF' * 12")
        keys = self.path_keys(arch)
        if len(keys) != self.num_slots:
            self.check_arch(arch)  # the one-line error naming the slot count
        x = self.lvbert.embeddings(input_ids, token_type_ids, position_ids)
        h, hidden, scores = self.lvbert.encoder(x, keys, attention_mask, bool(output_hidden_states), bool(output_attentions))
        if labels is not None:
            loss, logits = masked_lm_loss(self.mlm_head, h, labels)
        else:
            loss, logits = None, self.mlm_head(h)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=tuple(hidden) if hidden else None,
                              attentions=tuple(s for _, s in scores) if scores is not None else None)  # fmt: skip

    @torch.no_grad()
    def extract(self, arch: str) -> LvBertForMaskedLM:
        """A standalone ``LvBertForMaskedLM`` for ``arch`` with the supernet's weights."""
        arch = self.check_arch(arch)
        keys = self.path_keys(arch)
        cfg = self.config.to_dict()
        for key in ("allowed_types", "architectures", "model_type", "transformers_version", "dtype", "torch_dtype"):
            cfg.pop(key, None)
        cfg["arch"] = arch
        # Every weight is overwritten below: skip the initialisers (trunc_normal_ of every
        # matrix took ~1 s of a 1.3 s extract at small size, and the search extracts often).
        with no_init_weights():
            model = LvBertForMaskedLM(LvBertConfig(**cfg))
        state = {}
        prefix = "lvbert.encoder.slots."
        for name, tensor in self.state_dict().items():
            if name.startswith(prefix):
                i, key, rest = name[len(prefix) :].split(".", 2)
                if keys[int(i)] != key:
                    continue
                name = f"{prefix}{i}.{rest}"
            state[name] = tensor.clone()
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)  # the clones become the weights
        missing = [m for m in missing if m != "mlm_head.decoder.weight"]  # tied to the word embeddings
        if missing or unexpected:
            raise RuntimeError(f"extract: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
        model.train(self.training)
        return model.to(self.device)

    def extra_repr(self) -> str:
        n = 1
        for slot in self.lvbert.encoder.slots:
            n *= len(slot)
        uniform = len(set(self.allowed)) == 1
        space = f"{self.allowed[0]} at every slot" if uniform else "per slot " + " / ".join(self.allowed)
        return f"space: {self.num_slots} slots, {space}, {n:,} architectures; forward(..., arch=...) runs one path"

    @classmethod
    def from_size(cls, size="small", allowed="CAF", **overrides) -> "LvBertSupernet":
        num_slots = overrides.pop("num_slots", None) or get_size(size).num_slots
        config = LvBertConfig.from_size(size, arch="A" * num_slots, num_slots=num_slots, **overrides)
        config.allowed_types = normalize_allowed(allowed, num_slots, config.size_config())
        config.architectures = ["LvBertSupernet"]
        return cls(config)
