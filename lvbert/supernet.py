"""The weight-sharing supernet: every slot holds one sub-layer of each allowed type.

``forward(..., arch=...)`` runs exactly one path (single-path one-shot, SPOS);
embeddings and the MLM head are shared by every path. ``extract(arch)`` returns a
plain :class:`~lvbert.modeling_lvbert.LvBertForMaskedLM` whose outputs equal the
supernet's on that path (a parity test ties the two).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.initialization import no_init_weights
from transformers.modeling_outputs import MaskedLMOutput

from lvbert.modeling_lvbert import (
    LvBertConfig,
    LvBertEmbeddings,
    LvBertForMaskedLM,
    LvBertMLMHead,
    LvBertPreTrainedModel,
    attention_bias,
    make_sublayer,
    masked_lm_loss,
)


def normalize_allowed(allowed, num_slots: int) -> list[str]:
    """``"CAF"`` (every slot) or one string of types per slot -> list of per-slot type strings."""
    if isinstance(allowed, str):
        allowed = [allowed] * num_slots
    allowed = ["".join(t for t in "CAF" if t in str(a).upper()) for a in allowed]
    if len(allowed) != num_slots or any(not a for a in allowed):
        raise ValueError(f"allowed types must give at least one of C/A/F for each of the {num_slots} slots, got {allowed}")
    return allowed


class SupernetEncoder(nn.Module):
    """Slot i is a ModuleDict {type: sub-layer} over that slot's allowed types."""

    def __init__(self, config: LvBertConfig, allowed: list[str]):
        super().__init__()
        self.slots = nn.ModuleList(nn.ModuleDict({t: make_sublayer(t, config) for t in types}) for types in allowed)

    def forward(self, x, arch: str, attention_mask=None):
        attn_bias = attention_bias(attention_mask)
        if attn_bias is None:
            attention_mask = None
        for slot, layer_type in zip(self.slots, arch):
            x = slot[layer_type](x, attention_mask, attn_bias)
        return x


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
        self.allowed = normalize_allowed(getattr(config, "allowed_types", "CAF"), len(config.arch))
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

    def check_arch(self, arch: str) -> str:
        from lvbert.arch import parse_arch
        from lvbert.errors import LvBertError

        arch = parse_arch(arch, num_slots=self.num_slots)
        bad = [f"slot {i + 1} is {t} (allowed {a})" for i, (t, a) in enumerate(zip(arch, self.allowed)) if t not in a]
        if bad:
            raise LvBertError(f"architecture {arch} is outside the supernet's space: " + "; ".join(bad))
        return arch

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        labels=None,
        arch: str | None = None,
        position_ids=None,
        return_dict=None,
        **kwargs,
    ):
        if arch is None:
            raise ValueError("the supernet runs one path: pass arch=..., e.g. arch='AF' * 12")
        x = self.lvbert.embeddings(input_ids, token_type_ids, position_ids)
        h = self.lvbert.encoder(x, arch, attention_mask)
        if labels is not None:
            loss, logits = masked_lm_loss(self.mlm_head, h, labels, self.config.vocab_size)
        else:
            loss, logits = None, self.mlm_head(h)
        return MaskedLMOutput(loss=loss, logits=logits)

    def path_parameters(self, arch: str):
        """The parameters used by ``arch`` (shared ones included)."""
        arch = self.check_arch(arch)
        yield from self.lvbert.embeddings.parameters()
        yield from self.mlm_head.parameters()
        for slot, t in zip(self.lvbert.encoder.slots, arch):
            yield from slot[t].parameters()

    @torch.no_grad()
    def extract(self, arch: str) -> LvBertForMaskedLM:
        """A standalone ``LvBertForMaskedLM`` for ``arch`` with the supernet's weights."""
        arch = self.check_arch(arch)
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
                i, t, rest = name[len(prefix) :].split(".", 2)
                if arch[int(i)] != t:
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
        for a in self.allowed:
            n *= len(a)
        uniform = len(set(self.allowed)) == 1
        space = f"{self.allowed[0]} at every slot" if uniform else "per slot " + " ".join(self.allowed)
        return f"space: {self.num_slots} slots, {space}, {n:,} architectures; forward(..., arch=...) runs one path"

    @classmethod
    def from_size(cls, size="small", allowed="CAF", **overrides) -> "LvBertSupernet":
        from lvbert.arch import get_size

        num_slots = overrides.pop("num_slots", None) or get_size(size).num_slots
        config = LvBertConfig.from_size(size, arch="A" * num_slots, num_slots=num_slots, **overrides)
        config.allowed_types = normalize_allowed(allowed, num_slots)
        config.architectures = ["LvBertSupernet"]
        return cls(config)
