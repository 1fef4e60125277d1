"""Evolutionary and random architecture search over a :class:`~lvbert.space.SearchSpace`.

No torch here: the fitness is a callable ``fitness_fn(archs) -> [{"fitness", "loss", ...}]``
taking a batch, so the caller may spread it over processes (see ``fitness.py``).

Evolution follows SPOS (Guo et al. 2020; the LV-BERT paper searches this way): generation 0 is
``population`` random archs meeting the constraints; every later generation takes the
``parents`` best archs evaluated so far, makes ``mutations`` mutants (each slot re-drawn
with ``mutation_prob``) and ``crossovers`` uniform crossovers of two parents, and fills up
to ``population`` with random archs. Duplicates of anything already proposed and
constraint violators are re-drawn (at most ``max_tries`` draws per wanted candidate).
Random search proposes the same number of candidates, ``population`` per generation,
uniformly from the constrained space.

Reproducibility: one ``random.Random(seed)`` drives every choice, and it only ever sees
fitness values, which are the same whether computed or read back from ``history.jsonl``.
So a resumed search proposes exactly the candidates of an uninterrupted one and ends with
the same best arch, evaluating only what the history lacks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lvbert.arch import type_counts
from lvbert.errors import LvBertError
from lvbert.search.history import BEST, CONFIG, HISTORY, TOP, read_history
from lvbert.search.report import markdown_table, plot_fitness, plot_top_archs
from lvbert.space import SearchSpace
from lvbert.utils import atomic_write_json, atomic_write_text

__all__ = ["STRATEGIES", "EvolutionConfig", "SearchResult", "rank_key", "read_history", "run_search", "ranking_check"]

STRATEGIES = ("evolution", "random")

FitnessFn = Callable[[list[str]], list[dict]]


@dataclass(frozen=True)
class EvolutionConfig:
    """Settings of one search (SPOS defaults); validated on construction."""

    population: int = 50  # candidates per generation (generation 0: all random)
    generations: int = 20  # generations including the random generation 0; budget = population x generations
    parents: int = 10  # best archs evaluated so far that breed each generation
    mutations: int = 25  # mutants per generation
    crossovers: int = 25  # uniform crossovers per generation
    mutation_prob: float = 0.1  # per-slot probability of re-drawing a slot in a mutant
    seed: int = 0  # seeds the search's own random.Random
    strategy: str = "evolution"  # "evolution" or "random" (same budget, uniform proposals)
    max_tries: int = 100  # draws per wanted candidate before a generation is left short

    def __post_init__(self) -> None:
        for name in ("population", "generations", "parents", "max_tries"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise LvBertError(f"{name} must be a positive integer, got {v!r}")
        for name in ("mutations", "crossovers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise LvBertError(f"{name} must be a non-negative integer, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise LvBertError(f"seed must be an integer, got {self.seed!r}")
        if self.strategy not in STRATEGIES:
            raise LvBertError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if not 0.0 < float(self.mutation_prob) <= 1.0:
            raise LvBertError(f"mutation_prob must be in (0, 1], got {self.mutation_prob}")
        if self.strategy == "evolution":
            if self.mutations + self.crossovers == 0:
                raise LvBertError("evolution needs mutations or crossovers (both are 0); use --strategy random")
            if self.parents > self.population:
                raise LvBertError(f"parents ({self.parents}) cannot exceed population ({self.population})")
            if self.mutations + self.crossovers > self.population:
                raise LvBertError(
                    f"mutations + crossovers ({self.mutations} + {self.crossovers}) exceed population ({self.population})"
                )
            if self.crossovers and self.parents < 2:
                raise LvBertError("crossovers need at least 2 parents")

    @property
    def budget(self) -> int:
        """Candidates proposed by a full search (fewer only if the space runs out)."""
        return self.population * self.generations

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EvolutionConfig":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise LvBertError(f"unknown search setting(s) {sorted(unknown)}")
        return cls(**d)


@dataclass
class SearchResult:
    """What :func:`run_search` returns; every record is a ``history.jsonl`` line."""

    best: dict
    history: list[dict]  # this search's candidates in proposal order
    generations: list[dict]  # per generation: generation, candidates, best (so far), mean, best_arch
    out_dir: Path | None
    evaluated: int  # archs passed to fitness_fn by this call
    reused: int  # archs read back from history.jsonl (resume)
    seconds: float
    config: EvolutionConfig = field(default_factory=EvolutionConfig)

    def top(self, k: int = 10) -> list[dict]:
        return sorted(self.history, key=rank_key)[:k]


def rank_key(record: dict) -> tuple:
    """Sort key, best first: higher fitness, then the arch string (a deterministic tie-break)."""
    f = record["fitness"]
    return (-(f if not math.isnan(f) else -math.inf), record["arch"])


def run_search(
    space: SearchSpace,
    fitness_fn: FitnessFn,
    config: EvolutionConfig,
    out_dir: str | os.PathLike | None,
    resume: bool = False,
    progress: bool = True,
    chunk_size: int | None = None,
    write: bool = True,
    identity: dict | None = None,
    options: dict | None = None,
    baselines: dict | None = None,
) -> SearchResult:
    """Run an evolutionary (or random) search and write its results to ``out_dir``.

    Args:
        space: the search space; its constraints are checked for feasibility before anything runs.
        fitness_fn: ``fitness_fn(archs) -> list of dicts`` with at least ``fitness`` (higher is
            better) and ``loss``; other keys are kept in the history. Never called twice on an arch.
        config: population, generations, ... (see :class:`EvolutionConfig`).
        out_dir: folder for ``history.jsonl``, ``best.json``, ``top.md``, ``search_config.json`` and
            the plots; ``None`` keeps everything in memory. A non-empty folder is refused unless
            ``resume``.
        resume: read ``history.jsonl`` back and evaluate only what it lacks (a truncated last line,
            from a kill mid-write, is dropped). The settings must equal the saved ones.
        progress: print one line per generation (stderr) and a summary table (stdout).
        chunk_size: archs per ``fitness_fn`` call (default: a generation's new archs in one call).
        write: False on non-main processes of a distributed search: nothing is written or printed.
        identity: what the fitness values depend on beyond the space and settings (the supernet,
            the validation set, bf16, ...); saved in ``search_config.json`` and, like the settings,
            it must be equal on resume, so a history is never mixed with numbers of another fitness.
        options: the command's options, saved in ``search_config.json`` (not compared on resume).
        baselines: reference fitness values (e.g. ``{"unigram_accuracy": ...}``) saved in ``best.json``.
    """
    if not isinstance(config, EvolutionConfig):
        raise TypeError("config must be an EvolutionConfig")
    if chunk_size is not None and chunk_size <= 0:
        raise LvBertError(f"chunk_size must be positive, got {chunk_size}")
    space.check_feasible()
    out = Path(out_dir) if out_dir is not None else None
    verbose = progress and (write or out is None)  # a non-writing rank of a distributed search stays quiet
    if out is None:
        write = False
    cache = _prepare_out_dir(out, space, config, resume, write, identity, options) if out is not None else {}
    reused_at_start = dict(cache)
    log = _Log(verbose)
    log.info(f"search: {config.strategy}, {config.population} x {config.generations} candidates over {space!r}")
    if reused_at_start:
        log.info(f"resume: {len(reused_at_start)} archs read back from {out / HISTORY}")

    rng = random.Random(config.seed)
    seen: set[str] = set()  # every arch proposed by *this* search so far (decides duplicates)
    history: list[dict] = []
    generations: list[dict] = []
    evaluated = 0
    start = time.perf_counter()
    history_file = open(out / HISTORY, "a", encoding="utf-8") if write else None
    try:
        for g in range(config.generations):
            t0 = time.perf_counter()
            if config.strategy == "evolution" and g > 0:
                candidates = _breed(space, config, rng, sorted(history, key=rank_key)[: config.parents], seen)
            else:
                candidates = _draw(config.population, lambda: space.sample(rng), space, seen, config.max_tries)
            if not candidates:
                log.info(f"generation {g}: no new arch could be drawn (space exhausted); stopping")
                break
            new = [a for a in candidates if a not in cache]
            step = chunk_size or len(new) or 1
            for i in range(0, len(new), step):
                chunk = new[i : i + step]
                for rec in _evaluate(space, fitness_fn, chunk, g, config.strategy):
                    cache[rec["arch"]] = rec
                    if history_file is not None:
                        history_file.write(json.dumps(rec) + "\n")
                if history_file is not None:
                    history_file.flush()
                    os.fsync(history_file.fileno())
                evaluated += len(chunk)
            records = [cache[a] for a in candidates]
            history.extend(records)
            stats = _generation_stats(g, records, history)
            generations.append(stats)
            log.info(
                f"generation {g} ({g + 1}/{config.generations}): best {stats['best']:.4f} mean {stats['mean']:.4f} "
                f"spread {stats['spread']:.4f} ({len(candidates)} candidates, {len(new)} evaluated, "
                f"{time.perf_counter() - t0:.1f}s) best arch {stats['best_arch']}"
            )
            if stats["flat"] and len(records) > 1:
                log.warn(
                    f"generation {g}: every candidate's fitness lies within {stats['spread']:.4f} "
                    f"(below {stats['threshold']:.4f}, two standard errors of the validation set): the supernet "
                    "cannot tell these archs apart; train it longer or evaluate on more validation sequences"
                )
    finally:
        if history_file is not None:
            history_file.close()

    best = dict(min(history, key=rank_key))
    best.update(
        strategy=config.strategy,
        seed=config.seed,
        candidates=len(history),
        counts=type_counts(best["arch"]),
        ranking=ranking_check(history, [g["generation"] for g in generations if g["flat"] and g["candidates"] > 1]),
        baselines=dict(baselines or {}),
    )
    if not best["ranking"]["meaningful"]:
        log.warn(best["ranking"]["note"])
    result = SearchResult(
        best=best,
        history=history,
        generations=generations,
        out_dir=out,
        evaluated=evaluated,
        reused=sum(1 for r in history if r["arch"] in reused_at_start),
        seconds=time.perf_counter() - start,
        config=config,
    )
    if write:
        write_outputs(result)
    if verbose:
        from lvbert.search.report import summary_table

        print(summary_table(result))
    return result


# ----------------------------------------------------------------------------- proposals


def _draw(n: int, make: Callable[[], str], space: SearchSpace, seen: set[str], max_tries: int) -> list[str]:
    """Up to ``n`` new archs from ``make()``, skipping duplicates and violators (bounded draws)."""
    out: list[str] = []
    for _ in range(n * max_tries):
        if len(out) == n:
            break
        arch = make()
        if arch in seen or not space.contains(arch):
            continue
        seen.add(arch)
        out.append(arch)
    return out


def _breed(space: SearchSpace, config: EvolutionConfig, rng: random.Random, parents: list[dict], seen: set[str]) -> list[str]:
    archs = [p["arch"] for p in parents]
    tries = config.max_tries
    mutants = _draw(config.mutations, lambda: space.mutate(rng.choice(archs), rng, config.mutation_prob), space, seen, tries)
    children: list[str] = []
    if len(archs) >= 2:
        children = _draw(config.crossovers, lambda: space.crossover(*rng.sample(archs, 2), rng), space, seen, tries)
    rest = config.population - len(mutants) - len(children)
    return mutants + children + _draw(rest, lambda: space.sample(rng), space, seen, tries)


# ----------------------------------------------------------------------------- evaluation


def _evaluate(space: SearchSpace, fitness_fn: FitnessFn, archs: list[str], generation: int, strategy: str) -> list[dict]:
    t0 = time.perf_counter()
    results = fitness_fn(list(archs))
    seconds = (time.perf_counter() - t0) / max(len(archs), 1)
    if not isinstance(results, (list, tuple)) or len(results) != len(archs):
        raise ValueError(f"fitness_fn returned {type(results).__name__} for {len(archs)} archs; expected a list of as many dicts")
    records = []
    for arch, res in zip(archs, results):
        if not isinstance(res, dict) or "fitness" not in res or "loss" not in res:
            raise ValueError(f"fitness_fn result for {arch} must be a dict with 'fitness' and 'loss', got {res!r}")
        extra = {k: v for k, v in res.items() if k not in ("fitness", "loss", "arch")}
        rec = {
            "arch": arch,
            "generation": generation,
            "fitness": float(res["fitness"]),
            "loss": float(res["loss"]),
            **{k: v for k, v in space.costs(arch).items()},
            "seconds": round(seconds, 6),
            "strategy": strategy,
            **extra,
        }
        records.append(rec)
    return records


def fitness_noise(records: list[dict]) -> float:
    """Two binomial standard errors of the fitness, ``2 sqrt(p (1 - p) / M)``, at the records' mean
    fitness p with M masked tokens in the validation set.

    Two archs whose masked-LM accuracies differ by less than this cannot be told apart by the
    validation set: the 95% interval of each contains the other. Without a ``masked`` count in the
    records (a custom fitness) only exactly equal values count as indistinguishable (0.0).
    """
    fits = [r["fitness"] for r in records if not math.isnan(r["fitness"])]
    masked = [r["masked"] for r in records if isinstance(r.get("masked"), (int, float)) and r["masked"] > 0]
    if not fits or not masked:
        return 0.0
    p = min(max(sum(fits) / len(fits), 0.0), 1.0)
    return 2.0 * math.sqrt(p * (1.0 - p) / statistics.median(masked))


def ranking_check(history: list[dict], flat_generations: list[int] | None = None) -> dict:
    """Whether the search's ranking means anything: the spread of fitness over every candidate
    against :func:`fitness_noise`. Saved in ``best.json`` and shown by the reports."""
    fits = [r["fitness"] for r in history if not math.isnan(r["fitness"])]
    spread = (max(fits) - min(fits)) if fits else 0.0
    threshold = fitness_noise(history)
    meaningful = len(fits) > 1 and spread > threshold
    note = (
        f"fitness spread {spread:.4f} over {len(fits)} candidates, above the noise of the validation set ({threshold:.4f})"
        if meaningful
        else f"the ranking is not meaningful: every candidate's fitness lies within {spread:.4f} (noise of the "
        f"validation set: {threshold:.4f}), so the best arch is only the first of equals; train the supernet "
        "longer (until its validation accuracy leaves the unigram baseline) or use more validation sequences"
    )
    return {"meaningful": meaningful, "spread": spread, "threshold": threshold,
            "flat_generations": list(flat_generations or []), "note": note}  # fmt: skip


def _generation_stats(g: int, records: list[dict], history: list[dict]) -> dict:
    fits = [r["fitness"] for r in records if not math.isnan(r["fitness"])]
    best = min(history, key=rank_key)
    spread = (max(fits) - min(fits)) if fits else 0.0
    threshold = fitness_noise(records)
    return {
        "generation": g,
        "candidates": len(records),
        "best": best["fitness"],
        "best_arch": best["arch"],
        "mean": sum(fits) / len(fits) if fits else math.nan,
        "spread": spread,
        "threshold": threshold,
        "flat": spread <= threshold,
    }


# ----------------------------------------------------------------------------- files


def _prepare_out_dir(
    out: Path, space: SearchSpace, config: EvolutionConfig, resume: bool, write: bool, identity: dict | None = None,
    options: dict | None = None,
) -> dict[str, dict]:
    """Check the folder, write the settings, and return the cache read from ``history.jsonl``."""
    settings = _jsonable({"space": space.to_dict(), "config": config.to_dict(), "fitness": identity or {}})
    written = {**settings, "options": _jsonable(options or {})}
    cfg_path = out / CONFIG
    if write:  # the one run-folder check (other processes of a distributed search only read)
        from lvbert.training.run import check_run_output  # search/ imports without torch; this needs it

        own = resume and (cfg_path.is_file() or not (out.is_dir() and any(out.iterdir())))  # or nothing there yet
        check_run_output(out, {}, overwrite=False, resume=resume, own_run=own, marker=CONFIG, what="search")
    if not resume or not cfg_path.exists():
        if write:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(cfg_path, written)
        return {}
    saved = json.loads(cfg_path.read_text(encoding="utf-8"))
    saved = {"space": saved.get("space"), "config": saved.get("config"), "fitness": saved.get("fitness") or {}}
    if saved != settings:
        diffs = [
            f"{part}.{k}"
            for part in ("space", "config", "fitness")
            for k in sorted(set(settings[part]) | set(saved[part] or {}))
            if (saved[part] or {}).get(k) != settings[part].get(k)
        ]
        raise LvBertError(f"cannot resume {out}: settings differ from the saved search ({', '.join(diffs)})")
    records = read_history(out / HISTORY, repair=write)
    return {r["arch"]: r for r in records}


def write_outputs(result: SearchResult) -> None:
    """``best.json``, ``top.md`` and the two plots (each written atomically)."""

    out = result.out_dir
    assert out is not None
    atomic_write_json(out / BEST, _jsonable(result.best))
    top = result.top(10)
    atomic_write_text(
        out / TOP,
        f"# Top {len(top)} archs ({result.config.strategy} search, {len(result.history)} candidates)\n\n"
        + markdown_table(top)
        + f"\n\nRanking: {result.best['ranking']['note']}.\n",
    )
    plot_fitness(out)
    plot_top_archs(top, out / "top_archs.png")


def _jsonable(obj):
    return json.loads(json.dumps(obj))


class _Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def info(self, msg: str) -> None:
        if self.enabled:
            print(msg, file=sys.stderr, flush=True)

    def warn(self, msg: str) -> None:
        if self.enabled:
            print(f"lvbert: warning: {msg}", file=sys.stderr, flush=True)
