"""Architecture notation, size presets and counting -- plain Python, no torch.

An *arch* (:class:`Arch`) is a sequence of *slots*, bottom slot first, each holding one
*op* (:class:`Op`): a layer type with optional settings --

- ``C`` dynamic convolution: ``kernel`` (K, odd) and ``heads`` (conv heads N);
- ``A`` self-attention: ``heads``;
- ``F`` feed-forward: ``ffn`` (inner width);
- ``I`` identity: output = input, no parameters (a slot left empty);
- ``P`` projection: a dense layer from the current width to ``hidden`` (no residual, no
  LayerNorm); the slots above it run at that width. NAS-BERT's block adapters
  (``P(hidden=192)``); LV-BERT's own archs have none.

A setting left out means the size preset's value, so ``CCAFFACFFACCAFCFACFCAAFA`` (the
released LV-BERT-small) means what it always did. The written form puts settings in
parentheses after the letter: ``C(kernel=5) A(heads=2) F(ffn=512) I``; plain letters may
run together (``CCAF``). :func:`parse_arch` reads every notation (also the official
integer list, 0 = C, 1 = A, 2 = F, a JSON list and the named archs) and returns the
canonical string: the letters alone when no slot has settings, else one token per slot
separated by spaces. :func:`count_params` and :func:`count_macs` count exactly without
building a model (tests tie them to the PyTorch model).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from lvbert.errors import LvBertError

LAYER_TYPES = "CAF"  # LV-BERT's three layer types (its search space)
OP_TYPES = "CAFIP"  # every op type, identity and projection included
TYPE_NAMES = {"C": "dynamic convolution", "A": "self-attention", "F": "feed-forward", "I": "identity",
              "P": "projection (width change)"}  # fmt: skip
# Settings each op type takes, in their written order; None (left out) means the size preset's value.
SETTINGS = {"C": ("kernel", "heads"), "A": ("heads",), "F": ("ffn",), "I": (), "P": ("hidden",)}
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
    """Widths of an LV-BERT model (the paper's sizes are the official code's). Every field can be overridden."""

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
    # Paper sizes, exactly as the official code (hidden, heads, FFN, embedding, conv heads).
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

# Generator width for ELECTRA pre-training (the official recipe): hidden / 4.
GENERATOR_HIDDEN = {"small": 64, "medium": 128, "base": 256}


def get_size(name: str | SizeConfig, **overrides) -> SizeConfig:
    """Look up a size preset by name and apply field overrides.

    The name may carry its own overrides, for the command line: ``tiny(hidden_size=128,
    num_attention_heads=2, intermediate_size=512)``."""
    if isinstance(name, SizeConfig):
        size = name
    else:
        key, _, rest = str(name).strip().lower().partition("(")
        key = key.strip()
        if key not in SIZES:
            raise LvBertError(f"unknown size {name!r}; choose one of {', '.join(SIZES)} (optionally with fields: "
                              "tiny(hidden_size=128,intermediate_size=512))")  # fmt: skip
        size = SIZES[key]
        if rest:
            if not rest.rstrip().endswith(")"):
                raise LvBertError(f"unbalanced brackets in size {name!r}")
            given = {}
            for part in [p for p in rest.rstrip()[:-1].split(",") if p.strip()]:
                field, _, value = part.partition("=")
                try:
                    given[field.strip()] = int(value)
                except ValueError:
                    raise LvBertError(f"size field {part.strip()!r} in {name!r} needs an integer, e.g. hidden_size=128") from None
            size = size.replace(**given)
    return size.replace(**overrides) if overrides else size


# ----------------------------------------------------------------------------- ops and archs


@dataclass(frozen=True)
class Op:
    """One slot: a layer type (C, A, F, I or P) and its settings (None = the size preset's value)."""

    type: str
    kernel: int | None = None  # C: kernel size K (odd)
    heads: int | None = None  # C: conv heads N; A: attention heads
    ffn: int | None = None  # F: inner width
    hidden: int | None = None  # P: the width it projects to (required)

    def __post_init__(self) -> None:
        if self.type not in OP_TYPES:
            raise ArchError(f"unknown layer type {self.type!r}; use C, A, F, I or P")
        if self.type == "P" and self.hidden is None:
            raise ArchError("P (projection) needs its output width: write P(hidden=192)")
        for name in ("kernel", "heads", "ffn", "hidden"):
            v = getattr(self, name)
            if v is None:
                continue
            if name not in SETTINGS[self.type]:
                takes = ", ".join(SETTINGS[self.type]) or "no settings"
                raise ArchError(f"{self.type} does not take '{name}' ({self.type} takes {takes})")
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ArchError(f"{self.type}({name}=...) must be a positive integer, got {v!r}")
        if self.kernel is not None and self.kernel % 2 == 0:
            raise ArchError(f"C(kernel={self.kernel}): the kernel size must be odd ('same' padding)")

    @property
    def settings(self) -> dict[str, int]:
        """The settings given, in written order."""
        return {k: getattr(self, k) for k in SETTINGS[self.type] if getattr(self, k) is not None}

    def __str__(self) -> str:
        s = self.settings
        return self.type + ("(" + ",".join(f"{k}={v}" for k, v in s.items()) + ")" if s else "")

    @property
    def key(self) -> str:
        """A module name for this op (``C``, ``C_kernel5_heads2``): the supernet's slot entries."""
        return self.type + "".join(f"_{k}{v}" for k, v in self.settings.items())

    def resolve(self, size: "SizeConfig", width: int | None = None) -> "Op":
        """Every setting filled in from ``size``, checked against the slot's input ``width``
        (default the size's hidden size; it differs above a ``P`` slot)."""
        H = width or size.hidden_size
        if self.type == "C":
            op = Op("C", self.kernel or size.conv_kernel_size, self.heads or size.conv_heads)
        elif self.type == "A":
            op = Op("A", heads=self.heads or size.num_attention_heads)
        elif self.type == "F":
            op = Op("F", ffn=self.ffn or size.intermediate_size)
        else:
            return self  # I, P: nothing to fill in
        if op.heads is not None and H % op.heads:
            raise ArchError(f"{self}: hidden size {H} is not divisible by {op.heads} heads")
        return op

    def normalized(self, size: "SizeConfig", width: int | None = None) -> "Op":
        """The settings that equal ``size``'s values dropped (``C(kernel=9)`` at kernel 9 is ``C``)."""
        if self.type == "P":
            return self
        full = self.resolve(size, width)
        default = Op(self.type).resolve(size)
        keep = {k: v for k, v in full.settings.items() if getattr(default, k) != v}
        return Op(self.type, **keep)

    def to_json(self):
        return self.type if not self.settings else {"type": self.type, **self.settings}


class Arch(tuple):
    """An architecture: a tuple of :class:`Op`, bottom slot first.

    ``str(arch)`` is the canonical notation (letters alone when no slot has settings);
    an ``Arch`` equals its canonical string. Build one with :meth:`parse`.
    """

    def __new__(cls, ops: Iterable[Op] = ()):
        ops = tuple(ops)
        for op in ops:
            if not isinstance(op, Op):
                raise TypeError(f"an Arch holds Op objects, got {type(op).__name__}")
        return super().__new__(cls, ops)

    @classmethod
    def parse(cls, spec, num_slots: int | None = None) -> "Arch":
        """Read any notation (see :func:`parse_arch`)."""
        if isinstance(spec, Arch):
            arch = spec
        else:
            n = num_slots if num_slots is not None else DEFAULT_SLOTS
            arch = _parse(spec, n)
        if num_slots is not None and len(arch) != num_slots:
            raise ArchError(f"architecture {arch} has {len(arch)} slots but the model has {num_slots}")
        return arch

    @property
    def types(self) -> str:
        """The layer types, one letter per slot (``CCAF...``)."""
        return "".join(op.type for op in self)

    @property
    def has_settings(self) -> bool:
        return any(op.settings for op in self)

    def __str__(self) -> str:
        if not self.has_settings:
            return self.types
        return " ".join(str(op) for op in self)

    def __repr__(self) -> str:
        return f"Arch({str(self)!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return str(self) == other
        return tuple.__eq__(self, other)

    def __ne__(self, other) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(str(self))

    def __getitem__(self, i):
        got = tuple.__getitem__(self, i)
        return Arch(got) if isinstance(i, slice) else got

    def normalized(self, size: "SizeConfig") -> "Arch":
        """Settings equal to ``size``'s values dropped; checked against ``size``'s widths."""
        return Arch(op.normalized(size, w) for op, w in zip(self, self.widths(size)))

    def resolve(self, size: "SizeConfig") -> "Arch":
        """Every setting filled in from ``size``."""
        return Arch(op.resolve(size, w) for op, w in zip(self, self.widths(size)))

    def widths(self, size: "SizeConfig") -> list[int]:
        """The input width of every slot: the size's hidden size, changed by each ``P`` slot."""
        out, w = [], size.hidden_size
        for op in self:
            out.append(w)
            if op.type == "P":
                w = op.hidden
        return out

    def output_width(self, size: "SizeConfig") -> int:
        """The width of the last slot's output (what the heads read)."""
        w = size.hidden_size
        for op in self:
            if op.type == "P":
                w = op.hidden
        return w

    def counts(self) -> dict[str, int]:
        """Slots per type, ``{"C": .., "A": .., "F": ..}`` (and ``"I"`` when there are identity slots)."""
        out = {t: self.types.count(t) for t in LAYER_TYPES}
        for t in "IP":
            if t in self.types:
                out[t] = self.types.count(t)
        return out

    def to_json(self) -> list:
        """The JSON list form: ``["C", {"type": "A", "heads": 2}, "I"]``."""
        return [op.to_json() for op in self]


def parse_arch(spec, num_slots: int | None = None) -> str:
    """Read an architecture in any accepted notation and return the canonical string.

    Accepted: ``CCAF...`` (any case), with separators (``C-C-A``, ``C C A``, ``C,C,A``);
    slots with settings, ``C(kernel=5) A(heads=2) F(ffn=512) I``; the official integer list
    (``[0,0,1,2]`` as text or a Python sequence); a JSON list (``["C", {"type": "A",
    "heads": 2}]``); an :class:`Arch`; and the registered names (see :data:`NAMED_ARCHS`).
    ``num_slots`` sizes the named patterns (default 24) and, when given, is checked
    against the result.

    Raises :class:`ArchError` (a :class:`LvBertError`) naming the bad token and its position.
    """
    return str(Arch.parse(spec, num_slots))


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


@dataclass(frozen=True)
class NamedArch:
    """A registered architecture name. ``build(num_slots, arg)`` returns the type string; ``arg`` is the
    text after ``name:`` ("" when none). ``example`` is a spec of the name that the registry test builds."""

    help: str
    build: Callable[[int, str], str]
    aliases: tuple[str, ...] = ()
    example: str = ""


def _no_arg(name: str, build: Callable[[int], str]) -> Callable[[int, str], str]:
    def with_arg(n: int, arg: str) -> str:
        if arg:
            raise ArchError(f"'{name}' takes no argument")
        return build(n)

    return with_arg


def _random_named(n: int, arg: str) -> str:
    if not arg:
        raise ArchError("'random' needs a seed: write random:SEED, e.g. random:0")
    return random_arch(_int_arg(arg, "random:SEED"), n)


# The one registry of architecture names (``lvbert arch info NAME``, ``--arch NAME``, every arch option).
NAMED_ARCHS: dict[str, NamedArch] = {
    "lv-bert-small": NamedArch("the released LV-BERT-small list (24 slots)",
                               _no_arg("lv-bert-small", lambda n: LV_BERT_SMALL), aliases=("lvbert-small",)),
    "bert": NamedArch("AF x n/2 (BERT / ELECTRA interleaving)", _no_arg("bert", _bert), aliases=("electra",)),
    "dynamicconv": NamedArch("CF x n/2 (DynamicConv-style)", _no_arg("dynamicconv", _dynamicconv)),
    "sandwich": NamedArch("A^k (AF)^(n/2-k) F^k; 'sandwich:K' sets k (default pairs/4: 3 for 24 slots)",
                          lambda n, arg: sandwich(n, _int_arg(arg, "sandwich:K") if arg else None),
                          example="sandwich:2"),
    "random": NamedArch("'random:SEED': uniform over C/A/F at every slot, reproducible", _random_named,
                        example="random:0"),
}
_BY_NAME = {alias: entry for name, entry in NAMED_ARCHS.items() for alias in (name, *entry.aliases)}
_SEPARATORS = re.compile(r"[\s,\-_/|]+")
_SETTING = re.compile(r"^\s*([a-z_]+)\s*=\s*([0-9]+)\s*$")


def _parse(spec, n: int) -> Arch:
    if isinstance(spec, (list, tuple)):
        return _from_items(list(spec), original=str(list(spec)))
    text = str(spec).strip()
    if not text:
        raise ArchError("empty architecture; give e.g. CCAFFACFFACCAFCFACFCAAFA, bert or lv-bert-small")
    named = _from_name(text, n)
    if named is not None:
        return Arch(Op(t) for t in named)
    if text[0] in "[(" or text[-1] == "]":  # a list; "C(kernel=5)" ends with ")" but starts with a letter
        if not ((text[0] == "[" and text[-1] == "]") or (text[0] == "(" and text[-1] == ")")):
            raise ArchError(f"unbalanced brackets in architecture {text!r}")
        if text[0] == "[":
            try:
                items = json.loads(text)
            except ValueError:
                items = None
            if isinstance(items, list):
                return _from_items(items, original=text)
        tokens = [t for t in re.split(r"[\s,]+", text[1:-1].strip()) if t]
        return _from_items(tokens, original=text)
    return _from_text(text)


def _from_name(text: str, n: int) -> str | None:
    name, _, arg = text.lower().partition(":")
    entry = _BY_NAME.get(name)
    return None if entry is None else entry.build(n, arg)


def _int_arg(arg: str, usage: str) -> int:
    try:
        return int(arg)
    except ValueError:
        raise ArchError(f"{usage} needs an integer, got {arg!r}") from None


def _op_with(letter: str, settings_text: str | None, slot: int, original: str) -> Op:
    t = letter.upper()
    if settings_text is None:
        return Op(t)
    values = {}
    for part in [p for p in settings_text.split(",") if p.strip()]:
        m = _SETTING.match(part.lower())
        if not m:
            raise ArchError(f"cannot read setting {part.strip()!r} of slot {slot} in {original!r}; write e.g. C(kernel=5)")
        key, value = m.group(1), int(m.group(2))
        if key not in SETTINGS[t]:
            takes = ", ".join(SETTINGS[t]) or "no settings"
            raise ArchError(f"unknown setting {key!r} of {t} at slot {slot} in {original!r}; {t} takes {takes}")
        if key in values:
            raise ArchError(f"setting {key!r} given twice at slot {slot} in {original!r}")
        values[key] = value
    try:
        return Op(t, **values)
    except ArchError as e:
        raise ArchError(f"slot {slot} in {original!r}: {e}") from None


def _from_text(text: str) -> Arch:
    """Letters (with separators) and ``X(key=value,...)`` tokens; positions count slots from 1."""
    ops, i, slot = [], 0, 0
    while i < len(text):
        ch = text[i]
        if _SEPARATORS.fullmatch(ch):
            i += 1
            continue
        slot += 1
        if ch.upper() not in OP_TYPES:
            raise ArchError(
                f"unknown layer type {ch!r} at position {slot} in {text!r}; use C (convolution), A (attention), "
                f"F (feed-forward), I (identity), P(hidden=W) (projection), 0/1/2 in a [..] list, or a name ({', '.join(NAMED_ARCHS)})"
            )
        j = i + 1
        while j < len(text) and text[j] == " ":
            j += 1
        settings = None
        if j < len(text) and text[j] == "(":
            end = text.find(")", j)
            if end < 0:
                raise ArchError(f"unbalanced brackets after {ch!r} at position {slot} in {text!r}")
            settings, i = text[j + 1 : end], end + 1
        else:
            i += 1
        ops.append(_op_with(ch, settings, slot, text))
    if not ops:
        raise ArchError(f"empty architecture {text!r}")
    return Arch(ops)


def _from_items(items: list, original: str) -> Arch:
    if not items:
        raise ArchError(f"empty architecture list {original!r}")
    ops = []
    for i, item in enumerate(items, 1):
        if isinstance(item, Op):
            ops.append(item)
            continue
        if isinstance(item, dict):
            d = {str(k).lower(): v for k, v in item.items()}
            t = str(d.pop("type", "")).upper()
            if t not in OP_TYPES:
                raise ArchError(f"unknown layer type {t!r} at position {i} in {original!r}; use C, A, F, I or P")
            try:
                ops.append(Op(t, **d))
            except TypeError:
                raise ArchError(f"unknown setting(s) {sorted(d)} at position {i} in {original!r}; "
                                f"{t} takes {', '.join(SETTINGS[t]) or 'no settings'}") from None  # fmt: skip
            except ArchError as e:
                raise ArchError(f"position {i} in {original!r}: {e}") from None
            continue
        tok = str(item).strip().strip("'\"")
        if tok in ("0", "1", "2") and not isinstance(item, bool):
            ops.append(Op(CODE_TO_TYPE[int(tok)]))
        elif tok and tok[0].upper() in OP_TYPES and (len(tok) == 1 or tok[1:].lstrip().startswith("(")):
            sub = _from_text(tok)
            ops.append(sub[0])
        else:
            raise ArchError(
                f"unknown layer code {str(item)!r} at position {i} in {original!r}; use 0 (convolution), 1 (attention), "
                "2 (feed-forward) or C, A, F, I"
            )
    return Arch(ops)


def _ops(arch) -> Arch:
    return arch if isinstance(arch, Arch) else Arch.parse(arch)


def _op(x) -> Op:
    if isinstance(x, Op):
        return x
    if isinstance(x, str) and len(x) == 1 and x.upper() in OP_TYPES:
        return Op(x.upper())
    ops = Arch.parse(x)
    if len(ops) != 1:
        raise ArchError(f"{x!r} is not one op")
    return ops[0]


def to_codes(arch) -> list[int] | None:
    """Canonical arch -> the official integer list (None when a slot is ``I`` or has settings)."""
    arch = _ops(arch)
    if arch.has_settings or "I" in arch.types:
        return None
    return [TYPE_TO_CODE[t] for t in arch.types]


def type_counts(arch) -> dict[str, int]:
    return _ops(arch).counts()


def attention_slots(arch) -> list[int]:
    """The slot index of each A slot: ``outputs.attentions[k]`` belongs to slot ``attention_slots(arch)[k]``."""
    return [i for i, op in enumerate(_ops(arch)) if op.type == "A"]


def pairs(arch) -> list[str]:
    """Slots grouped in pairs as the official code does (``layer_i`` = slots 2i, 2i+1)."""
    arch = _ops(arch)
    tokens = [str(op) for op in arch]
    sep = "" if not arch.has_settings else " "
    return [sep.join(tokens[i : i + 2]) for i in range(0, len(tokens), 2)]


# ----------------------------------------------------------------------------- counting


def sublayer_params(op, size: SizeConfig, width: int | None = None) -> int:
    """Exact parameters of one sub-layer (an :class:`Op` or a type letter), LayerNorm included,
    at input ``width`` (default the size's hidden size).

    At the small size: C 275,236, A 263,680, F 526,080 (the official code's counts)."""
    op = _op(op).resolve(size, width)
    H = width or size.hidden_size
    if op.type == "P":
        return H * op.hidden + op.hidden
    dense = H * H + H
    ln = 2 * H
    if op.type == "A":
        return 4 * dense + ln  # Q, K, V, output (the head count does not change the weights)
    if op.type == "F":
        return (H * op.ffn + op.ffn) + (op.ffn * H + H) + ln
    if op.type == "C":
        K, N = op.kernel, op.heads
        gate = 2 * dense  # linear + gate
        depthwise = K * H  # no bias
        pointwise = dense
        kernel_gen = H * N * K + N * K
        return gate + depthwise + pointwise + kernel_gen + dense + ln
    return 0  # I


def embedding_params(size: SizeConfig) -> int:
    E, H = size.embedding_size, size.hidden_size
    n = (size.vocab_size + size.max_position_embeddings + size.type_vocab_size) * E + 2 * E
    if E != H:
        n += E * H + H
    return n


def mlm_head_params(size: SizeConfig, width: int | None = None) -> int:
    """Dense H->E, GELU, LayerNorm(E), decoder tied to the word embeddings, plus the vocabulary bias
    (H = ``width``, the encoder's output width, default the size's hidden size)."""
    E, H = size.embedding_size, width or size.hidden_size
    return H * E + E + 2 * E + size.vocab_size


def count_params(arch, size: SizeConfig, head: str | None = None) -> int:
    """Parameters of the backbone (embeddings + encoder); ``head='mlm'`` adds the MLM head."""
    ops = _ops(arch) if len(arch) else Arch()
    n = embedding_params(size) + sum(sublayer_params(op, size, w) for op, w in zip(ops, ops.widths(size)))
    if head == "mlm":
        n += mlm_head_params(size, ops.output_width(size))
    elif head is not None:
        raise ValueError(f"unknown head {head!r}")
    return n


def sublayer_macs(op, size: SizeConfig, seq_len: int, width: int | None = None) -> int:
    """Multiply-accumulates per token of one sub-layer at sequence length ``seq_len`` and input ``width``."""
    op = _op(op).resolve(size, width)
    H = width or size.hidden_size
    if op.type == "P":
        return H * op.hidden
    if op.type == "A":
        return 4 * H * H + 2 * seq_len * H  # projections + scores + weighted sum
    if op.type == "F":
        return 2 * H * op.ffn
    if op.type == "C":
        K, N = op.kernel, op.heads
        return 4 * H * H + 2 * K * H + N * K * H  # gate+linear, pointwise, output; depthwise, dynamic conv; kernel generator
    return 0  # I


def count_macs(arch, size: SizeConfig, seq_len: int = 128, include_embedding: bool = True) -> int:
    """Multiply-accumulates per token of the backbone (encoder, plus the E->H projection)."""
    ops = _ops(arch) if len(arch) else Arch()
    n = sum(sublayer_macs(op, size, seq_len, w) for op, w in zip(ops, ops.widths(size)))
    if include_embedding and size.embedding_size != size.hidden_size:
        n += size.embedding_size * size.hidden_size
    return n


def arch_info(arch_spec, size: str | SizeConfig = "small", seq_len: int = 128) -> dict:
    """Everything ``lvbert arch info`` prints, as a JSON-able dict."""
    size_cfg = get_size(size)
    arch = Arch.parse(arch_spec, num_slots=None if is_literal_arch(arch_spec) else size_cfg.num_slots)
    if len(arch) != size_cfg.num_slots:
        size_cfg = size_cfg.replace(num_slots=len(arch))
    if seq_len <= 0:
        raise LvBertError(f"--seq-len must be positive, got {seq_len}")
    arch = arch.normalized(size_cfg)  # also checks heads against the hidden size
    return {
        "arch": str(arch),
        "codes": to_codes(arch),
        "slots": [op.to_json() for op in arch.resolve(size_cfg)],
        "size": size if isinstance(size, str) else "custom",
        "num_slots": len(arch),
        "counts": arch.counts(),
        "type_names": {t: TYPE_NAMES[t] for t in arch.counts()},
        "params": count_params(arch, size_cfg),
        "params_with_mlm_head": count_params(arch, size_cfg, head="mlm"),
        "seq_len": seq_len,
        "macs_per_token": count_macs(arch, size_cfg, seq_len),
        "size_config": size_cfg.to_dict(),
    }


def is_literal_arch(spec) -> bool:
    """True when ``spec`` spells out its slots (so its length decides the slot count)."""
    if not isinstance(spec, str):
        return True
    return spec.strip().lower().partition(":")[0] not in _BY_NAME


def strip_diagram(arch) -> str:
    """A one-line text picture grouped by pair: ``CC AF FA ...`` (``C(kernel=5) A | F I`` with settings)."""
    arch = _ops(arch)
    return (" | " if arch.has_settings else " ").join(pairs(arch))
