"""The search space: counting, sampling, membership, variation, fairness, feasibility (no torch)."""

import random
import sys
from collections import Counter

import pytest

from lvbert.arch import LV_BERT_SMALL, count_params, get_size
from lvbert.errors import LvBertError
from lvbert.space import ArchSampler
from lvbert.space import SearchSpace, all_archs


def test_space_and_search_work_without_torch():
    # sys.modules["torch"] = None makes every "import torch" fail, as on a machine without it.
    import subprocess

    code = (
        "import sys, random; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from lvbert.space import SearchSpace\n"
        "from lvbert.search import EvolutionConfig, run_search\n"
        "s = SearchSpace(num_slots=6); s.sample(random.Random(0))\n"
        "cfg = EvolutionConfig(population=4, generations=2, parents=2, mutations=1, crossovers=1)\n"
        "run_search(s, lambda a: [{'fitness': x.count('A'), 'loss': 0.0} for x in a], cfg, None, progress=False)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_size_of_the_paper_space():
    assert SearchSpace().size() == 3**24 == 282_429_536_481
    assert SearchSpace(allowed="AF").size() == 2**24
    assert SearchSpace(num_slots=4, allowed=["CAF", "AF", "F", "CA"]).size() == 3 * 2 * 1 * 2


def test_constrained_size_is_exact_on_a_small_space():
    space = SearchSpace(num_slots=6, allowed=["CAF", "AF", "CAF", "CF", "CAF", "A"], min_counts={"A": 2}, max_counts={"F": 2}, max_params=count_params("AAFFCC", get_size("small")))
    brute = sum(space.contains(a) for a in all_archs(space))
    assert space.size(constrained=True) == space.num_feasible() == brute == space.check_feasible()
    assert 0 < brute < space.size()


def test_sample_is_uniform_per_slot_and_reproducible():
    space = SearchSpace(num_slots=4, allowed=["CAF", "AF", "F", "CAF"])
    a = [space.sample(random.Random(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(0)
    draws = [space.sample(rng) for _ in range(3000)]
    assert all(space.contains(d) for d in draws)
    for slot, ok in enumerate(space.allowed):
        counts = Counter(d[slot] for d in draws)
        assert set(counts) == set(ok)
        for t in ok:
            assert abs(counts[t] / 3000 - 1 / len(ok)) < 0.04


def test_sample_does_not_touch_global_random_state():
    random.seed(123)
    state = random.getstate()
    space = SearchSpace(max_params=13_500_000, min_counts={"A": 3})
    rng = random.Random(0)
    for _ in range(50):
        space.mutate(space.crossover(space.sample(rng), space.sample(rng), rng), rng, 0.2)
    ArchSampler(space.allowed, 0, "fair")(5)
    assert random.getstate() == state


def test_sample_meets_constraints():
    space = SearchSpace(max_params=12_000_000, min_counts={"C": 2}, max_counts={"F": 4})
    rng = random.Random(1)
    for _ in range(200):
        arch = space.sample(rng)
        assert space.contains(arch)
        assert space.params(arch) <= 12_000_000 and arch.count("C") >= 2 and arch.count("F") <= 4


def test_sample_gives_up_with_a_clear_error():
    # Feasible (all-A-ish archs) but a vanishing share of the space.
    space = SearchSpace(max_params=count_params("A" * 24, get_size("small")) + 20_000, max_tries=200)
    assert space.check_feasible() > 0
    with pytest.raises(LvBertError, match="no arch met the constraints in 200 uniform draws"):
        space.sample(random.Random(0))


def test_contains_and_violations():
    space = SearchSpace(max_params=13_500_000, min_counts={"A": 4}, max_counts={"C": 10})
    assert space.contains(LV_BERT_SMALL) and LV_BERT_SMALL in space
    assert space.violations(LV_BERT_SMALL) == []
    assert space.violations("AF") == ["2 slots, the space has 24"]
    assert "slot 0 is 'X'" in space.violations("X" + "A" * 23)[0]
    v = space.violations("F" * 24)
    assert any("0 x A, at least 4 required" in s for s in v)
    assert any("max_params 13.50M" in s for s in v)
    assert space.violations("C" * 12 + "A" * 12) == ["12 x C, at most 10 allowed"]
    per_slot = SearchSpace(num_slots=3, allowed=["AF", "CAF", "C"])
    assert per_slot.contains("ACC") and not per_slot.contains("CCC")
    assert per_slot.violations("ACA") == ["slot 2 is 'A', allowed there: C"]


def test_mutate_properties():
    space = SearchSpace(num_slots=24, allowed=["AF"] * 12 + ["CAF"] * 12)
    rng = random.Random(0)
    arch = space.sample(rng)
    assert space.mutate(arch, rng, 0.0) == arch
    changed = 0
    for _ in range(300):
        m = space.mutate(arch, rng, 0.5)
        assert len(m) == 24 and space.contains(m)  # stays inside the per-slot sets
        changed += sum(x != y for x, y in zip(m, arch))
    # each slot changes with prob 0.5 * (1 - 1/k): 12 slots k=2, 12 slots k=3 -> 0.25*12 + 1/3*12 = 7 per mutant
    assert abs(changed / 300 - 7) < 0.6
    with pytest.raises(LvBertError):
        space.mutate(arch, rng, 1.5)


def test_crossover_properties():
    space = SearchSpace()
    rng = random.Random(0)
    a, b = "C" * 24, "F" * 24
    from_a = 0
    for _ in range(200):
        c = space.crossover(a, b, rng)
        assert set(c) <= {"C", "F"}
        from_a += c.count("C")
    assert abs(from_a / (200 * 24) - 0.5) < 0.03
    assert space.crossover(LV_BERT_SMALL, LV_BERT_SMALL, rng) == LV_BERT_SMALL
    with pytest.raises(LvBertError):
        space.crossover("CAF", b, rng)


def test_fair_sampler_balance():
    space = SearchSpace(num_slots=5, allowed=["CAF", "AF", "F", "CAF", "CA"])
    sampler = ArchSampler(space.allowed, seed=0, mode="fair")
    draws = [sampler(step) for step in range(12)]  # lcm(3, 2, 1) = 6: two full rounds of every slot
    for slot, ok in enumerate(space.allowed):
        k = len(ok)
        for start in range(0, 12 - k + 1, k):  # every aligned group of k draws uses each type once
            assert sorted(d[slot] for d in draws[start : start + k]) == sorted(ok)
    # rounds are random permutations, not a fixed cycle
    firsts = {ArchSampler(SearchSpace().allowed, seed=s, mode="fair")(0)[0] for s in range(20)}
    assert firsts == {"C", "A", "F"}


def test_fair_sampler_is_a_pure_function_of_the_step():
    """What a resumed run needs: a new sampler (after a restart) draws what the old one would have."""
    space = SearchSpace(num_slots=6)
    a = ArchSampler(space.allowed, seed=0, mode="fair")
    a(0)
    expected = [a(step) for step in range(1, 6)]
    b = ArchSampler(space.allowed, seed=0, mode="fair")
    assert [b(step) for step in range(1, 6)] == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_params": 5_000_000}, "max_params 5.00M is below the cheapest arch in the space \\(10.33M parameters, e.g. A{24}\\)"),
        ({"max_macs": 1_000_000}, "max_macs 1.00M is below the cheapest arch"),
        ({"min_counts": {"A": 13, "C": 12}}, "sum to 25, more than the 24 slots"),
        ({"allowed": "AF", "min_counts": {"C": 1}}, "C is allowed in only 0 of 24 slots"),
        ({"min_counts": {"A": 5}, "max_counts": {"A": 4}}, "exceeds max_counts"),
        ({"max_counts": {"C": 5, "A": 5, "F": 5}}, "leave fewer than the 24 slots"),
        # per-slot sets: A only in slots 0-1, F capped at 1 -> 22 slots must be C, but C is capped at 20
        ({"num_slots": 24, "allowed": ["AF"] * 2 + ["CF"] * 22, "max_counts": {"F": 1, "C": 20}}, "no arch meets the type counts"),
        # 10.4M parameters allows only a few C over all-A, and those archs need more than 7.0M MACs/token
        ({"max_params": 10_400_000, "max_macs": 7_000_000}, "no arch meets max_params and max_macs together"),
    ],
)
def test_infeasible_constraints_are_detected_before_evaluation(kwargs, message):
    with pytest.raises(LvBertError, match=message):
        SearchSpace(**kwargs).check_feasible()


def test_cheapest_and_most_expensive_arch_are_exact():
    space = SearchSpace(min_counts={"F": 3}, max_counts={"A": 20})
    cheap, dear = space.extremes("params")
    assert cheap.count("F") == 3 and cheap.count("A") == 20 and cheap.count("C") == 1
    assert dear == "F" * 24
    exhaustive = SearchSpace(num_slots=5, allowed=["CA", "CAF", "AF", "CAF", "C"], min_counts={"A": 1})
    feasible = [a for a in all_archs(exhaustive) if exhaustive.contains(a)]
    lo, hi = exhaustive.extremes("params")
    assert exhaustive.params(lo) == min(map(exhaustive.params, feasible))
    assert exhaustive.params(hi) == max(map(exhaustive.params, feasible))


def test_latency_constraint_uses_the_table():
    table = {"C": 1.0, "A": 1.5, "F": 2.0, "embeddings": 0.5}
    space = SearchSpace(num_slots=4, max_latency=5.5, latency=table)
    assert space.predicted_latency("CCAF") == pytest.approx(0.5 + 1 + 1 + 1.5 + 2)
    assert not space.contains("CCAF") and space.contains("CCCA")
    assert space.costs("CCCA")["latency"] == pytest.approx(5.0)
    with pytest.raises(LvBertError, match="max_latency 3.000 is below"):
        SearchSpace(num_slots=4, max_latency=3.0, latency=table).check_feasible()
    with pytest.raises(LvBertError, match="needs a latency table"):
        SearchSpace(max_latency=3.0)


def test_bad_arguments():
    for kwargs in ({"allowed": "CAX"}, {"allowed": ["CAF"] * 3}, {"min_counts": {"Q": 1}}, {"max_counts": {"A": -1}}, {"max_params": 0}, {"num_slots": 0}, {"seq_len": 0}):
        with pytest.raises(LvBertError):
            SearchSpace(**kwargs)


def test_dict_round_trip_and_repr():
    space = SearchSpace(num_slots=4, allowed=["CAF", "AF", "F", "CA"], max_params=9e6, min_counts={"a": 1}, size="tiny", seq_len=64)
    again = SearchSpace.from_dict(space.to_dict())
    assert again == space and again.allowed == ["CAF", "AF", "F", "AC".replace("AC", "CA")]
    r = repr(SearchSpace(max_params=13_500_000, min_counts={"A": 4}))
    assert r == "SearchSpace(24 slots of CAF, 282,429,536,481 archs, hidden 256, max_params=13.50M, 4<=A<=24)"
    with pytest.raises(LvBertError, match="unknown search space field"):
        SearchSpace.from_dict({"slots": 3})
