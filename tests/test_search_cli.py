"""``lvbert search`` end to end on a tiny supernet trained for a few steps on real text:
both strategies side by side (plots compare them), resume after a kill through the recipe,
and one-line errors (exit status 2) for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lvbert.cli import main  # noqa: E402
from lvbert.objectives import evaluate_mlm  # noqa: E402
from lvbert.recipes.search import SearchRunConfig, search  # noqa: E402
from lvbert.search import read_history  # noqa: E402
from lvbert.search.fitness import SupernetFitness, cxx_compiler  # noqa: E402
from lvbert.search.report import _searches_beside  # noqa: E402

SEARCH = ["--population", "6", "--generations", "3", "--parents", "3", "--mutations", "2", "--crossovers", "2",
          "--mutation-prob", "0.3", "--valid-sequences", "16", "--batch-size", "8", "--device", "cpu"]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is fastest, and on a shared machine two threads can be 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def supernet(real_data, tmp_path_factory) -> Path:
    from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet

    out = tmp_path_factory.mktemp("search_cli") / "supernet"
    cfg = SupernetTrainConfig(data=str(real_data), out=str(out), size="tiny", num_slots=6, steps=4, batch_size=8,
                              lr=2e-3, warmup_steps=1, log_every=2, save_every=100, eval_every=100,
                              eval_sequences=8, progress=False, device="cpu")  # fmt: skip
    return train_supernet(cfg)


def _run(capsys, *args) -> tuple[int, str, str]:
    rc = main(["search", *map(str, args)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_search_both_strategies_writes_results_and_compares_them(supernet, real_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--supernet", supernet, "--data", real_data, *SEARCH, "--max-params", "1.3M", "--min-counts", "A=1"]
    rc, out, err = _run(capsys, *common, "--out", runs / "evolution")
    assert rc == 0, err
    assert "evolution search: 18 candidates" in out and "best:" in out  # the summary table
    assert sum(line.startswith("generation ") for line in err.splitlines()) == 3  # one progress line per generation
    rc, out, _ = _run(capsys, *common, "--out", runs / "random", "--strategy", "random", "--no-progress")
    assert rc == 0 and "random search: 18 candidates" in out

    for name in ("evolution", "random"):
        d = runs / name
        hist = read_history(d / "history.jsonl")
        assert len(hist) == 18 and len({r["arch"] for r in hist}) == 18  # nothing evaluated twice
        assert [r["generation"] for r in hist] == [0] * 6 + [1] * 6 + [2] * 6
        for r in hist:
            assert {"arch", "fitness", "loss", "params", "macs_per_token", "seconds"} <= set(r)
            assert r["params"] <= 1_300_000 and "A" in r["arch"] and 0 <= r["fitness"] <= 1
        best = json.loads((d / "best.json").read_text())
        assert best["fitness"] == max(r["fitness"] for r in hist)
        assert (d / "top.md").read_text().count("\n| ") == 1 + 10  # header + the best ten
        assert (d / "fitness.png").stat().st_size > 1000 and (d / "top_archs.png").stat().st_size > 1000
        saved = json.loads((d / "search_config.json").read_text())
        assert saved["fitness"]["valid_sequences"] == 16 and saved["fitness"]["tokenizer"]

    # the later folder's plot draws both curves: evolution vs random at the same budget
    assert sorted(s for s, _ in _searches_beside(runs / "random")) == ["evolution", "random"]

    # the fitness is the MLM accuracy of the extracted model with inherited weights, exactly
    from lvbert.data.masking import fixed_mask_validation
    from lvbert.supernet import LvBertSupernet

    best = json.loads((runs / "evolution" / "best.json").read_text())
    model = LvBertSupernet.from_pretrained(str(supernet)).extract(best["arch"])
    ev = evaluate_mlm(model, fixed_mask_validation(real_data, 16, seed=0), batch_size=8)
    assert ev["mlm_accuracy"] == best["fitness"]


class Killed(RuntimeError):
    pass


def test_resume_after_a_kill_equals_an_uninterrupted_search(supernet, real_data, tmp_path, monkeypatch, capsys):
    def cfg(out):
        return SearchRunConfig(supernet=str(supernet), data=str(real_data), out=str(out), population=6, generations=3,
                               parents=3, mutations=2, crossovers=2, mutation_prob=0.3, valid_sequences=16,
                               batch_size=8, fitness_chunk=1, device="cpu", progress=False)  # fmt: skip

    straight = search(cfg(tmp_path / "a"))
    # archs evaluated 4 per call (sorted by prefix, the cache shared): the same search, number for number
    chunked = search(SearchRunConfig(**{**vars(cfg(tmp_path / "c")), "fitness_chunk": 4}))
    assert [(r["arch"], r["fitness"]) for r in chunked.history] == [(r["arch"], r["fitness"]) for r in straight.history]
    evaluated: list[str] = []
    real_evaluate = SupernetFitness.evaluate

    def killed_after_7(self, arch):
        if len(evaluated) == 7:
            raise Killed("simulated kill mid-search")
        evaluated.append(arch)
        return real_evaluate(self, arch)

    monkeypatch.setattr(SupernetFitness, "evaluate", killed_after_7)
    with pytest.raises(Killed):
        search(cfg(tmp_path / "b"))
    assert len(read_history(tmp_path / "b" / "history.jsonl")) == 7  # written arch by arch
    monkeypatch.setattr(SupernetFitness, "evaluate", lambda self, arch: (evaluated.append(arch), real_evaluate(self, arch))[1])
    before = len(evaluated)
    resumed = search(cfg(tmp_path / "b"), resume=True)
    assert resumed.evaluated == 18 - 7 and len(evaluated) - before == 11 and len(set(evaluated)) == 18
    assert resumed.best["arch"] == straight.best["arch"] and resumed.best["fitness"] == straight.best["fitness"]
    key = lambda r: (r["arch"], r["generation"], r["fitness"], r["loss"])  # noqa: E731
    assert [key(r) for r in resumed.history] == [key(r) for r in straight.history]
    # a resume with settings that change the fitness is refused
    with pytest.raises(Exception, match="fitness.bf16"):
        search(SearchRunConfig(**{**vars(cfg(tmp_path / "b")), "bf16": True}), resume=True)
    if cxx_compiler():  # compiled numbers differ from the eager ones by rounding: not mixed either
        with pytest.raises(Exception, match="fitness.compile"):
            search(SearchRunConfig(**{**vars(cfg(tmp_path / "b")), "compile": True}), resume=True)
    capsys.readouterr()


def _bad_supernets(supernet: Path, tmp: Path) -> dict[str, Path]:
    incomplete = tmp / "incomplete"
    incomplete.mkdir()
    shutil.copy(supernet / "config.json", incomplete / "config.json")
    af_only = tmp / "af_only"
    shutil.copytree(supernet, af_only, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    space = json.loads((af_only / "space.json").read_text())
    (af_only / "space.json").write_text(json.dumps({**space, "allowed": "AF"}))
    return {"incomplete": incomplete, "af_only": af_only}


@pytest.mark.parametrize(
    "case, args, message",
    [
        ("missing", ["--supernet", "{tmp}/nowhere"], "does not exist"),
        ("incomplete", ["--supernet", "{incomplete}"], "missing model.safetensors, space.json"),
        ("tokenizer", ["--data", "{other_data}"], "is not the supernet's"),
        ("strategy", ["--strategy", "annealing"], "unknown strategy 'annealing'"),
        ("population", ["--population", "0"], "population must be a positive integer"),
        ("generations", ["--generations=-1"], "generations must be a positive integer"),
        ("mutations", ["--mutations=-2"], "mutations must be a non-negative integer"),
        ("valid", ["--valid-sequences", "0"], "--valid-sequences must be a positive integer"),
        ("max_params", ["--max-params=-5M"], "--max-params must be positive"),
        ("count_neg", ["--min-counts=A=-1"], "A=-1 is negative"),
        ("count_type", ["--min-counts", "X=1"], "unknown layer type 'X'"),
        ("too_few", ["--max-params", "10k"], "below the cheapest arch"),
        ("min_sum", ["--min-counts", "C=4,A=4"], "more than the 6 slots"),
        ("max_sum", ["--max-counts", "C=2,A=2,F=1"], "leave fewer than the 6 slots"),
        ("narrow", ["--supernet", "{af_only}", "--allowed", "CA"], "asks for C, which the supernet was not trained with"),
        ("narrow_c", ["--supernet", "{af_only}", "--min-counts", "C=1"], "C is allowed in only 0 of 6 slots"),
        ("latency", ["--max-latency", "0.0001", "--latency-cache", "{tmp}/latency.json"], "max_latency 0.000 is below"),
        ("not_empty", ["--out", "{incomplete}"], "not empty; pass --resume"),
        ("out_is_input", ["--out", "{supernet}"], "is also the input --supernet"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(case, args, message, supernet, real_data, other_vocab_data, tmp_path, capsys,
                                          monkeypatch):
    def no_evaluation(self, arch):
        raise AssertionError("evaluated despite bad input")

    monkeypatch.setattr(SupernetFitness, "evaluate", no_evaluation)
    bad = _bad_supernets(supernet, tmp_path)
    fill = dict(tmp=tmp_path, other_data=other_vocab_data, supernet=supernet, **bad)
    base = {"--supernet": str(supernet), "--data": str(real_data), "--out": str(tmp_path / "out")}
    given = [a.format(**fill) for a in args]
    for k in list(base):
        if k in given:
            base.pop(k)
    rc, out, err = _run(capsys, *[x for kv in base.items() for x in kv], *SEARCH, *given)
    assert rc == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("lvbert: error: ") and message in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_exit_status_through_the_real_entry_point(tmp_path):
    res = subprocess.run([sys.executable, "-m", "lvbert", "search", "--supernet", str(tmp_path / "none"), "--data", "x"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "does not exist" in res.stderr


def test_latency_budget_uses_a_calibrated_table_and_measures_the_finalists(supernet, real_data, tmp_path, capsys):
    """--max-latency: the table is calibrated on measured whole models, the fittest archs are measured after."""
    out = tmp_path / "lat"
    cache = tmp_path / "latency.json"
    rc, printed, err = _run(capsys, "--supernet", supernet, "--data", real_data, *SEARCH, "--max-latency", "1000",
                            "--latency-cache", cache, "--latency-calibrate", "6", "--latency-check", "3", "--out", out)  # fmt: skip
    assert rc == 0, err
    assert "calibrated on 6 measured whole models" in printed and "latency of the best arch measured" in printed
    check = json.loads((out / "latency_check.json").read_text())
    assert len(check["archs"]) == 3 and all(r["measured_ms"] > 0 and r["within_budget"] for r in check["archs"])
    fitness = [r["fitness"] for r in check["archs"]]
    assert fitness == sorted(fitness, reverse=True)
    (table,) = json.loads(cache.read_text()).values()
    assert len(table["calibration"]["archs"]) == 6
