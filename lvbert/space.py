"""The search space over layer types -- plain Python, no torch.

A :class:`SearchSpace` says which architectures a supernet holds and a search
may return: the number of slots, the layer types allowed at each slot, and
optional constraints (maximum parameters, multiply-accumulates per token or
predicted latency, minimum/maximum count of each layer type). It samples,
mutates and crosses over archs, checks them, and counts them -- all without
building a model, and always with a ``random.Random`` passed in by the caller
(nothing here touches the global random state).

Every cost here (parameters, MACs, table latency) is a sum over slots of a
per-type cost, so it depends only on the *type counts* ``(nC, nA, nF)`` of an
arch. With 24 slots there are at most 325 count vectors; enumerating them gives
exact answers to "is any arch feasible", "what is the cheapest arch" and "how
many archs satisfy the constraints" (:meth:`SearchSpace.check_feasible`,
:meth:`SearchSpace.num_feasible`).
"""

from __future__ import annotations

import itertools
import random
from typing import Iterator, Sequence

from lvbert.arch import LAYER_TYPES, SizeConfig, count_macs, count_params, get_size, sublayer_macs, sublayer_params
from lvbert.errors import LvBertError
from lvbert.utils import human

DEFAULT_MAX_TRIES = 10_000
_COST_NAMES = {"params": "max_params", "macs": "max_macs", "latency": "max_latency"}


class SearchSpace:
    """Archs of ``num_slots`` slots, each slot one of its allowed layer types, under constraints.

    Args:
        num_slots: number of sub-layer slots (default: ``size.num_slots``, 24 for the paper's sizes).
        allowed: layer types allowed at every slot (``"CAF"``, ``"AF"``, ...) or one string per slot.
        max_params: backbone parameter budget (embeddings + encoder, as :func:`lvbert.arch.count_params`).
        max_macs: budget of encoder multiply-accumulates per token at ``seq_len``.
        max_latency: budget of predicted latency, in the unit of ``latency`` (milliseconds from
            :class:`lvbert.search.constraints.LatencyTable`).
        latency: per-type latency table ``{"C": ms, "A": ms, "F": ms, "embeddings": ms}``; an arch's
            predicted latency is ``embeddings + sum over slots``. Needed by ``max_latency``.
        min_counts / max_counts: bounds on the number of slots of each type, e.g. ``{"A": 4}``.
        size: model widths (a :class:`SizeConfig` or a preset name) used for counting.
        seq_len: sequence length at which MACs per token are counted.
        max_tries: draws before :meth:`sample` gives up on rejection sampling.
    """

    def __init__(
        self,
        num_slots: int | None = None,
        allowed: str | Sequence[str] = LAYER_TYPES,
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
        self.allowed = _normalise_allowed(allowed, self.num_slots)
        self.min_counts = _normalise_counts(min_counts, "min_counts")
        self.max_counts = _normalise_counts(max_counts, "max_counts")
        self.max_params = _positive_or_none(max_params, "max_params")
        self.max_macs = _positive_or_none(max_macs, "max_macs")
        self.max_latency = _positive_or_none(max_latency, "max_latency", integer=False)
        self.latency = _normalise_latency(latency)
        if self.max_latency is not None and self.latency is None:
            raise LvBertError("max_latency needs a latency table (per-type milliseconds); measure one with LatencyTable")
        if int(seq_len) <= 0:
            raise LvBertError(f"seq_len must be positive, got {seq_len}")
        self.seq_len = int(seq_len)
        if int(max_tries) <= 0:
            raise LvBertError(f"max_tries must be positive, got {max_tries}")
        self.max_tries = int(max_tries)
        # Per-type costs: the cost of an arch is base + sum of its slots' costs.
        s = self.size_config
        self._cost = {
            "params": ({t: sublayer_params(t, s) for t in LAYER_TYPES}, count_params("", s)),
            "macs": ({t: sublayer_macs(t, s, self.seq_len) for t in LAYER_TYPES}, count_macs("", s, self.seq_len)),
        }
        if self.latency is not None:
            self._cost["latency"] = ({t: self.latency[t] for t in LAYER_TYPES}, self.latency["embeddings"])
        self._ways_memo: dict[tuple[int, int, int, int], int] = {}

    # ------------------------------------------------------------------ counting

    @property
    def has_constraints(self) -> bool:
        limits = (self.max_params, self.max_macs, self.max_latency)
        return any(v is not None for v in limits) or bool(self.min_counts) or bool(self.max_counts)

    def size(self, constrained: bool = False) -> int:
        """Number of archs: the product of the per-slot choices (3^24 = 282,429,536,481 for 24 free slots).

        ``constrained=True`` counts exactly the archs that satisfy every constraint.
        """
        if constrained:
            return self.num_feasible()
        n = 1
        for a in self.allowed:
            n *= len(a)
        return n

    def params(self, arch: str) -> int:
        """Backbone parameters (embeddings + encoder) of ``arch`` at this space's size."""
        return count_params(arch, self.size_config)

    def macs(self, arch: str) -> int:
        """Encoder multiply-accumulates per token of ``arch`` at ``seq_len``."""
        return count_macs(arch, self.size_config, self.seq_len)

    def predicted_latency(self, arch: str) -> float | None:
        """Latency predicted by the table (embeddings + sum of slots), or None without a table."""
        return None if self.latency is None else self._cost_of("latency", _counts(arch))

    def costs(self, arch: str) -> dict:
        """``params``, ``macs_per_token`` (and ``latency`` when there is a table) of ``arch``."""
        out = {"params": self.params(arch), "macs_per_token": self.macs(arch)}
        if self.latency is not None:
            out["latency"] = self.predicted_latency(arch)
        return out

    # ------------------------------------------------------------------ membership

    def violations(self, arch: str) -> list[str]:
        """Every reason ``arch`` is not in the space, as short sentences (empty when it is)."""
        if not isinstance(arch, str):
            return [f"an arch is a string of layer types, got {type(arch).__name__}"]
        if len(arch) != self.num_slots:
            return [f"{len(arch)} slots, the space has {self.num_slots}"]
        out = []
        for i, (t, ok) in enumerate(zip(arch, self.allowed)):
            if t not in ok:
                out.append(f"slot {i} is {t!r}, allowed there: {ok}")
        if out:
            return out
        counts = _counts(arch)
        for t in LAYER_TYPES:
            n = counts[LAYER_TYPES.index(t)]
            if t in self.min_counts and n < self.min_counts[t]:
                out.append(f"{n} x {t}, at least {self.min_counts[t]} required")
            if t in self.max_counts and n > self.max_counts[t]:
                out.append(f"{n} x {t}, at most {self.max_counts[t]} allowed")
        for key, limit in self._limits():
            value = self._cost_of(key, counts)
            if value > limit:
                out.append(f"{_fmt_cost(key, value)} {_unit(key)} > {_COST_NAMES[key]} {_fmt_cost(key, limit)}")
        return out

    def contains(self, arch: str) -> bool:
        """True when ``arch`` has the right slots, allowed types, and satisfies every constraint."""
        return not self.violations(arch)

    def __contains__(self, arch: str) -> bool:
        return self.contains(arch)

    # ------------------------------------------------------------------ sampling and variation

    def sample(self, rng: random.Random) -> str:
        """An arch with each slot uniform over its allowed types, re-drawn until it meets the constraints.

        Rejection sampling gives the uniform distribution over the constrained space; after
        ``max_tries`` draws it raises :class:`LvBertError` with the exact share of feasible archs.
        """
        for _ in range(self.max_tries if self.has_constraints else 1):
            arch = "".join(rng.choice(ok) for ok in self.allowed)
            if not self.has_constraints or self.contains(arch):
                return arch
        self.check_feasible()  # a clear error if nothing is feasible at all
        share = self.num_feasible() / self.size()
        raise LvBertError(
            f"no arch met the constraints in {self.max_tries:,} uniform draws (only {share:.3g} of the space "
            f"is feasible); loosen max_params/max_macs/max_latency or the type counts, or raise max_tries"
        )

    def mutate(self, arch: str, rng: random.Random, prob: float) -> str:
        """Re-draw each slot uniformly from its allowed types with probability ``prob`` (SPOS).

        A re-drawn slot may keep its type; the result is not checked against the constraints.
        """
        if not 0.0 <= prob <= 1.0:
            raise LvBertError(f"mutation probability must be in [0, 1], got {prob}")
        self._check_shape(arch)
        # One rng.random() per slot, so the stream does not depend on which slots mutate.
        return "".join(rng.choice(ok) if rng.random() < prob else t for t, ok in zip(arch, self.allowed))

    def crossover(self, a: str, b: str, rng: random.Random) -> str:
        """Uniform crossover: each slot taken from ``a`` or ``b`` with probability 1/2."""
        self._check_shape(a)
        self._check_shape(b)
        return "".join(x if rng.random() < 0.5 else y for x, y in zip(a, b))

    def _check_shape(self, arch: str) -> None:
        if not isinstance(arch, str) or len(arch) != self.num_slots:
            raise LvBertError(f"arch {arch!r} does not have {self.num_slots} slots")

    # ------------------------------------------------------------------ feasibility (exact)

    def count_vectors(self) -> Iterator[tuple[int, int, int]]:
        """Every ``(nC, nA, nF)`` summing to ``num_slots`` that some arch of the per-slot sets reaches."""
        n = self.num_slots
        for c in range(n + 1):
            for a in range(n - c + 1):
                v = (c, a, n - c - a)
                if self._ways(0, v) > 0:
                    yield v

    def _counts_ok(self, v: tuple[int, int, int]) -> bool:
        for i, t in enumerate(LAYER_TYPES):
            if v[i] < self.min_counts.get(t, 0) or v[i] > self.max_counts.get(t, self.num_slots):
                return False
        return True

    def _costs_ok(self, v: tuple[int, int, int]) -> bool:
        return all(self._cost_of(key, v) <= limit for key, limit in self._limits())

    def feasible_count_vectors(self) -> list[tuple[int, int, int]]:
        """Type counts ``(nC, nA, nF)`` of the archs that satisfy every constraint."""
        return [v for v in self.count_vectors() if self._counts_ok(v) and self._costs_ok(v)]

    def num_feasible(self) -> int:
        """Exact number of archs that satisfy every constraint."""
        return sum(self._ways(0, v) for v in self.feasible_count_vectors())

    def check_feasible(self) -> int:
        """Raise :class:`LvBertError` saying why no arch can meet the constraints; else return how many do.

        Exact: it looks at every reachable type-count vector, so it finds e.g. a ``max_params``
        below the cheapest arch, minimum counts summing over ``num_slots``, a count bound that the
        per-slot allowed types cannot meet, or two limits that cannot hold together.
        """
        n = self.num_slots
        for t in LAYER_TYPES:
            slots = sum(t in ok for ok in self.allowed)
            lo, hi = self.min_counts.get(t, 0), self.max_counts.get(t, n)
            if lo > hi:
                raise LvBertError(f"min_counts[{t}] = {lo} exceeds max_counts[{t}] = {hi}")
            if lo > slots:
                raise LvBertError(f"min_counts[{t}] = {lo} but {t} is allowed in only {slots} of {n} slots")
        if sum(self.min_counts.values()) > n:
            raise LvBertError(f"min_counts {self.min_counts} sum to {sum(self.min_counts.values())}, more than the {n} slots")
        if sum(self.max_counts.get(t, n) for t in LAYER_TYPES) < n:
            raise LvBertError(f"max_counts {self.max_counts} leave fewer than the {n} slots to fill")
        by_count = [v for v in self.count_vectors() if self._counts_ok(v)]
        if not by_count:
            raise LvBertError(
                f"no arch meets the type counts (min {self.min_counts}, max {self.max_counts}) "
                f"with the allowed types per slot"
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

    def extremes(self, key: str = "params") -> tuple[str, str]:
        """The cheapest and the most expensive feasible arch by ``key`` (params, macs or latency)."""
        if key not in self._cost:
            raise LvBertError(f"unknown cost {key!r}; choose one of {', '.join(self._cost)}")
        vs = self.feasible_count_vectors()
        if not vs:
            self.check_feasible()
        lo = min(vs, key=lambda v: self._cost_of(key, v))
        hi = max(vs, key=lambda v: self._cost_of(key, v))
        return self.witness(lo), self.witness(hi)

    def witness(self, v: tuple[int, int, int]) -> str:
        """One arch (the first in C < A < F order) of the per-slot sets with type counts ``v``."""
        if self._ways(0, v) == 0:
            raise LvBertError(f"no arch of this space has type counts {dict(zip(LAYER_TYPES, v))}")
        out, rest = [], list(v)
        for i, ok in enumerate(self.allowed):
            for t in ok:
                j = LAYER_TYPES.index(t)
                if rest[j] == 0:
                    continue
                rest[j] -= 1
                if self._ways(i + 1, tuple(rest)) > 0:
                    out.append(t)
                    break
                rest[j] += 1
        return "".join(out)

    def _ways(self, i: int, v: Sequence[int]) -> int:
        """Number of ways to fill slots ``i..`` with exactly ``v`` = (nC, nA, nF) layers."""
        key = (i, v[0], v[1], v[2])
        hit = self._ways_memo.get(key)
        if hit is not None:
            return hit
        if i == self.num_slots:
            ways = int(v[0] == v[1] == v[2] == 0)
        elif sum(v) != self.num_slots - i:
            ways = 0
        else:
            ways = 0
            for t in self.allowed[i]:
                j = LAYER_TYPES.index(t)
                if v[j] > 0:
                    ways += self._ways(i + 1, tuple(x - (k == j) for k, x in enumerate(v)))
        self._ways_memo[key] = ways
        return ways

    def _limits(self) -> list[tuple[str, float]]:
        pairs = [("params", self.max_params), ("macs", self.max_macs), ("latency", self.max_latency)]
        return [(k, v) for k, v in pairs if v is not None]

    def _cost_of(self, key: str, v: Sequence[int]) -> float:
        per_type, base = self._cost[key]
        return base + sum(n * per_type[t] for n, t in zip(v, LAYER_TYPES))

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
        for t in LAYER_TYPES:
            lo, hi = self.min_counts.get(t), self.max_counts.get(t)
            if lo is not None or hi is not None:
                parts.append(f"{lo if lo is not None else 0}<={t}<={hi if hi is not None else self.num_slots}")
        return f"SearchSpace({', '.join(parts)})"


class FairSampler:
    """FairNAS-style sampling: every slot uses each of its allowed types once per round.

    Each slot keeps a queue holding a random permutation of its allowed types; a draw pops
    one type per slot and a slot's queue is refilled with a fresh permutation when empty.
    So for a slot with ``k`` allowed types, draws ``k*r .. k*r + k - 1`` use each type
    exactly once. The space's numeric and count constraints are *not* applied (fairness and
    rejection cannot both hold); use it for supernet training over the whole space.
    """

    def __init__(self, space: SearchSpace, rng: random.Random) -> None:
        self.space = space
        self.rng = rng
        self._queues: list[list[str]] = [[] for _ in space.allowed]

    def next(self) -> str:
        out = []
        for q, ok in zip(self._queues, self.space.allowed):
            if not q:
                q.extend(ok)
                self.rng.shuffle(q)
            out.append(q.pop())
        return "".join(out)

    __next__ = next

    def __iter__(self) -> "FairSampler":
        return self

    def state_dict(self) -> dict:
        """The pending permutations (the generator's state is the caller's to save)."""
        return {"queues": ["".join(q) for q in self._queues]}

    def load_state_dict(self, state: dict) -> None:
        queues = state["queues"]
        if len(queues) != len(self._queues) or any(set(q) - set(ok) for q, ok in zip(queues, self.space.allowed)):
            raise LvBertError("fair sampler state does not match the search space")
        self._queues = [list(q) for q in queues]


def fair_sampler(space: SearchSpace, rng: random.Random) -> FairSampler:
    """Shorthand for :class:`FairSampler`."""
    return FairSampler(space, rng)


# ---------------------------------------------------------------------------- helpers


def _counts(arch: str) -> tuple[int, int, int]:
    return tuple(arch.count(t) for t in LAYER_TYPES)  # type: ignore[return-value]


def _normalise_allowed(allowed: str | Sequence[str], num_slots: int) -> list[str]:
    if isinstance(allowed, str):
        per_slot = [allowed] * num_slots
    else:
        per_slot = list(allowed)
        if len(per_slot) != num_slots:
            raise LvBertError(f"allowed lists {len(per_slot)} slots but the space has {num_slots}")
    out = []
    for i, ok in enumerate(per_slot):
        letters = str(ok).upper().replace(",", "").replace(" ", "")
        bad = set(letters) - set(LAYER_TYPES)
        if bad or not letters:
            raise LvBertError(
                f"allowed types at slot {i} must be a non-empty subset of {LAYER_TYPES}, got {ok!r}"
            )
        out.append("".join(t for t in LAYER_TYPES if t in letters))  # canonical C, A, F order
    return out


def _normalise_counts(counts: dict[str, int] | None, name: str) -> dict[str, int]:
    out = {}
    for t, n in (counts or {}).items():
        key = str(t).upper()
        if key not in LAYER_TYPES:
            raise LvBertError(f"{name} has unknown layer type {t!r}; use C, A or F")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise LvBertError(f"{name}[{key}] must be a non-negative integer, got {n!r}")
        out[key] = n
    return {t: out[t] for t in LAYER_TYPES if t in out}


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


def _normalise_latency(latency: dict[str, float] | None) -> dict[str, float] | None:
    if latency is None:
        return None
    need = [*LAYER_TYPES, "embeddings"]
    missing = [k for k in need if k not in latency]
    if missing:
        raise LvBertError(f"latency table lacks {missing}; it needs per-type milliseconds for {need}")
    return {k: float(latency[k]) for k in need}


def _unit(key: str) -> str:
    return {"params": "parameters", "macs": "MACs/token", "latency": "ms"}[key]


def _fmt_cost(key: str, value: float) -> str:
    return f"{value:.3f}" if key == "latency" else human(value)


def all_archs(space: SearchSpace) -> Iterator[str]:
    """Every arch of the per-slot sets (ignores constraints); only sensible for small spaces."""
    for combo in itertools.product(*space.allowed):
        yield "".join(combo)
