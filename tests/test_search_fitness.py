"""Supernet-backed fitness and latency tables, on the tiny size."""

import json
import random

import pytest

torch = pytest.importorskip("torch")
supernet_mod = pytest.importorskip("lvbert.supernet")

from lvbert.search import EvolutionConfig, run_search  # noqa: E402
from lvbert.search.latency import LatencyTable, latency_report, pearson  # noqa: E402
from lvbert.search.fitness import SupernetFitness, distributed_fitness  # noqa: E402
from lvbert.space import SearchSpace  # noqa: E402


def tiny_supernet():
    torch.manual_seed(0)
    return supernet_mod.LvBertSupernet.from_size("tiny", num_slots=6)


def valid_batch(n=10, length=16, vocab=4096):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (n, length), generator=g)
    mask = torch.ones_like(ids)
    mask[:3, 12:] = 0  # some padding
    labels = torch.full_like(ids, -100)
    chosen = (torch.rand(n, length, generator=g) < 0.25) & mask.bool()
    labels[chosen] = ids[chosen]
    ids = ids.masked_fill(chosen, 4)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": labels}


def test_fitness_is_masked_lm_accuracy_of_the_extracted_model():
    net, batch = tiny_supernet(), valid_batch()
    net.train()
    fit = SupernetFitness(net, batch, batch_size=4)
    arch = "CAFFAC"
    res = fit([arch, "AFAFAF", arch])
    assert res[0] == res[2]  # exactly the same number twice
    assert net.training  # mode restored
    model = net.extract(arch).eval()
    with torch.no_grad():
        out = model(**batch)
    targets = batch["labels"][batch["labels"] != -100]
    assert res[0]["masked"] == targets.numel()
    assert res[0]["fitness"] == int((out.logits.argmax(-1) == targets).sum()) / targets.numel()
    assert res[0]["loss"] == pytest.approx(float(out.loss), rel=1e-5)
    assert res[1]["fitness"] != res[0]["fitness"] or res[1]["loss"] != res[0]["loss"]
    bf16 = SupernetFitness(net, batch, batch_size=4, bf16=True)([arch])[0]
    assert abs(bf16["loss"] - res[0]["loss"]) < 0.05


def test_short_search_on_a_tiny_supernet(tmp_path):
    net, batch = tiny_supernet(), valid_batch()
    fit = distributed_fitness(SupernetFitness(net, batch, batch_size=5))  # no process group: plain call
    cfg = EvolutionConfig(population=6, generations=3, parents=3, mutations=2, crossovers=2, mutation_prob=0.3)
    res = run_search(SearchSpace(num_slots=6, size="tiny"), fit, cfg, tmp_path / "s", progress=False)
    assert len(res.history) == 18 and 0 <= res.best["fitness"] <= 1
    assert json.loads((tmp_path / "s" / "best.json").read_text())["arch"] == res.best["arch"]


def test_latency_table_is_cached_and_predicts_by_summing(tmp_path, monkeypatch):
    cache = tmp_path / "latency.json"
    table = LatencyTable.load_or_measure("tiny", batch_size=2, seq_len=16, cache=cache, repeats=2)
    assert set(table.per_type) == {"C", "A", "F"} and all(v > 0 for v in table.per_type.values())
    assert table.predict("CAF") == pytest.approx(table.embeddings + sum(table.per_type.values()))
    assert table.key in json.loads(cache.read_text())

    def no_measure(*a, **k):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(LatencyTable, "measure", classmethod(no_measure))
    again = LatencyTable.load_or_measure("tiny", batch_size=2, seq_len=16, cache=cache, repeats=2)
    assert again == table
    monkeypatch.undo()

    space = SearchSpace(num_slots=6, size="tiny", max_latency=table.predict("AAAAAA") * 1.001, latency=table.costs())
    space.check_feasible()
    assert all(table.predict(space.sample(random.Random(i))) <= space.max_latency for i in range(5))

    report = latency_report(table, ["AAAAAA", "FFFFFF"], repeats=2)
    assert [r["arch"] for r in report["archs"]] == ["AAAAAA", "FFFFFF"]
    assert report["mean_abs_rel_error"] >= 0 and all(r["measured_ms"] > 0 for r in report["archs"])


def test_pearson():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1], [1, 2]) != pearson([1, 1], [1, 2])  # NaN when one side is constant


@pytest.mark.slow
def test_distributed_fitness_spreads_and_gathers(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "worker.py"
    script.write_text(
        "import json, sys, torch.distributed as dist\n"
        "from lvbert.search.fitness import distributed_fitness\n"
        "dist.init_process_group('gloo')\n"
        "rank = dist.get_rank()\n"
        "fn = distributed_fitness(lambda archs: [{'fitness': float(len(a)), 'loss': 0.0, 'rank': rank} for a in archs])\n"
        "res = fn(['C', 'CA', 'CAF', 'CAFC', 'CAFCA'])\n"
        f"json.dump(res, open(r'{tmp_path}/out%d.json' % rank, 'w'))\n"
        "dist.destroy_process_group()\n"
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531", str(script)]
    subprocess.run(cmd, check=True, timeout=120)
    for rank in (0, 1):
        res = json.loads((tmp_path / f"out{rank}.json").read_text())
        assert [r["fitness"] for r in res] == [1, 2, 3, 4, 5]
        assert [r["rank"] for r in res] == [0, 1, 0, 1, 0]  # archs dealt round-robin
