"""Tables and plots of a search: ``top.md``, the printed summary, ``fitness.png``, ``top_archs.png``.

Plots use matplotlib's Agg backend (no display) and are written atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lvbert.arch import TYPE_NAMES, Arch
from lvbert.plots import pyplot, save
from lvbert.search.history import CONFIG, HISTORY, read_history
from lvbert.utils import human

TYPE_COLOURS = {"C": "#4c72b0", "A": "#dd8452", "F": "#55a868", "I": "#aaaaaa"}


def markdown_table(records: list[dict]) -> str:
    """Rank, arch, fitness, loss, params and MACs per token as a markdown table."""
    rows = [
        "| rank | arch | fitness | loss | params | MACs/token | generation |",
        "|---:|:---|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(records, 1):
        rows.append(
            f"| {i} | `{r['arch']}` | {r['fitness']:.4f} | {r['loss']:.4f} | {human(r['params'])} "
            f"| {human(r['macs_per_token'])} | {r['generation']} |"
        )
    return "\n".join(rows)


def summary_table(result, k: int = 5) -> str:
    """The text printed at the end of a search."""
    b = result.best
    lines = [
        "",
        f"{result.config.strategy} search: {len(result.history)} candidates "
        f"({result.evaluated} evaluated now, {result.reused} from history) in {result.seconds:.1f}s",
        f"{'rank':>4}  {'arch':<{len(b['arch'])}}  {'fitness':>8}  {'loss':>8}  {'params':>8}  {'MACs/tok':>8}  gen",
    ]
    for i, r in enumerate(result.top(k), 1):
        lines.append(
            f"{i:>4}  {r['arch']}  {r['fitness']:>8.4f}  {r['loss']:>8.4f}  {human(r['params']):>8}  "
            f"{human(r['macs_per_token']):>8}  {r['generation']:>3}"
        )
    if result.out_dir is not None:
        lines.append(f"best: {b['arch']} (fitness {b['fitness']:.4f}); results in {result.out_dir}")
    if "ranking" in b:
        lines.append(("ranking: " if b["ranking"]["meaningful"] else "warning: ") + b["ranking"]["note"])
    return "\n".join(lines)


def generation_curve(records: list[dict]) -> tuple[list[int], list[float], list[float]]:
    """Generations, best fitness so far, and mean fitness of each generation."""
    by_gen: dict[int, list[float]] = {}
    for r in records:
        if not math.isnan(r["fitness"]):
            by_gen.setdefault(int(r["generation"]), []).append(r["fitness"])
    gens, best, mean, running = [], [], [], -math.inf
    for g in sorted(by_gen):
        running = max(running, max(by_gen[g]))
        gens.append(g)
        best.append(running)
        mean.append(sum(by_gen[g]) / len(by_gen[g]))
    return gens, best, mean


def _searches_beside(out_dir: Path) -> list[tuple[str, Path]]:
    """(strategy, folder) of this search and of sibling folders holding a search with another strategy."""

    def strategy_of(d: Path) -> str | None:
        try:
            return json.loads((d / CONFIG).read_text(encoding="utf-8"))["config"]["strategy"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    own = strategy_of(out_dir)
    found = [(own or "search", out_dir)]
    parent = out_dir.resolve().parent
    for d in sorted(p for p in parent.iterdir() if p.is_dir() and p.resolve() != out_dir.resolve()):
        s = strategy_of(d)
        if s is not None and s != own and (d / HISTORY).exists():
            found.append((s, d))
    return found


def plot_fitness(out_dir: str | Path) -> Path:
    """``fitness.png``: best-so-far and mean fitness per generation, with sibling searches of the other strategy."""

    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    out_dir = Path(out_dir)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = ["#c44e52", "#4c72b0", "#55a868", "#8172b2", "#937860"]
    for i, (strategy, d) in enumerate(_searches_beside(out_dir)):
        gens, best, mean = generation_curve(read_history(d / "history.jsonl"))
        if not gens:
            continue
        label = strategy if d == out_dir or d.name == strategy else f"{strategy} ({d.name})"
        c = colours[i % len(colours)]
        ax.plot(gens, best, "-o", color=c, markersize=3, label=f"{label}: best so far")
        ax.plot(gens, mean, "--", color=c, alpha=0.7, label=f"{label}: generation mean")
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("fitness (supernet MLM accuracy)")
    ax.set_title("Search progress")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = out_dir / "fitness.png"
    save(fig, path)
    return path


def plot_top_archs(records: list[dict], path: str | Path) -> Path:
    """``top_archs.png``: one row per arch (best on top), one coloured cell per slot."""
    from matplotlib.patches import Patch, Rectangle

    plt = pyplot()
    path = Path(path)
    slots = [Arch.parse(r["arch"]) for r in records]
    n_slots = max((len(a) for a in slots), default=1)
    rows = max(len(records), 1)
    fig, ax = plt.subplots(figsize=(2.5 + 0.32 * n_slots, 1.2 + 0.38 * rows))
    for i, r in enumerate(records):
        y = rows - 1 - i
        for j, op in enumerate(slots[i]):
            ax.add_patch(Rectangle((j, y), 1, 1, facecolor=TYPE_COLOURS[op.type], edgecolor="white", linewidth=1))
            label = op.type + "".join(str(v) for v in op.settings.values())  # C5: a C slot of kernel 5
            ax.text(j + 0.5, y + 0.5, label, ha="center", va="center", fontsize=7 if len(label) == 1 else 5, color="white")
    ax.set_xlim(0, n_slots)
    ax.set_ylim(0, rows)
    ax.set_yticks([rows - 1 - i + 0.5 for i in range(len(records))])
    ax.set_yticklabels([f"{i + 1}. {r['fitness']:.4f}" for i, r in enumerate(records)], fontsize=8)
    ax.set_xticks([j + 0.5 for j in range(n_slots)])
    ax.set_xticklabels([str(j) for j in range(n_slots)], fontsize=6)
    ax.set_xlabel("slot (bottom of the stack first)")
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title("Top archs by fitness")
    used = {op.type for a in slots for op in a}
    handles = [Patch(facecolor=TYPE_COLOURS[t], label=f"{t}: {TYPE_NAMES[t]}") for t in TYPE_COLOURS if t in used or t != "I"]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.35 if rows < 4 else -0.12), ncol=3, fontsize=8, frameon=False)
    save(fig, path)
    return path
