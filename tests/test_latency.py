"""The calibrated latency model: the fit, additivity of the calibrated table, caching."""

from __future__ import annotations

import json
import random

import pytest

from lvbert.search.latency import LatencyTable, calibration_archs, fit_latency
from lvbert.space import SearchSpace


def test_fit_recovers_known_coefficients_and_never_goes_negative():
    rng = random.Random(0)
    feats = [{"C": rng.uniform(0, 5), "A": rng.uniform(0, 5), "F": rng.uniform(0, 5)} for _ in range(12)]
    measured = [1.5 * f["C"] + 0.8 * f["A"] + 1.1 * f["F"] + 2.0 for f in feats]
    scale, offset = fit_latency(feats, measured)
    assert scale == pytest.approx({"C": 1.5, "A": 0.8, "F": 1.1}) and offset == pytest.approx(2.0)
    # a feature that explains nothing (would fit negative) is fixed at 0; the intercept is never negative
    measured = [2.0 * f["C"] - 0.5 * f["A"] for f in feats]
    scale, offset = fit_latency(feats, measured)
    assert min(scale.values()) >= 0 and offset >= 0


def test_calibration_archs_vary_their_mix():
    archs = calibration_archs(["C", "A", "F"], 12, 8)
    assert len(set(archs)) == 8 and all(len(a.split()) == 12 for a in archs)
    counts = [a.split().count("A") for a in archs]
    assert max(counts) - min(counts) >= 4
    assert archs == calibration_archs(["C", "A", "F"], 12, 8)  # reproducible


def test_calibrated_table_stays_an_exact_additive_constraint(tmp_path):
    cache = tmp_path / "latency.json"
    table = LatencyTable.load_or_measure("tiny", batch_size=2, seq_len=16, cache=cache, repeats=2, calibrate=6)
    cal = table.calibration
    assert cal and len(cal["archs"]) == 6 and cal["offset"] >= 0 and all(c >= 0 for c in cal["scale"].values())
    costs = table.costs()
    for arch in ("CAFCAF", "AAAAAA", "CCCFFF"):
        assert table.predict(arch) == pytest.approx(costs["embeddings"] + sum(costs[t] for t in arch))
        assert table.raw_predict(arch) == pytest.approx(table.embeddings + sum(table.per_type[t] for t in arch))
    assert any(k.endswith("calibrated 6") for k in json.loads(cache.read_text()))
    again = LatencyTable.load_or_measure("tiny", batch_size=2, seq_len=16, cache=cache, repeats=2, calibrate=6)
    assert again.calibration == cal  # cached with the table
    space = SearchSpace(num_slots=6, size="tiny", max_latency=table.predict("AAAAAA") * 1.001, latency=costs)
    assert all(table.predict(space.sample(random.Random(i))) <= space.max_latency for i in range(5))
