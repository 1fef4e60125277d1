"""The NAS-BERT search space on LV-BERT's notation (plain Python, no torch).

A model is ``num_blocks`` blocks of ``slots_per_block`` slots. Each block has one width from
``widths``; each slot holds an op at that width: ``A`` (heads = width / head_dim), ``F`` (inner
width = ffn_ratio x width), ``C<k>`` (LV-BERT's dynamic convolution with kernel k, conv heads =
width / head_dim) or ``I`` (identity). Identities come only at the end of a block (NAS-BERT's
rule, which removes equivalent orders) and a block keeps at least one op. A block candidate is
written ``w128:C3,A,F,I``.

The full arch of one candidate per block, in LV-BERT's notation, is
``P(hidden=w1) <block 1> P(hidden=w2) <block 2> ...``: a projection from the embedding width
into every block (the block-wise training's adapters, merged), so a chosen model is exactly the
chain of its trained blocks. Its size config has hidden size = embedding size = the teacher's
embedding width (the embeddings are the teacher's).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from lvbert.arch import Arch, Op, SizeConfig, count_params, sublayer_params
from lvbert.errors import LvBertError


@dataclass(frozen=True)
class NasSpace:
    """Every number of the space is a setting (``SPACES`` holds the presets)."""

    num_blocks: int = 4
    slots_per_block: int = 6
    widths: tuple[int, ...] = (128, 192, 256, 384, 512)
    kernels: tuple[int, ...] = (3, 5, 7)
    head_dim: int = 64  # A heads and C conv heads = width / head_dim (NAS-BERT's table: 2 heads at 128)
    ffn_ratio: int = 4  # F inner width = ffn_ratio x width
    op_types: str = "CAF"  # which op types a slot may hold (C means every kernel of ``kernels``)
    identity: bool = True

    def __post_init__(self) -> None:
        for name in ("num_blocks", "slots_per_block", "head_dim", "ffn_ratio"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise LvBertError(f"NAS space: {name} must be a positive integer, got {v!r}")
        if not self.widths or any(not isinstance(w, int) or w <= 0 for w in self.widths):
            raise LvBertError(f"NAS space: widths must be positive integers, got {self.widths!r}")
        bad = [w for w in self.widths if w % self.head_dim]
        if bad:
            raise LvBertError(f"NAS space: width(s) {bad} are not multiples of head_dim {self.head_dim}; "
                              "heads are width / head_dim")  # fmt: skip
        if "C" in self.op_types and (not self.kernels or any(k <= 0 or k % 2 == 0 for k in self.kernels)):
            raise LvBertError(f"NAS space: kernels must be positive odd integers, got {self.kernels!r}")
        if not self.op_types or set(self.op_types) - set("CAF"):
            raise LvBertError(f"NAS space: op_types takes letters of CAF, got {self.op_types!r}")

    @property
    def op_tokens(self) -> list[str]:
        """The non-identity ops of a slot: ``C3 C5 C7 A F`` (C once per kernel)."""
        out = []
        for t in "CAF":
            if t in self.op_types:
                out += [f"C{k}" for k in self.kernels] if t == "C" else [t]
        return out

    def op(self, token: str, width: int) -> Op:
        """The :class:`Op` of ``token`` at ``width`` (every setting written out)."""
        heads = width // self.head_dim
        if token == "I":
            return Op("I")
        if token == "A":
            return Op("A", heads=heads)
        if token == "F":
            return Op("F", ffn=self.ffn_ratio * width)
        if token.startswith("C"):
            return Op("C", kernel=int(token[1:]), heads=heads)
        raise LvBertError(f"unknown NAS op {token!r}; use {', '.join(self.op_tokens)} or I")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "NasSpace":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})

    # ------------------------------------------------------------------ block candidates

    def block_candidates(self) -> list["Block"]:
        """Every block candidate, in a fixed order (width, then ops): the same list every time."""
        out = []
        tokens = self.op_tokens
        for w in self.widths:
            lengths = range(1, self.slots_per_block + 1) if self.identity else (self.slots_per_block,)
            for n in lengths:
                for ops in itertools.product(tokens, repeat=n):
                    out.append(Block(w, tuple(ops) + ("I",) * (self.slots_per_block - n)))
        return out

    def block_ops(self, block: "Block") -> list[Op]:
        return [self.op(t, block.width) for t in block.ops]

    def block_params(self, block: "Block", size: SizeConfig) -> int:
        """Parameters of a block's slots (its input projection is counted by :meth:`arch_params`)."""
        return sum(sublayer_params(op, size, block.width) for op in self.block_ops(block))

    # ------------------------------------------------------------------ full archs

    def arch(self, blocks: list["Block"] | tuple["Block", ...]) -> Arch:
        """The LV-BERT arch of one candidate per block: ``P(hidden=w1) <block 1> P(hidden=w2) ...``."""
        if len(blocks) != self.num_blocks:
            raise LvBertError(f"a NAS arch needs {self.num_blocks} blocks, got {len(blocks)}")
        ops = []
        for b in blocks:
            ops.append(Op("P", hidden=b.width))
            ops += self.block_ops(b)
        return Arch(ops)

    def arch_params(self, blocks, size: SizeConfig, head: str | None = None) -> int:
        """Exact parameters of :meth:`arch` (:func:`lvbert.arch.count_params`, projections included)."""
        return count_params(self.arch(blocks), size, head)

    def student_size(self, embedding_size: int, vocab_size: int, max_positions: int, type_vocab_size: int = 2) -> SizeConfig:
        """The size config of every NAS arch: hidden = embedding width (the first ``P`` leaves it)."""
        heads = 1
        return SizeConfig(hidden_size=embedding_size, num_attention_heads=heads, intermediate_size=4 * embedding_size,
                          embedding_size=embedding_size, conv_heads=heads, conv_kernel_size=max(self.kernels),
                          vocab_size=vocab_size, max_position_embeddings=max_positions,
                          type_vocab_size=type_vocab_size, num_slots=self.num_blocks * (self.slots_per_block + 1))  # fmt: skip


@dataclass(frozen=True, order=True)
class Block:
    """One block candidate: a width and one op token per slot (``C3``, ``A``, ``F``, ``I``)."""

    width: int
    ops: tuple[str, ...]

    def __str__(self) -> str:
        return f"w{self.width}:" + ",".join(self.ops)

    @classmethod
    def parse(cls, text: str) -> "Block":
        head, _, ops = str(text).partition(":")
        if not head.startswith("w") or not ops:
            raise LvBertError(f"cannot read block candidate {text!r}; write e.g. w128:C3,A,F,I")
        try:
            return cls(int(head[1:]), tuple(o.strip() for o in ops.split(",")))
        except ValueError:
            raise LvBertError(f"cannot read the width of block candidate {text!r}; write e.g. w128:C3,A,F,I") from None


SPACES: dict[str, NasSpace] = {
    # NAS-BERT's space (Xu et al. 2021): 4 blocks of 6, widths 128-512, heads width/64, FFN 4x, kernels 3/5/7.
    "small": NasSpace(),
    # For tests and the quickstart: 4 blocks of 3 at widths 32/64, kernels 3/5 (168 candidates per block).
    "tiny": NasSpace(num_blocks=4, slots_per_block=3, widths=(32, 64), kernels=(3, 5), head_dim=16),
}


def get_space(name: str, **overrides) -> NasSpace:
    key = str(name).strip().lower()
    if key not in SPACES:
        raise LvBertError(f"unknown NAS space size {name!r}; choose one of {', '.join(SPACES)}")
    space = SPACES[key]
    return dataclasses.replace(space, **{k: v for k, v in overrides.items() if v is not None}) if overrides else space
