"""Selection over combinations of block candidates (NAS-BERT's performance approximation).

The loss of a combination is approximated by the sum of its blocks' losses, so combinations can
be visited in increasing approximate loss without listing them all (a best-first walk over the
sorted per-block lists); the first ``top`` that meet the budgets are the ones evaluated for real.
Plain Python."""

from __future__ import annotations

import heapq
from typing import Callable, Sequence

from lvbert.errors import LvBertError


def k_best(losses: Sequence[Sequence[float]], top: int, feasible: Callable[[tuple[int, ...]], bool],
           max_visits: int = 2_000_000) -> tuple[list[tuple[int, ...]], int]:  # fmt: skip
    """The ``top`` index combinations (one index per list) with the smallest sum of ``losses`` among
    those ``feasible`` accepts, in increasing sum. Each list must be sorted ascending.

    Returns ``(combinations, visited)``; fewer than ``top`` when the walk ran out of combinations or
    reached ``max_visits``."""
    n = len(losses)
    if any(len(ls) == 0 for ls in losses):
        return [], 0
    for ls in losses:
        if any(a > b for a, b in zip(ls, ls[1:])):
            raise ValueError("each list of losses must be sorted ascending")
    start = (0,) * n
    heap = [(sum(ls[0] for ls in losses), start)]
    seen = {start}
    found, visits = [], 0
    while heap and len(found) < top and visits < max_visits:
        total, combo = heapq.heappop(heap)
        visits += 1
        if feasible(combo):
            found.append(combo)
        for i in range(n):
            j = combo[i] + 1
            if j < len(losses[i]):
                nxt = combo[:i] + (j,) + combo[i + 1 :]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (total - losses[i][combo[i]] + losses[i][j], nxt))
    return found, visits


def pareto_front(points: list[dict], keys: tuple[str, ...] = ("loss", "params", "latency_ms")) -> list[dict]:
    """The points no other point beats on every key (smaller is better), sorted by the second key."""
    front = []
    for p in points:
        dominated = any(all(q[k] <= p[k] for k in keys) and any(q[k] < p[k] for k in keys) for q in points)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p[keys[1]], p[keys[0]]))


def parse_budget(text) -> int:
    """A parameter budget: ``5M``, ``800K``, ``1.5M`` or a plain integer."""

    s = str(text).strip().upper().replace("_", "").replace(",", "")
    mult = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(s[-1:], 1)
    num = s[:-1] if s[-1:] in "KMG" and s else s
    try:
        value = float(num) * mult
    except ValueError:
        raise LvBertError(f"cannot read parameter budget {text!r}; write e.g. 5M, 800K or 1200000") from None
    if value <= 0:
        raise LvBertError(f"parameter budget {text!r} must be positive")
    return int(round(value))
