"""GLUE metrics on plain Python sequences: accuracy, F1, Matthews correlation, Pearson, Spearman.

Written out (no scikit-learn) so the formulas can be read and are pinned by
hand-computed test cases. Degenerate inputs (a constant prediction vector, an
empty confusion row) give 0.0, as scikit-learn's Matthews and F1 do, instead of
NaN, so that results stay valid JSON and "best epoch" comparisons stay ordered.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def _check(preds: Sequence, labels: Sequence) -> None:
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("no examples to score")


def accuracy(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction of predictions equal to the label."""
    _check(preds, labels)
    return sum(int(p == y) for p, y in zip(preds, labels)) / len(labels)


def f1(preds: Sequence[int], labels: Sequence[int], positive: int = 1) -> float:
    """Binary F1 of class ``positive`` (GLUE's MRPC and QQP: positive = 1, "paraphrase"/"duplicate")."""
    _check(preds, labels)
    tp = sum(1 for p, y in zip(preds, labels) if p == positive and y == positive)
    fp = sum(1 for p, y in zip(preds, labels) if p == positive and y != positive)
    fn = sum(1 for p, y in zip(preds, labels) if p != positive and y == positive)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def macro_f1(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Unweighted mean of the per-class F1 over the classes present in labels or predictions."""
    _check(preds, labels)
    classes = sorted(set(labels) | set(preds))
    return sum(f1(preds, labels, positive=c) for c in classes) / len(classes)


def matthews_corr(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation coefficient (CoLA), multi-class form (Gorodkin 2004).

    For two classes it is (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
    """
    _check(preds, labels)
    classes = sorted(set(labels) | set(preds))
    n = len(labels)
    correct = sum(int(p == y) for p, y in zip(preds, labels))
    t = [sum(1 for y in labels if y == c) for c in classes]  # true count per class
    p = [sum(1 for q in preds if q == c) for c in classes]  # predicted count per class
    cov_yp = correct * n - sum(tk * pk for tk, pk in zip(t, p))
    cov_pp = n * n - sum(pk * pk for pk in p)
    cov_yy = n * n - sum(tk * tk for tk in t)
    if cov_pp == 0 or cov_yy == 0:
        return 0.0
    return cov_yp / math.sqrt(cov_pp * cov_yy)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equally long sequences (0.0 when either is constant)."""
    _check(x, y)
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return 0.0
    return sxy / math.sqrt(sxx * syy)


def _ranks(x: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation: Pearson correlation of the (tie-averaged) ranks."""
    _check(x, y)
    return pearson(_ranks(x), _ranks(y))


# Metric name -> (function, takes class ids (True) or real values (False)).
METRICS = {
    "accuracy": (accuracy, True),
    "f1": (f1, True),
    "macro_f1": (macro_f1, True),
    "mcc": (matthews_corr, True),
    "pearson": (pearson, False),
    "spearman": (spearman, False),
}


def compute(names: Sequence[str], preds: Sequence, labels: Sequence) -> dict[str, float]:
    """Compute each named metric of :data:`METRICS`; returns ``{name: value}``."""
    return {name: float(METRICS[name][0](preds, labels)) for name in names}


def summarise(runs: list[dict]) -> dict:
    """{"split/metric": {"median", "min", "max"}} over the runs' best dev results (plus "score")."""
    keys = [f"{s}/{m}" for s, r in runs[0]["dev"].items() for m in r] + ["score"]

    def value(run, key):
        if key == "score":
            return run["score"]
        s, m = key.split("/")
        return run["dev"][s][m]

    out = {}
    for key in keys:
        vals = [value(r, key) for r in runs]
        out[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau (scipy's tau-b); NaN below two points."""
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic) if len(x) >= 2 else float("nan")

