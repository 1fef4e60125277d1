"""Evolution and random search with a toy fitness (no torch): bookkeeping, seeds, constraints,
caching, resume after a kill, equal budgets, output files and plots."""

import hashlib
import json

import pytest

from lvbert.errors import LvBertError
from lvbert.search import EvolutionConfig, read_history, run_search
from lvbert.search.report import _searches_beside, generation_curve
from lvbert.space import SearchSpace

SMALL = dict(population=12, generations=6, parents=4, mutations=5, crossovers=5, mutation_prob=0.2)


class Killed(RuntimeError):
    pass


class ToyFitness:
    """Fitness = share of 'A' in the top half + a little hash noise; fails loudly on a repeat."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.seen: list[str] = []
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, archs):
        self.calls += 1
        out = []
        for a in archs:
            assert a not in self.seen, f"{a} evaluated twice"
            if self.fail_after is not None and len(self.seen) >= self.fail_after:
                raise Killed("simulated kill")
            self.seen.append(a)
            noise = int(hashlib.sha256(a.encode()).hexdigest()[:8], 16) / 2**32
            half = len(a) // 2
            out.append({"fitness": a[half:].count("A") / half + 0.05 * noise, "loss": 1 - a.count("A") / len(a), "extra": 1})
        return out


def key(history):
    return [(r["arch"], r["generation"], r["fitness"], r["loss"]) for r in history]


def search(space=None, out=None, fitness=None, **kw):
    cfg = EvolutionConfig(**{**SMALL, **kw})
    return run_search(space or SearchSpace(), fitness or ToyFitness(), cfg, out, progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"population": 0}, "population must be a positive integer"),
        ({"generations": -1}, "generations must be a positive integer"),
        ({"parents": 0}, "parents must be a positive integer"),
        ({"mutations": -2}, "mutations must be a non-negative integer"),
        ({"mutations": 0, "crossovers": 0}, "evolution needs mutations or crossovers"),
        ({"strategy": "annealing"}, "unknown strategy 'annealing'"),
        ({"mutation_prob": 0.0}, "mutation_prob must be in"),
        ({"parents": 60}, "parents \\(60\\) cannot exceed population"),
        ({"mutations": 30, "crossovers": 30}, "exceed population"),
        ({"parents": 1}, "crossovers need at least 2 parents"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(LvBertError, match=message):
        EvolutionConfig(**kwargs)


def test_defaults_are_spos():
    cfg = EvolutionConfig()
    assert (cfg.population, cfg.generations, cfg.parents, cfg.mutations, cfg.crossovers, cfg.mutation_prob) == (50, 20, 10, 25, 25, 0.1)
    assert cfg.budget == 1000
    assert EvolutionConfig.from_dict(cfg.to_dict()) == cfg


def test_bookkeeping_caching_and_constraints():
    space = SearchSpace(max_params=13_000_000, min_counts={"C": 2}, max_counts={"F": 8})
    fit = ToyFitness()
    res = search(space, fitness=fit)
    archs = [r["arch"] for r in res.history]
    assert len(archs) == len(set(archs)) == 12 * 6  # full budget, no duplicates
    assert sorted(fit.seen) == sorted(archs) and res.evaluated == 72 and res.reused == 0
    assert fit.calls == 6  # one batch per generation
    assert [sum(r["generation"] == g for r in res.history) for g in range(6)] == [12] * 6
    for r in res.history:
        assert space.contains(r["arch"]), space.violations(r["arch"])
        assert r["params"] == space.params(r["arch"]) and r["macs_per_token"] == space.macs(r["arch"])
        assert r["strategy"] == "evolution" and r["extra"] == 1
    best = max(res.history, key=lambda r: r["fitness"])
    assert res.best["arch"] == best["arch"] and res.best["fitness"] == best["fitness"]
    bests = [g["best"] for g in res.generations]
    assert bests == sorted(bests)  # best so far never drops (elitist parents)
    assert res.generations[-1]["mean"] > res.generations[0]["mean"]  # evolution improves the toy objective


def test_seeded_and_reproducible():
    a, b = search(seed=7), search(seed=7)
    assert key(a.history) == key(b.history)
    assert key(search(seed=8).history) != key(a.history)


def test_random_search_has_the_same_budget():
    evo, rnd = search(), search(strategy="random")
    assert len(rnd.history) == len(evo.history) == 72
    assert {r["strategy"] for r in rnd.history} == {"random"}
    assert len({r["arch"] for r in rnd.history}) == 72
    assert evo.best["fitness"] > rnd.best["fitness"]  # on this easy objective


def test_a_small_space_runs_out_without_duplicates():
    space = SearchSpace(num_slots=2)  # 9 archs
    res = search(space, population=4, generations=5, parents=2, mutations=2, crossovers=1)
    assert sorted(r["arch"] for r in res.history) == sorted({a + b for a in "CAF" for b in "CAF"})


def test_bad_fitness_results_are_reported():
    with pytest.raises(ValueError, match="expected a list of as many dicts"):
        search(fitness=lambda archs: [{"fitness": 1.0, "loss": 0.0}])
    with pytest.raises(ValueError, match="'fitness' and 'loss'"):
        search(fitness=lambda archs: [{"acc": 1.0} for _ in archs])


def test_infeasible_space_fails_before_any_evaluation(tmp_path):
    fit = ToyFitness()
    with pytest.raises(LvBertError, match="below the cheapest arch"):
        search(SearchSpace(max_params=1_000_000), tmp_path / "s", fitness=fit)
    assert fit.calls == 0 and not (tmp_path / "s").exists()


def test_output_files_and_plots(tmp_path):
    out = tmp_path / "evolution"
    res = search(out=out)
    lines = (out / "history.jsonl").read_text().splitlines()
    assert len(lines) == 72
    rec = json.loads(lines[0])
    assert {"arch", "generation", "fitness", "loss", "params", "macs_per_token", "seconds", "strategy"} <= set(rec)
    assert key(read_history(out / "history.jsonl")) == key(res.history)
    best = json.loads((out / "best.json").read_text())
    assert best["arch"] == res.best["arch"] and {"fitness", "loss", "params", "macs_per_token"} <= set(best)
    top = (out / "top.md").read_text()
    assert top.count("\n| ") == 11 and f"`{res.best['arch']}`" in top.splitlines()[4]  # header + 10 rows
    saved = json.loads((out / "search_config.json").read_text())
    assert saved["config"]["population"] == 12 and saved["space"]["num_slots"] == 24
    for png in ("fitness.png", "top_archs.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A random search beside it: its fitness plot draws both strategies.
    search(out=tmp_path / "random", strategy="random")
    assert [s for s, _ in _searches_beside(tmp_path / "random")] == ["random", "evolution"]
    gens, best_curve, mean = generation_curve(res.history)
    assert gens == list(range(6)) and best_curve == [g["best"] for g in res.generations]


def test_existing_output_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(LvBertError, match="not empty; pass --resume"):
        search(out=out)
    assert (out / "notes.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1
    with pytest.raises(LvBertError, match="does not hold a search"):
        run_search(SearchSpace(), ToyFitness(), EvolutionConfig(**SMALL), out, resume=True, progress=False)


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, chunk_size):
    space = SearchSpace(max_params=13_500_000)
    cfg = EvolutionConfig(**SMALL, seed=3)
    full = run_search(space, ToyFitness(), cfg, tmp_path / "full", progress=False)

    out = tmp_path / "killed"
    with pytest.raises(Killed):
        run_search(space, ToyFitness(fail_after=31), cfg, out, progress=False, chunk_size=chunk_size)
    done = read_history(out / "history.jsonl")
    assert len(done) == (31 if chunk_size == 1 else 24)  # whole generations when evaluated in batches
    with open(out / "history.jsonl", "a") as f:  # killed in the middle of writing a line
        f.write('{"arch": "CAFCAF", "generat')

    fit = ToyFitness()
    resumed = run_search(space, fit, cfg, out, resume=True, progress=False, chunk_size=chunk_size)
    assert not set(fit.seen) & {r["arch"] for r in done}  # nothing evaluated twice
    assert len(fit.seen) == 72 - len(done) and resumed.reused == len(done)
    assert resumed.best["arch"] == full.best["arch"] and resumed.best["fitness"] == full.best["fitness"]
    assert key(resumed.history) == key(full.history)
    assert key(read_history(out / "history.jsonl")) == key(full.history)  # truncated line was cut

    again = ToyFitness()  # resuming a finished search evaluates nothing
    run_search(space, again, cfg, out, resume=True, progress=False)
    assert again.calls == 0


def test_resume_refuses_other_settings_and_corrupt_history(tmp_path):
    out = tmp_path / "s"
    search(out=out, generations=2)
    with pytest.raises(LvBertError, match="settings differ from the saved search \\(config.seed\\)"):
        run_search(SearchSpace(), ToyFitness(), EvolutionConfig(**{**SMALL, "generations": 2}, seed=1), out, resume=True, progress=False)
    lines = (out / "history.jsonl").read_text().splitlines()
    lines[3] = lines[3][:20]
    (out / "history.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(LvBertError, match="line 4 is corrupt"):
        run_search(SearchSpace(), ToyFitness(), EvolutionConfig(**{**SMALL, "generations": 2}), out, resume=True, progress=False)


def test_flat_fitness_warns_and_best_json_says_the_ranking_is_not_meaningful(tmp_path, capsys):
    from lvbert.search.evolution import fitness_noise

    space = SearchSpace(num_slots=8)
    flat = lambda archs: [{"fitness": 0.0444 + (hash(a) % 3) * 1e-4, "loss": 6.8, "masked": 2000} for a in archs]  # noqa: E731
    res = run_search(space, flat, EvolutionConfig(**SMALL), tmp_path / "flat", baselines={"unigram_accuracy": 0.042})
    err = capsys.readouterr().err
    assert err.count("lvbert: warning: generation") == SMALL["generations"]  # every generation is flat
    assert "the ranking is not meaningful" in err
    best = json.loads((tmp_path / "flat" / "best.json").read_text())
    # the threshold: two binomial standard errors at the mean fitness over 2000 masked tokens
    assert best["ranking"]["threshold"] == pytest.approx(2 * (0.0445 * 0.9555 / 2000) ** 0.5, rel=0.01)
    assert best["ranking"]["meaningful"] is False and best["baselines"] == {"unigram_accuracy": 0.042}
    assert "not meaningful" in (tmp_path / "flat" / "top.md").read_text()
    assert res.best["ranking"]["spread"] < fitness_noise(res.history)

    spread = lambda archs: [{"fitness": 0.04 + 0.01 * a.count("C"), "loss": 6.0, "masked": 2000} for a in archs]  # noqa: E731
    res = run_search(space, spread, EvolutionConfig(**SMALL), tmp_path / "spread")
    assert res.best["ranking"]["meaningful"] is True
    assert "warning: generation 0" not in capsys.readouterr().err  # the random generation 0 is spread out
