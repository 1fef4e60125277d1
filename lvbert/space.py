"""The search space over the ops of each slot -- plain Python, no torch.

A :class:`SearchSpace` says which architectures a supernet holds and a search may return:
the number of slots, the ops allowed at each slot (layer types ``CAF`` as in LV-BERT, or ops
with settings such as ``C(kernel=3) C(kernel=5) A F I``), and optional constraints (maximum
parameters, multiply-accumulates per token or predicted latency, minimum/maximum count of
each layer type). It samples, mutates and crosses over archs, checks them, and counts them --
all without building a model, and always with a ``random.Random`` passed in by the caller
(nothing here touches the global random state). Archs are canonical strings
(:func:`lvbert.arch.parse_arch`): ``CCAF...`` for layer types.

Every cost here (parameters, MACs, table latency) is a sum over slots of a per-op cost, so it
depends only on how many slots hold each distinct op: the *count vector*. With the three
types of LV-BERT's 24-slot space there are at most 325 count vectors, with four ops 2,925;
enumerating them gives exact answers to "is any arch feasible", "what is the cheapest arch"
and "how many archs satisfy the constraints" (:meth:`SearchSpace.check_feasible`,
:meth:`SearchSpace.num_feasible`). When a space has too many distinct ops for that
(more than :data:`MAX_COUNT_VECTORS` vectors), feasibility is checked per constraint exactly
(the cheapest arch of one cost is the cheapest op of every slot) and jointly by sampling, and
the number of feasible archs is estimated by sampling (:attr:`SearchSpace.exact` says which).
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Iterator, Sequence

from lvbert.arch import (OP_TYPES, Arch, ArchError, Op, SizeConfig, count_macs, count_params, get_size, parse_arch, sublayer_macs,
                         sublayer_params)
from lvbert.errors import LvBertError
from lvbert.utils import human

DEFAULT_MAX_TRIES = 10_000
MAX_COUNT_VECTORS = 20_000  # above this, feasibility and counting fall back to sampling
ESTIMATE_DRAWS = 20_000  # draws behind a sampled estimate of the feasible share
_COST_NAMES = {"params": "max_params", "macs": "max_macs", "latency": "max_latency"}
_TYPE_ORDER = {t: i for i, t in enumerate(OP_TYPES)}


def _op_order(op: Op) -> tuple:
    return (_TYPE_ORDER[op.type], tuple(sorted(op.settings.items())))


def normalize_choices(allowed, num_slots: int, size: SizeConfig | None = None) -> list[Arch]:
    """The ops allowed at each slot, canonical: one :class:`Arch` of distinct ops per slot, ordered C, A, F, I.

    ``allowed`` is one string for every slot (``"CAF"``, ``"AF"``, ``"C(kernel=3) C A I"``) or a
    list with one per slot. With ``size``, settings equal to its values are dropped, so
    ``C(kernel=9)`` at kernel 9 is ``C``.
    """
    per_slot = [allowed] * num_slots if isinstance(allowed, (str, Arch)) else list(allowed)
    if len(per_slot) != num_slots:
        raise LvBertError(f"allowed lists {len(per_slot)} slots but the space has {num_slots}")
    out = []
    for i, ok in enumerate(per_slot):
        text = str(ok).replace(",", " ") if not isinstance(ok, Arch) else ok
        try:
            ops = Arch.parse(text) if str(text).strip() else Arch()
        except ArchError as e:
            raise LvBertError(f"allowed ops at slot {i} must be among C, A, F, I (with settings), got {ok!r}: {e}") from None
        if not ops:
            raise LvBertError(f"allowed ops at slot {i} must not be empty, got {ok!r}")
        if "P" in ops.types:
            raise LvBertError(f"allowed ops at slot {i}: P (a width change) is not a choice of LV-BERT's space; "
                              "searching widths is NAS-BERT's (lvbert nas --help)")  # fmt: skip
        if size is not None:
            ops = ops.normalized(size)
        out.append(Arch(sorted(set(ops), key=_op_order)))
    return out


def _tokens(arch: str) -> list[str]:
    """An arch string as one op token per slot (letters, or space-separated tokens with settings)."""
    return arch.split(" ") if (" " in arch or "(" in arch) else list(arch)


def _join(tokens: Sequence[str]) -> str:
    """Tokens back to the canonical string (letters run together when no slot has settings)."""
    return "".join(tokens) if all(len(t) == 1 for t in tokens) else " ".join(tokens)


class SearchSpace:
    """Archs of ``num_slots`` slots, each slot one of its allowed ops, under constraints.

    Args:
        num_slots: number of sub-layer slots (default: ``size.num_slots``, 24 for the paper's sizes).
        allowed: ops allowed at every slot (``"CAF"``, ``"AF"``, ``"C(kernel=3) C A I"``) or one string per slot.
        max_params: backbone parameter budget (embeddings + encoder, as :func:`lvbert.arch.count_params`).
        max_macs: budget of encoder multiply-accumulates per token at ``seq_len``.
        max_latency: budget of predicted latency, in the unit of ``latency`` (milliseconds from
            :class:`lvbert.search.latency.LatencyTable`).
        latency: per-op latency table ``{"C": ms, "A": ms, "F": ms, "embeddings": ms}`` (ops with
            settings by their key, e.g. ``"C_kernel5"``; ``I`` costs 0); an arch's predicted latency is
            ``embeddings + sum over slots``. Needed by ``max_latency``.
        min_counts / max_counts: bounds on the number of slots of each layer type, e.g. ``{"A": 4}``.
        size: model widths (a :class:`SizeConfig` or a preset name) used for counting.
        seq_len: sequence length at which MACs per token are counted.
        max_tries: draws before :meth:`sample` gives up on rejection sampling.
    """

    def __init__(
        self,
        num_slots: int | None = None,
        allowed: str | Sequence[str] = "CAF",
        max_params: int | None = None,
        max_macs: int | None = None,
        min_counts: dict[str, int] | None = None,
        max_counts: dict[str, int] | None = None,
        size: SizeConfig | str = "small",
        seq_len: int = 128,
        max_latency: float | None = None,
        latency: dict[str, float] | None = None,
        max_tries: int = DEFAULT_MAX_TRIES,
    ) -> None:
        self.size_config = get_size(size)
        self.num_slots = int(num_slots if num_slots is not None else self.size_config.num_slots)
        if self.num_slots <= 0:
            raise LvBertError(f"num_slots must be positive, got {num_slots}")
        self.choices = normalize_choices(allowed, self.num_slots, self.size_config)
        self.allowed = [str(c) for c in self.choices]  # canonical per-slot strings ("CAF" for layer types)
        self._slot_tokens = [[str(op) for op in c] for c in self.choices]
        self.ops: list[Op] = sorted({op for c in self.choices for op in c}, key=_op_order)  # distinct ops of the space
        self._index = {str(op): j for j, op in enumerate(self.ops)}
        self.min_counts = _normalise_counts(min_counts, "min_counts")
        self.max_counts = _normalise_counts(max_counts, "max_counts")
        self.max_params = _positive_or_none(max_params, "max_params")
        self.max_macs = _positive_or_none(max_macs, "max_macs")
        self.max_latency = _positive_or_none(max_latency, "max_latency", integer=False)
        self.latency = _normalise_latency(latency, self.ops)
        if self.max_latency is not None and self.latency is None:
            raise LvBertError("max_latency needs a latency table (per-op milliseconds); measure one with LatencyTable")
        if int(seq_len) <= 0:
            raise LvBertError(f"seq_len must be positive, got {seq_len}")
        self.seq_len = int(seq_len)
        if int(max_tries) <= 0:
            raise LvBertError(f"max_tries must be positive, got {max_tries}")
        self.max_tries = int(max_tries)
        # Per-op costs: the cost of an arch is base + sum of its slots' costs.
        s = self.size_config
        try:
            self._cost = {
                "params": ([sublayer_params(op, s) for op in self.ops], count_params("", s)),
                "macs": ([sublayer_macs(op, s, self.seq_len) for op in self.ops], count_macs("", s, self.seq_len)),
            }
        except ArchError as e:
            raise LvBertError(f"an allowed op does not fit size hidden {s.hidden_size}: {e}") from None
        if self.latency is not None:
            self._cost["latency"] = ([self.latency[_latency_key(op)] for op in self.ops], self.latency["embeddings"])
        k = len(self.ops)
        self.exact = math.comb(self.num_slots + k - 1, k - 1) <= MAX_COUNT_VECTORS
        self._ways_memo: dict[tuple, int] = {}
        self._estimate: float | None = None

    # ------------------------------------------------------------------ counting

    @property
    def has_constraints(self) -> bool:
        limits = (self.max_params, self.max_macs, self.max_latency)
        return any(v is not None for v in limits) or bool(self.min_counts) or bool(self.max_counts)

    def size(self, constrained: bool = False) -> int:
        """Number of archs: the product of the per-slot choices (3^24 = 282,429,536,481 for 24 free slots).

        ``constrained=True`` counts the archs that satisfy every constraint (exactly, or estimated
        by sampling when the space is not :attr:`exact`).
        """
        if constrained:
            return self.num_feasible()
        n = 1
        for c in self.choices:
            n *= len(c)
        return n

    def params(self, arch: str) -> int:
        """Backbone parameters (embeddings + encoder) of ``arch`` at this space's size."""
        return self._cost_of("params", self._vector(arch))

    def macs(self, arch: str) -> int:
        """Encoder multiply-accumulates per token of ``arch`` at ``seq_len``."""
        return self._cost_of("macs", self._vector(arch))

    def predicted_latency(self, arch: str) -> float | None:
        """Latency predicted by the table (embeddings + sum of slots), or None without a table."""
        return None if self.latency is None else self._cost_of("latency", self._vector(arch))

    def costs(self, arch: str) -> dict:
        """``params``, ``macs_per_token`` (and ``latency`` when there is a table) of ``arch``."""
        out = {"params": self.params(arch), "macs_per_token": self.macs(arch)}
        if self.latency is not None:
            out["latency"] = self.predicted_latency(arch)
        return out

    def _vector(self, arch: str) -> tuple[int, ...]:
        v = [0] * len(self.ops)
        for tok in _tokens(arch):
            v[self._index[tok]] += 1
        return tuple(v)

    def _type_counts(self, v: Sequence[int]) -> dict[str, int]:
        out = {t: 0 for t in OP_TYPES}
        for n, op in zip(v, self.ops):
            out[op.type] += n
        return out

    # ------------------------------------------------------------------ membership

    def violations(self, arch: str) -> list[str]:
        """Every reason ``arch`` is not in the space, as short sentences (empty when it is)."""
        if not isinstance(arch, str):
            return [f"an arch is a string of layer types, got {type(arch).__name__}"]
        tokens = _tokens(arch)
        if len(tokens) != self.num_slots:
            return [f"{len(tokens)} slots, the space has {self.num_slots}"]
        out = []
        for i, (t, ok) in enumerate(zip(tokens, self._slot_tokens)):
            if t not in ok:
                out.append(f"slot {i} is {t!r}, allowed there: {self.allowed[i]}")
        if out:
            return out
        v = self._vector(arch)
        counts = self._type_counts(v)
        for t in OP_TYPES:
            n = counts[t]
            if t in self.min_counts and n < self.min_counts[t]:
                out.append(f"{n} x {t}, at least {self.min_counts[t]} required")
            if t in self.max_counts and n > self.max_counts[t]:
                out.append(f"{n} x {t}, at most {self.max_counts[t]} allowed")
        for key, limit in self._limits():
            value = self._cost_of(key, v)
            if value > limit:
                out.append(f"{_fmt_cost(key, value)} {_unit(key)} > {_COST_NAMES[key]} {_fmt_cost(key, limit)}")
        return out

    def contains(self, arch: str) -> bool:
        """True when ``arch`` has the right slots, allowed ops, and satisfies every constraint."""
        return not self.violations(arch)

    def __contains__(self, arch: str) -> bool:
        return self.contains(arch)

    # ------------------------------------------------------------------ sampling and variation

    def _draw(self, rng: random.Random) -> str:
        return _join([rng.choice(ok) for ok in self._slot_tokens])

    def sample(self, rng: random.Random) -> str:
        """An arch with each slot uniform over its allowed ops, re-drawn until it meets the constraints.

        Rejection sampling gives the uniform distribution over the constrained space; after
        ``max_tries`` draws it raises :class:`LvBertError` with the share of feasible archs.
        """
        for _ in range(self.max_tries if self.has_constraints else 1):
            arch = self._draw(rng)
            if not self.has_constraints or self.contains(arch):
                return arch
        self.check_feasible()  # a clear error if nothing is feasible at all
        share = self.num_feasible() / self.size()
        raise LvBertError(
            f"no arch met the constraints in {self.max_tries:,} uniform draws (only {share:.3g} of the space "
            f"is feasible); loosen max_params/max_macs/max_latency or the type counts, or raise max_tries"
        )

    def mutate(self, arch: str, rng: random.Random, prob: float) -> str:
        """Re-draw each slot uniformly from its allowed ops with probability ``prob`` (SPOS).

        A re-drawn slot may keep its op; the result is not checked against the constraints.
        """
        if not 0.0 <= prob <= 1.0:
            raise LvBertError(f"mutation probability must be in [0, 1], got {prob}")
        tokens = self._check_shape(arch)
        # One rng.random() per slot, so the stream does not depend on which slots mutate.
        return _join([rng.choice(ok) if rng.random() < prob else t for t, ok in zip(tokens, self._slot_tokens)])

    def crossover(self, a: str, b: str, rng: random.Random) -> str:
        """Uniform crossover: each slot taken from ``a`` or ``b`` with probability 1/2."""
        ta, tb = self._check_shape(a), self._check_shape(b)
        return _join([x if rng.random() < 0.5 else y for x, y in zip(ta, tb)])

    def _check_shape(self, arch: str) -> list[str]:
        tokens = _tokens(arch) if isinstance(arch, str) else None
        if tokens is None or len(tokens) != self.num_slots:
            raise LvBertError(f"arch {arch!r} does not have {self.num_slots} slots")
        return tokens

    # ------------------------------------------------------------------ feasibility

    def count_vectors(self) -> Iterator[tuple[int, ...]]:
        """Every count vector (slots per op of :attr:`ops`) summing to ``num_slots`` that some arch reaches."""
        self._need_exact("count_vectors")
        n, k = self.num_slots, len(self.ops)
        for cut in itertools.combinations(range(n + k - 1), k - 1):  # stars and bars
            bounds = (-1, *cut, n + k - 1)
            v = tuple(bounds[j + 1] - bounds[j] - 1 for j in range(k))
            if self._ways(0, v) > 0:
                yield v

    def _counts_ok(self, v: Sequence[int]) -> bool:
        counts = self._type_counts(v)
        return all(self.min_counts.get(t, 0) <= counts[t] <= self.max_counts.get(t, self.num_slots) for t in OP_TYPES)

    def _costs_ok(self, v: Sequence[int]) -> bool:
        return all(self._cost_of(key, v) <= limit for key, limit in self._limits())

    def feasible_count_vectors(self) -> list[tuple[int, ...]]:
        """Count vectors of the archs that satisfy every constraint (exact spaces only)."""
        return [v for v in self.count_vectors() if self._counts_ok(v) and self._costs_ok(v)]

    def num_feasible(self) -> int:
        """Number of archs that satisfy every constraint: exact, or a sampling estimate when not :attr:`exact`."""
        if self.exact:
            return sum(self._ways(0, v) for v in self.feasible_count_vectors())
        return round(self._feasible_share() * self.size())

    def _feasible_share(self) -> float:
        if not self.has_constraints:
            return 1.0
        if self._estimate is None:
            rng = random.Random(0)
            self._estimate = sum(self.contains(self._draw(rng)) for _ in range(ESTIMATE_DRAWS)) / ESTIMATE_DRAWS
        return self._estimate

    def check_feasible(self) -> int:
        """Raise :class:`LvBertError` saying why no arch can meet the constraints; else return how many do.

        Exact on exact spaces: it looks at every reachable count vector, so it finds e.g. a
        ``max_params`` below the cheapest arch, minimum counts summing over ``num_slots``, a count
        bound that the per-slot allowed ops cannot meet, or two limits that cannot hold together.
        Otherwise each limit is checked exactly against the cheapest op of every slot and the
        constraints together by sampling (an error when ``max_tries`` draws find no feasible arch).
        """
        n = self.num_slots
        for t in OP_TYPES:
            slots = sum(any(op.type == t for op in c) for c in self.choices)
            lo, hi = self.min_counts.get(t, 0), self.max_counts.get(t, n)
            if lo > hi:
                raise LvBertError(f"min_counts[{t}] = {lo} exceeds max_counts[{t}] = {hi}")
            if lo > slots:
                raise LvBertError(f"min_counts[{t}] = {lo} but {t} is allowed in only {slots} of {n} slots")
        if sum(self.min_counts.values()) > n:
            raise LvBertError(f"min_counts {self.min_counts} sum to {sum(self.min_counts.values())}, more than the {n} slots")
        present = {op.type for op in self.ops}
        if sum(self.max_counts.get(t, n) for t in present) < n:
            raise LvBertError(f"max_counts {self.max_counts} leave fewer than the {n} slots to fill")
        if not self.exact:
            return self._check_feasible_sampled()
        by_count = [v for v in self.count_vectors() if self._counts_ok(v)]
        if not by_count:
            raise LvBertError(
                f"no arch meets the type counts (min {self.min_counts}, max {self.max_counts}) "
                f"with the allowed ops per slot"
            )
        for key, limit in self._limits():
            v = min(by_count, key=lambda v: self._cost_of(key, v))
            cheapest = self._cost_of(key, v)
            if cheapest > limit:
                raise LvBertError(
                    f"{_COST_NAMES[key]} {_fmt_cost(key, limit)} is below the cheapest arch in the space "
                    f"({_fmt_cost(key, cheapest)} {_unit(key)}, e.g. {self.witness(v)})"
                )
        if not any(self._costs_ok(v) for v in by_count):
            names = " and ".join(_COST_NAMES[k] for k, _ in self._limits())
            raise LvBertError(f"each limit can be met alone but no arch meets {names} together; loosen one of them")
        return self.num_feasible()

    def _check_feasible_sampled(self) -> int:
        cheapest_archs = []
        for key, limit in self._limits():
            per_op, base = self._cost[key]
            cheap = [min(self.choices[i], key=lambda op: per_op[self._index[str(op)]]) for i in range(self.num_slots)]
            cheapest = base + sum(per_op[self._index[str(op)]] for op in cheap)
            cheapest_archs.append(_join([str(op) for op in cheap]))
            if cheapest > limit:
                raise LvBertError(
                    f"{_COST_NAMES[key]} {_fmt_cost(key, limit)} is below the cheapest arch in the space "
                    f"({_fmt_cost(key, cheapest)} {_unit(key)}, e.g. {cheapest_archs[-1]})"
                )
        rng = random.Random(0)
        # the cheapest arch of each budget first (feasible whenever one budget alone binds), then uniform draws
        candidates = itertools.chain(cheapest_archs, (self._draw(rng) for _ in range(self.max_tries)))
        if self.has_constraints and not any(self.contains(a) for a in candidates):
            raise LvBertError(
                f"no arch met the constraints together in {self.max_tries:,} uniform draws (this space has too many "
                "ops for an exact check); loosen max_params/max_macs/max_latency or the type counts"
            )
        return self.num_feasible()

    def extremes(self, key: str = "params") -> tuple[str, str]:
        """The cheapest and the most expensive feasible arch by ``key`` (params, macs or latency); exact spaces only."""
        if key not in self._cost:
            raise LvBertError(f"unknown cost {key!r}; choose one of {', '.join(self._cost)}")
        vs = self.feasible_count_vectors()
        if not vs:
            self.check_feasible()
        lo = min(vs, key=lambda v: self._cost_of(key, v))
        hi = max(vs, key=lambda v: self._cost_of(key, v))
        return self.witness(lo), self.witness(hi)

    def witness(self, v: Sequence[int]) -> str:
        """One arch (the first in the ops' order) of the per-slot sets with count vector ``v``."""
        v = tuple(v)
        if self._ways(0, v) == 0:
            raise LvBertError(f"no arch of this space has op counts {dict(zip(map(str, self.ops), v))}")
        out, rest = [], list(v)
        for i, ok in enumerate(self._slot_tokens):
            for t in ok:
                j = self._index[t]
                if rest[j] == 0:
                    continue
                rest[j] -= 1
                if self._ways(i + 1, tuple(rest)) > 0:
                    out.append(t)
                    break
                rest[j] += 1
        return _join(out)

    def _ways(self, i: int, v: Sequence[int]) -> int:
        """Number of ways to fill slots ``i..`` with exactly ``v`` ops of each kind."""
        key = (i, *v)
        hit = self._ways_memo.get(key)
        if hit is not None:
            return hit
        if i == self.num_slots:
            ways = int(not any(v))
        elif sum(v) != self.num_slots - i:
            ways = 0
        else:
            ways = 0
            for t in self._slot_tokens[i]:
                j = self._index[t]
                if v[j] > 0:
                    ways += self._ways(i + 1, tuple(x - (k == j) for k, x in enumerate(v)))
        self._ways_memo[key] = ways
        return ways

    def _need_exact(self, what: str) -> None:
        if not self.exact:
            raise LvBertError(f"{what} needs an exact space; this one has {len(self.ops)} distinct ops over "
                              f"{self.num_slots} slots (more than {MAX_COUNT_VECTORS:,} count vectors)")  # fmt: skip

    def _limits(self) -> list[tuple[str, float]]:
        pairs = [("params", self.max_params), ("macs", self.max_macs), ("latency", self.max_latency)]
        return [(k, v) for k, v in pairs if v is not None]

    def _cost_of(self, key: str, v: Sequence[int]) -> float:
        per_op, base = self._cost[key]
        return base + sum(n * c for n, c in zip(v, per_op))

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        """A JSON-able dict; :meth:`from_dict` rebuilds an equal space."""
        uniform = all(ok == self.allowed[0] for ok in self.allowed)
        return {
            "num_slots": self.num_slots,
            "allowed": self.allowed[0] if uniform else list(self.allowed),
            "max_params": self.max_params,
            "max_macs": self.max_macs,
            "max_latency": self.max_latency,
            "latency": self.latency,
            "min_counts": dict(self.min_counts),
            "max_counts": dict(self.max_counts),
            "size": self.size_config.to_dict(),
            "seq_len": self.seq_len,
            "max_tries": self.max_tries,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "SearchSpace":
        d = dict(d)
        size = d.pop("size", "small")
        if isinstance(size, dict):
            size = SizeConfig(**size)
        unknown = set(d) - set(cls().to_dict())
        if unknown:
            raise LvBertError(f"unknown search space field(s) {sorted(unknown)}")
        return cls(size=size, **d)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        uniform = all(ok == self.allowed[0] for ok in self.allowed)
        types = self.allowed[0] if uniform else "/".join(self.allowed)
        parts = [f"{self.num_slots} slots of {types}", f"{self.size():,} archs", f"hidden {self.size_config.hidden_size}"]
        if self.max_params is not None:
            parts.append(f"max_params={human(self.max_params)}")
        if self.max_macs is not None:
            parts.append(f"max_macs={human(self.max_macs)}/token@{self.seq_len}")
        if self.max_latency is not None:
            parts.append(f"max_latency={self.max_latency:g}ms")
        for t in OP_TYPES:
            lo, hi = self.min_counts.get(t), self.max_counts.get(t)
            if lo is not None or hi is not None:
                parts.append(f"{lo if lo is not None else 0}<={t}<={hi if hi is not None else self.num_slots}")
        return f"SearchSpace({', '.join(parts)})"


# ---------------------------------------------------------------------------- helpers


def _normalise_counts(counts: dict[str, int] | None, name: str) -> dict[str, int]:
    out = {}
    for t, n in (counts or {}).items():
        key = str(t).upper()
        if key not in OP_TYPES:
            raise LvBertError(f"{name} has unknown layer type {t!r}; use C, A, F or I")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise LvBertError(f"{name}[{key}] must be a non-negative integer, got {n!r}")
        out[key] = n
    return {t: out[t] for t in OP_TYPES if t in out}


def _positive_or_none(value, name: str, integer: bool = True):
    if value is None:
        return None
    try:
        v = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise LvBertError(f"{name} must be a number, got {value!r}") from None
    if v <= 0:
        raise LvBertError(f"{name} must be positive, got {value!r}")
    return v


def _latency_key(op: Op) -> str:
    return op.key


def _normalise_latency(latency: dict[str, float] | None, ops: list[Op]) -> dict[str, float] | None:
    if latency is None:
        return None
    need = [_latency_key(op) for op in ops if op.type != "I"] + ["embeddings"]
    missing = [k for k in need if k not in latency]
    if missing:
        raise LvBertError(f"latency table lacks {missing}; it needs milliseconds for every op of the space and the embeddings")
    out = {k: float(v) for k, v in latency.items()}
    for op in ops:
        if op.type == "I":
            out.setdefault(_latency_key(op), 0.0)
    return out


def _unit(key: str) -> str:
    return {"params": "parameters", "macs": "MACs/token", "latency": "ms"}[key]


def _fmt_cost(key: str, value: float) -> str:
    return f"{value:.3f}" if key == "latency" else human(value)


def all_archs(space: SearchSpace) -> Iterator[str]:
    """Every arch of the per-slot sets (ignores constraints); only sensible for small spaces."""
    for combo in itertools.product(*space._slot_tokens):
        yield _join(combo)


def parse_type_counts(spec, option: str = "--min-counts") -> dict[str, int]:
    """``"C=2,A=4"`` (or a mapping from YAML) -> ``{"C": 2, "A": 4}``."""
    if spec in (None, ""):
        return {}
    items = spec.items() if isinstance(spec, dict) else (p.partition("=")[::2] for p in str(spec).split(",") if p.strip())
    out = {}
    for t, n in items:
        t = str(t).strip().upper()
        if t not in ("C", "A", "F"):
            raise LvBertError(f"{option} has unknown layer type {t!r}; write e.g. C=2,A=4")
        try:
            n = int(str(n).strip())
        except ValueError:
            raise LvBertError(f"{option}: {t} needs a whole number of slots, got {n!r}; write e.g. C=2,A=4") from None
        if n < 0:
            raise LvBertError(f"{option}: {t}={n} is negative")
        out[t] = n
    return out


def narrow_allowed(trained: list[str], allowed: str | None) -> list[str]:
    """Per-slot ops of the search: the supernet's, intersected with ``--allowed``.

    ``--allowed`` names layer types (``AF``: every op of those types) or ops with settings."""
    if not allowed:
        return list(trained)
    want = list(normalize_choices(allowed, 1)[0])
    trained_ops = [list(Arch.parse(ok)) for ok in trained]
    every = {op for ops in trained_ops for op in ops}

    def wanted(op) -> bool:
        return any(op == w or (not w.settings and op.type == w.type) for w in want)

    absent = [w for w in want if not any((op == w or (not w.settings and op.type == w.type)) for op in every)]
    if absent:
        types = "".join(t for t in "CAFI" if any(op.type == t for op in every))
        raise LvBertError(
            f"--allowed {allowed} asks for {''.join(str(w) for w in absent)}, which the supernet was not trained with "
            f"(its types: {types})"
        )
    out = [[op for op in ops if wanted(op)] for ops in trained_ops]
    empty = [i for i, ok in enumerate(out) if not ok]
    if empty:
        raise LvBertError(f"--allowed {allowed} leaves slot {empty[0]} empty (the supernet allows only {trained[empty[0]]} there)")
    return [str(Arch(ok)) for ok in out]


# ----------------------------------------------------------------------------- supernet training: which path each step


class ArchSampler:
    """Architecture for step ``s``, a pure function of (seed, s): identical on every rank and on resume.

    ``uniform`` (SPOS): each slot uniform over its allowed ops. ``fair`` (FairNAS): within each
    group of k steps a slot with k allowed ops uses each of them exactly once, in a random order.

    Args:
        allowed: the allowed ops of each slot (canonical strings, ``"CAF"`` or ``"C(kernel=3) C A"``).
    """

    def __init__(self, allowed: list[str], seed: int, mode: str = "uniform"):
        self.allowed, self.seed, self.mode = allowed, seed, mode
        self._tokens = [[str(op) for op in Arch.parse(ok)] for ok in allowed]

    def __call__(self, step: int) -> str:
        if self.mode == "uniform":
            rng = random.Random(f"{self.seed}/arch/{step}")
            return _join([rng.choice(ok) for ok in self._tokens])
        out = []
        for i, ok in enumerate(self._tokens):
            group, pos = divmod(step, len(ok))
            order = random.Random(f"{self.seed}/fair/{i}/{group}").sample(ok, len(ok))
            out.append(order[pos])
        return _join(out)


def probe_archs(allowed: list[str], seed: int) -> dict[str, str]:
    """Fixed architectures validated during training: bert, lv-bert-small, two random (where in the space)."""
    n = len(allowed)
    tokens = [[str(op) for op in Arch.parse(ok)] for ok in allowed]
    probes = {}
    for name in ("bert", "lv-bert-small"):
        try:
            arch = parse_arch(name, num_slots=n)
        except LvBertError:
            continue
        if all(t in ok for t, ok in zip(arch, tokens)):
            probes[name] = arch
    for k in (1, 2):
        rng = random.Random(f"{seed}/probe/{k}")
        probes[f"random{k}"] = _join([rng.choice(ok) for ok in tokens])
    return probes
