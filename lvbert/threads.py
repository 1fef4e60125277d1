"""Torch threads that follow the cores other processes leave free.

With one torch thread per core, a second job on the machine makes every parallel region wait for
the thread that lost its core: a training step beside another 2-thread torch job took 1.5x (with
the short spin ``import lvbert`` sets) to 100x (torch's default) the quiet one-thread time, while
one thread kept its quiet speed (``benchmarks/bench_threads.py``, docs/benchmarks.md#threads).

:class:`ThreadGovernor` measures, between two calls of :meth:`~ThreadGovernor.tick` at least
``interval`` seconds apart, how busy the process's CPUs were (``/proc/stat``) and how much of that
was the process itself (``os.times``); the rest is other load. It then sets
``torch.set_num_threads`` to the cores left free (at least 1, at most torch's own count), changing
only when the free share is clearly another whole number of cores (hysteresis), so a quiet machine
keeps all its threads and a busy one drops to what it can give. The ``lvbert`` command enables it
unless ``--threads`` or ``OMP_NUM_THREADS`` chose the count (or ``LVBERT_THREAD_DEFAULTS=0``);
the training loop ticks it once per step. Linux only (elsewhere it does nothing).

The thread count can change rounding in some kernels, so a run whose threads changed is not bit
for bit the run it would have been on a quiet machine; pass ``--threads N`` for that. The search
fitness does not tick it and calls :func:`restore` (the full count) before each evaluation: its
numbers must not depend on when a candidate was evaluated.
"""

from __future__ import annotations

import os
import time

STAT = "/proc/stat"


def _busy_seconds(cpus: set[int] | None, path: str = STAT) -> float | None:
    """Seconds the given CPUs (all when None) spent not idle since boot, or None without ``/proc/stat``."""
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        v = [int(x) for x in rest.split()]
        busy += v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq (idle, iowait, steal: not busy)
    return busy / hz


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ThreadGovernor:
    """Sets torch's intra-op threads to the cores that other load leaves free (see the module docstring).

    Args:
        interval: least seconds between two measurements.
        max_threads: the most threads (default: torch's count when the governor is made, one per
            physical core unless set otherwise).
        hysteresis: how far (in cores) the free share must be from the current count before it
            changes: 0.65 keeps 2 threads at 1.4 free cores and drops to 1 below 1.35.
    """

    def __init__(self, interval: float = 1.0, max_threads: int | None = None, hysteresis: float = 0.65,
                 stat_path: str = STAT) -> None:  # fmt: skip
        self.interval = float(interval)
        if max_threads is None:
            import torch

            max_threads = torch.get_num_threads()
        self.max_threads = max(1, int(max_threads))
        self.hysteresis = float(hysteresis)
        self.stat_path = stat_path
        try:
            self._cpus: set[int] | None = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self._cpus = None
        self._last: tuple[float, float, float] | None = None
        self.changes = 0
        self.other_load: float | None = None  # cores used by others over the last interval

    def _sample(self) -> tuple[float, float, float] | None:
        busy = _busy_seconds(self._cpus, self.stat_path)
        return None if busy is None else (time.monotonic(), busy, _own_seconds())

    def decide(self, current: int, other_load: float) -> int:
        """The thread count for ``other_load`` cores used by others, starting from ``current``."""
        free = self.max_threads - other_load
        if abs(free - current) <= self.hysteresis:
            return current
        return max(1, min(self.max_threads, int(free + 0.5)))

    def tick(self) -> int | None:
        """Measure and adapt when ``interval`` has passed; returns the new thread count when it changed."""
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.interval:
            return None
        sample = self._sample()
        if sample is None:
            return None
        last, self._last = self._last, sample
        if last is None:
            return None
        wall = sample[0] - last[0]
        if wall <= 0:
            return None
        self.other_load = max(0.0, (sample[1] - last[1]) - (sample[2] - last[2])) / wall
        import torch

        current = torch.get_num_threads()
        new = self.decide(current, self.other_load)
        if new == current:
            return None
        torch.set_num_threads(new)
        self.changes += 1
        return new


_governor: ThreadGovernor | None = None


def enable(**kwargs) -> ThreadGovernor | None:
    """Turn the process's governor on (Linux with ``/proc/stat``; otherwise None)."""
    global _governor
    if not os.path.exists(STAT):
        return None
    _governor = ThreadGovernor(**kwargs)
    _governor.tick()  # the first sample
    return _governor


def disable() -> None:
    global _governor
    _governor = None


def tick() -> None:
    """What a long loop calls once per step: adapts the threads when the governor is on."""
    if _governor is not None:
        _governor.tick()


def restore() -> None:
    """Back to the governor's full thread count (when it is on): what work that must not depend on
    the load, such as the search fitness, calls before it starts."""
    if _governor is not None:
        import torch

        if torch.get_num_threads() != _governor.max_threads:
            torch.set_num_threads(_governor.max_threads)


def wanted_by_default(threads_option: int | None) -> bool:
    """Whether the ``lvbert`` command turns the governor on: no ``--threads``, no ``OMP_NUM_THREADS``,
    no ``LVBERT_THREAD_DEFAULTS=0``."""
    return (threads_option is None and "OMP_NUM_THREADS" not in os.environ
            and os.environ.get("LVBERT_THREAD_DEFAULTS", "1") != "0")  # fmt: skip
