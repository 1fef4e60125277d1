"""Plot helpers shared by the reports: matplotlib's Agg backend (no display), PNGs written atomically."""

from __future__ import annotations

import io
from pathlib import Path

from lvbert.utils import atomic_write_bytes

COLOURS = ["#c44e52", "#4c72b0", "#55a868", "#8172b2", "#937860", "#da8bc3", "#8c8c8c", "#ccb974"]


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_curves(series: dict, path: str | Path, xlabel: str, ylabel: str, title: str = "",
                hlines: dict[str, float] | None = None, bands: dict | None = None) -> Path:  # fmt: skip
    """One line per ``series[label] = (xs, ys, linestyle)``; ``hlines[label] = y`` as grey dashed lines;
    ``bands[label] = (xs, lo, hi)`` shaded around the series of the same label (e.g. seed min-max)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for i, (label, (xs, ys, style)) in enumerate(series.items()):
        c = COLOURS[i % len(COLOURS)]
        ax.plot(xs, ys, style, color=c, marker="o", markersize=2.5, label=label)
        if bands and label in bands:
            bx, lo, hi = bands[label]
            ax.fill_between(bx, lo, hi, color=c, alpha=0.15, linewidth=0)
    for label, y in (hlines or {}).items():
        ax.axhline(y, color="#555555", linestyle=":", linewidth=1.2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return save(fig, path)
