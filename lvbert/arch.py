"""Architecture notation, size presets and counting -- plain Python, no torch.

An *arch* is a string over the layer types ``C`` (dynamic convolution), ``A``
(self-attention) and ``F`` (feed-forward), one letter per *slot*, bottom slot
first: ``CCAFFACFFACCAFCFACFCAAFA`` is the released LV-BERT-small. The official
code writes the same thing as integers (0 = C, 1 = A, 2 = F).

:func:`parse_arch` accepts every notation a user may type and returns the
canonical upper-case string; :func:`count_params` and :func:`count_macs` give
exact parameter and multiply-accumulate counts without building a model (they
are tied to the PyTorch model by tests).
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from lvbert.errors import LvBertError

LAYER_TYPES = "CAF"
TYPE_NAMES = {"C": "dynamic convolution", "A": "self-attention", "F": "feed-forward"}
# Official code's integer codes.
CODE_TO_TYPE = {0: "C", 1: "A", 2: "F"}
TYPE_TO_CODE = {v: k for k, v in CODE_TO_TYPE.items()}

LV_BERT_SMALL = "CCAFFACFFACCAFCFACFCAAFA"
DEFAULT_SLOTS = 24


class ArchError(LvBertError, ValueError):
    """An architecture string that cannot be read."""


# ----------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class SizeConfig:
    """Widths of an LV-BERT model (REFERENCE.md section 3). Every field can be overridden."""

    hidden_size: int = 256  # H
    num_attention_heads: int = 4  # heads of the A sub-layer (H/64 in the paper's sizes)
    intermediate_size: int = 1024  # FFN width of the F sub-layer
    embedding_size: int = 128  # E; projected E->H when E != H
    conv_heads: int = 4  # N heads of the C sub-layer (kernel weights shared within a head)
    conv_kernel_size: int = 9  # K
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    num_slots: int = DEFAULT_SLOTS

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or v <= 0:
                raise LvBertError(f"size field {f.name} must be a positive integer, got {v!r}")
        if self.hidden_size % self.num_attention_heads:
            raise LvBertError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_size % self.conv_heads:
            raise LvBertError(f"hidden_size {self.hidden_size} is not divisible by conv_heads {self.conv_heads}")
        if self.conv_kernel_size % 2 == 0:
            raise LvBertError(f"conv_kernel_size must be odd ('same' padding), got {self.conv_kernel_size}")

    def replace(self, **overrides) -> "SizeConfig":
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise LvBertError(f"unknown size field(s) {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SIZES: dict[str, SizeConfig] = {
    # Paper sizes, exactly as the official code (REFERENCE.md section 3).
    "small": SizeConfig(256, 4, 1024, 128, 4),
    "medium": SizeConfig(384, 6, 1536, 128, 6),
    "base": SizeConfig(768, 12, 3072, 768, 12),
    # For tests and the CPU quickstart: ~0.6M parameters with a 4,096-word vocabulary.
    "tiny": SizeConfig(
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=256,
        embedding_size=32,
        conv_heads=2,
        vocab_size=4096,
        max_position_embeddings=128,
    ),
}

# Generator width for ELECTRA pre-training (REFERENCE.md section 6): hidden / 4.
GENERATOR_HIDDEN = {"small": 64, "medium": 128, "base": 256}


def get_size(name: str | SizeConfig, **overrides) -> SizeConfig:
    """Look up a size preset by name and apply field overrides."""
    if isinstance(name, SizeConfig):
        size = name
    else:
        key = str(name).strip().lower()
        if key not in SIZES:
            raise LvBertError(f"unknown size {name!r}; choose one of {', '.join(SIZES)}")
        size = SIZES[key]
    return size.replace(**overrides) if overrides else size


# ----------------------------------------------------------------------------- notation


def _bert(n: int) -> str:
    _even(n, "bert")
    return "AF" * (n // 2)


def _dynamicconv(n: int) -> str:
    _even(n, "dynamicconv")
    return "CF" * (n // 2)


def _even(n: int, name: str) -> None:
    if n % 2:
        raise ArchError(f"'{name}' needs an even number of slots, got {n}")


def sandwich(num_slots: int = DEFAULT_SLOTS, k: int | None = None) -> str:
    """``A^k (AF)^(n-k) F^k`` with n = num_slots / 2 pairs (Press et al. 2020). Default k = n/4."""
    _even(num_slots, "sandwich")
    n = num_slots // 2
    if k is None:
        k = max(1, n // 4)  # 3 for the paper's 12 pairs
    if not 0 <= k <= n:
        raise ArchError(f"sandwich coefficient k must be between 0 and {n} for {num_slots} slots, got {k}")
    return "A" * k + "AF" * (n - k) + "F" * k


def random_arch(seed: int, num_slots: int = DEFAULT_SLOTS, types: str = LAYER_TYPES) -> str:
    """Uniform over ``types`` at every slot; reproducible from ``seed`` (own generator)."""
    rng = random.Random(seed)
    return "".join(rng.choice(types) for _ in range(num_slots))


# name -> builder(num_slots, argument or None)
NAMED_ARCHS = {
    "lv-bert-small": "the released LV-BERT-small list (24 slots)",
    "bert": "AF x n/2 (BERT / ELECTRA interleaving)",
    "dynamicconv": "CF x n/2 (DynamicConv-style)",
    "sandwich": "A^k (AF)^(n/2-k) F^k; 'sandwich:K' sets k (default pairs/4: 3 for 24 slots)",
    "random": "'random:SEED': uniform over C/A/F at every slot, reproducible",
}

_SEPARATORS = re.compile(r"[\s,\-_/|]+")


def parse_arch(spec: str | Sequence[int] | Sequence[str], num_slots: int | None = None) -> str:
    """Read an architecture in any accepted notation and return the canonical string.

    Accepted: ``CCAF...`` (any case), with separators (``C-C-A``, ``C C A``,
    ``C,C,A``), the official integer list (``[0,0,1,2]`` as text or a Python
    sequence), and registered names (see :data:`NAMED_ARCHS`). ``num_slots``
    sizes the named patterns (default 24) and, when given, is checked against
    the result.

    Raises :class:`ArchError` (a :class:`LvBertError`) naming the bad token and its position.
    """
    n = num_slots if num_slots is not None else DEFAULT_SLOTS
    if isinstance(spec, (list, tuple)):
        arch = _from_tokens([str(t) for t in spec], original=str(list(spec)))
    else:
        text = str(spec).strip()
        if not text:
            raise ArchError("empty architecture; give e.g. CCAFFACFFACCAFCFACFCAAFA, bert or lv-bert-small")
        arch = _from_name(text, n)
        if arch is None:
            if text[0] in "[(" or text[-1] in "])":
                if not (text[0] in "[(" and text[-1] in ")]"):
                    raise ArchError(f"unbalanced brackets in architecture {text!r}")
                tokens = [t for t in re.split(r"[\s,]+", text[1:-1].strip()) if t]
                arch = _from_tokens(tokens, original=text)
            else:
                arch = _from_letters(text)
    if num_slots is not None and len(arch) != num_slots:
        raise ArchError(f"architecture {arch} has {len(arch)} slots but the model has {num_slots}")
    return arch


def _from_name(text: str, n: int) -> str | None:
    name, _, arg = text.lower().partition(":")
    if name == "lv-bert-small" or name == "lvbert-small":
        if arg:
            raise ArchError("'lv-bert-small' takes no argument")
        return LV_BERT_SMALL
    if name in ("bert", "electra"):
        if arg:
            raise ArchError(f"'{name}' takes no argument")
        return _bert(n)
    if name == "dynamicconv":
        if arg:
            raise ArchError("'dynamicconv' takes no argument")
        return _dynamicconv(n)
    if name == "sandwich":
        return sandwich(n, _int_arg(arg, "sandwich:K") if arg else None)
    if name == "random":
        if not arg:
            raise ArchError("'random' needs a seed: write random:SEED, e.g. random:0")
        return random_arch(_int_arg(arg, "random:SEED"), n)
    return None


def _int_arg(arg: str, usage: str) -> int:
    try:
        return int(arg)
    except ValueError:
        raise ArchError(f"{usage} needs an integer, got {arg!r}") from None


def _from_letters(text: str) -> str:
    letters = _SEPARATORS.sub("", text)
    # Report positions in the user's text, counting layer letters from 1.
    pos = 0
    for ch in text:
        if _SEPARATORS.fullmatch(ch):
            continue
        pos += 1
        if ch.upper() not in LAYER_TYPES:
            raise ArchError(
                f"unknown layer type {ch!r} at position {pos} in {text!r}; use C (convolution), "
                f"A (attention), F (feed-forward), 0/1/2 in a [..] list, or a name ({', '.join(NAMED_ARCHS)})"
            )
    return letters.upper()


def _from_tokens(tokens: list[str], original: str) -> str:
    if not tokens:
        raise ArchError(f"empty architecture list {original!r}")
    out = []
    for i, tok in enumerate(tokens, 1):
        t = tok.strip().strip("'\"")
        if t in ("0", "1", "2"):
            out.append(CODE_TO_TYPE[int(t)])
        elif t.upper() in LAYER_TYPES and len(t) == 1:
            out.append(t.upper())
        else:
            raise ArchError(
                f"unknown layer code {tok!r} at position {i} in {original!r}; use 0 (convolution), 1 (attention), 2 (feed-forward)"
            )
    return "".join(out)


def to_codes(arch: str) -> list[int]:
    """Canonical string -> the official integer list."""
    return [TYPE_TO_CODE[t] for t in arch]


def type_counts(arch: str) -> dict[str, int]:
    return {t: arch.count(t) for t in LAYER_TYPES}


def pairs(arch: str) -> list[str]:
    """Slots grouped in pairs as the official code does (``layer_i`` = slots 2i, 2i+1)."""
    return [arch[i : i + 2] for i in range(0, len(arch), 2)]


# ----------------------------------------------------------------------------- counting


def sublayer_params(layer_type: str, size: SizeConfig) -> int:
    """Exact parameters of one sub-layer, LayerNorm included (REFERENCE.md section 5)."""
    H = size.hidden_size
    dense = H * H + H
    ln = 2 * H
    if layer_type == "A":
        return 4 * dense + ln  # Q, K, V, output
    if layer_type == "F":
        return (H * size.intermediate_size + size.intermediate_size) + (size.intermediate_size * H + H) + ln
    if layer_type == "C":
        K, N = size.conv_kernel_size, size.conv_heads
        gate = 2 * dense  # linear + gate
        depthwise = K * H  # no bias
        pointwise = dense
        kernel_gen = H * N * K + N * K
        return gate + depthwise + pointwise + kernel_gen + dense + ln
    raise ArchError(f"unknown layer type {layer_type!r}")


def embedding_params(size: SizeConfig) -> int:
    E, H = size.embedding_size, size.hidden_size
    n = (size.vocab_size + size.max_position_embeddings + size.type_vocab_size) * E + 2 * E
    if E != H:
        n += E * H + H
    return n


def mlm_head_params(size: SizeConfig) -> int:
    """Dense H->E, GELU, LayerNorm(E), decoder tied to the word embeddings, plus the vocabulary bias."""
    E, H = size.embedding_size, size.hidden_size
    return H * E + E + 2 * E + size.vocab_size


def count_params(arch: str, size: SizeConfig, head: str | None = None) -> int:
    """Parameters of the backbone (embeddings + encoder); ``head='mlm'`` adds the MLM head."""
    n = embedding_params(size) + sum(sublayer_params(t, size) for t in arch)
    if head == "mlm":
        n += mlm_head_params(size)
    elif head is not None:
        raise ValueError(f"unknown head {head!r}")
    return n


def sublayer_macs(layer_type: str, size: SizeConfig, seq_len: int) -> int:
    """Multiply-accumulates per token of one sub-layer at sequence length ``seq_len``."""
    H = size.hidden_size
    if layer_type == "A":
        return 4 * H * H + 2 * seq_len * H  # projections + scores + weighted sum
    if layer_type == "F":
        return 2 * H * size.intermediate_size
    if layer_type == "C":
        K, N = size.conv_kernel_size, size.conv_heads
        return 4 * H * H + 2 * K * H + N * K * H  # gate+linear, pointwise, output; depthwise, dynamic conv; kernel generator
    raise ArchError(f"unknown layer type {layer_type!r}")


def count_macs(arch: str, size: SizeConfig, seq_len: int = 128, include_embedding: bool = True) -> int:
    """Multiply-accumulates per token of the backbone (encoder, plus the E->H projection)."""
    n = sum(sublayer_macs(t, size, seq_len) for t in arch)
    if include_embedding and size.embedding_size != size.hidden_size:
        n += size.embedding_size * size.hidden_size
    return n


def arch_info(arch_spec: str, size: str | SizeConfig = "small", seq_len: int = 128) -> dict:
    """Everything ``lvbert arch info`` prints, as a JSON-able dict."""
    size_cfg = get_size(size)
    arch = parse_arch(arch_spec, num_slots=None if _is_literal(arch_spec) else size_cfg.num_slots)
    if len(arch) != size_cfg.num_slots:
        size_cfg = size_cfg.replace(num_slots=len(arch))
    if seq_len <= 0:
        raise LvBertError(f"--seq-len must be positive, got {seq_len}")
    return {
        "arch": arch,
        "codes": to_codes(arch),
        "size": size if isinstance(size, str) else "custom",
        "num_slots": len(arch),
        "counts": type_counts(arch),
        "params": count_params(arch, size_cfg),
        "params_with_mlm_head": count_params(arch, size_cfg, head="mlm"),
        "seq_len": seq_len,
        "macs_per_token": count_macs(arch, size_cfg, seq_len),
        "size_config": size_cfg.to_dict(),
    }


def _is_literal(spec) -> bool:
    """True when ``spec`` spells out its slots (so its length decides the slot count)."""
    if not isinstance(spec, str):
        return True
    return _from_name_safe(spec) is None


def _from_name_safe(spec: str) -> str | None:
    name = spec.strip().lower().partition(":")[0]
    return name if name in ("lv-bert-small", "lvbert-small", "bert", "electra", "dynamicconv", "sandwich", "random") else None


def strip_diagram(arch: str) -> str:
    """A one-line text picture: ``C C A F | F A C F | ...`` grouped by pair."""
    return " ".join(pairs(arch))


def iter_archs(specs: Iterable[str], num_slots: int | None = None) -> list[str]:
    return [parse_arch(s, num_slots) for s in specs]
