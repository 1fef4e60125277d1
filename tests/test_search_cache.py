"""The fitness's embeddings reuse and prefix cache change no number: any order, any budget, no cache."""

import random

import pytest

torch = pytest.importorskip("torch")
supernet_mod = pytest.importorskip("lvbert.supernet")

from lvbert.objectives.mlm import evaluate_mlm  # noqa: E402
from lvbert.search.fitness import PrefixCache, SupernetFitness, cxx_compiler  # noqa: E402
from lvbert.space import SearchSpace  # noqa: E402

SLOTS = 6



def tiny_supernet():
    torch.manual_seed(0)
    return supernet_mod.LvBertSupernet.from_size("tiny", num_slots=SLOTS)


def valid_batch(n=10, length=16, vocab=4096):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (n, length), generator=g)
    mask = torch.ones_like(ids)
    mask[:3, 12:] = 0  # padding in the first chunk only: chunks with and without an attention mask
    labels = torch.full_like(ids, -100)
    chosen = (torch.rand(n, length, generator=g) < 0.25) & mask.bool()
    labels[chosen] = ids[chosen]
    ids = ids.masked_fill(chosen, 4)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": labels}


def evolution_like_archs(n=14, seed=0) -> list[str]:
    """Parents, their mutants and crossovers (long shared prefixes), one duplicate."""
    space, rng = SearchSpace(num_slots=SLOTS, size="tiny"), random.Random(seed)
    parents = [space.sample(rng) for _ in range(3)]
    archs = list(parents)
    while len(archs) < n - 1:
        if rng.random() < 0.5:
            archs.append(space.mutate(rng.choice(parents), rng, 0.3))
        else:
            archs.append(space.crossover(*rng.sample(parents, 2), rng))
    return archs + [archs[1]]


@pytest.mark.parametrize("bf16", [False, True])
def test_cache_gives_identical_numbers_in_any_order_and_without_it(bf16):
    net, batch = tiny_supernet(), valid_batch()
    net.train()
    archs = evolution_like_archs()
    kw = dict(batch_size=4, bf16=bf16, head_rows=5)  # 3 chunks (one partial), several head blocks

    cached = SupernetFitness(net, batch, **kw)
    first = cached(archs)
    info = cached.cache_info()
    assert info["slots_reused"] > 0 and info["hits"] > 0  # the shared prefixes were reused
    assert net.training  # mode restored

    shuffled = list(range(len(archs)))
    random.Random(3).shuffle(shuffled)
    other_order = SupernetFitness(net, batch, **kw)([archs[i] for i in shuffled])
    assert [other_order[shuffled.index(i)] for i in range(len(archs))] == first

    assert SupernetFitness(net, batch, cache_mb=0, **kw)(archs) == first  # no cache: bit for bit the same
    assert [cached.evaluate(a) for a in reversed(archs)] == first[::-1]  # warm cache, one at a time
    assert first[1] == first[-1]  # the duplicate

    other_blocks = SupernetFitness(net, batch, batch_size=4, bf16=bf16, head_rows=1000)(archs)
    for a, b in zip(first, other_blocks):
        assert a["fitness"] == b["fitness"] and a["masked"] == b["masked"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)

    for arch, res in zip(archs, first):  # the plain path: the supernet's forward, chunk by chunk
        plain = evaluate_mlm(net, batch, 4, arch=arch, bf16=bf16)
        assert res["fitness"] == plain["mlm_accuracy"] and res["masked"] == plain["masked_tokens"]
        assert res["loss"] == pytest.approx(plain["mlm_loss"], rel=1e-5)


def test_the_cache_keeps_to_its_byte_budget_and_evicts():
    net, batch = tiny_supernet(), valid_batch(n=8)  # two full chunks: every state has the same size
    archs = evolution_like_archs(n=10, seed=1)
    state = 4 * 16 * 64 * 4  # one slot output of one chunk: [4, 16, H=64] fp32
    budget_mb = 3.5 * state / 2**20  # room for three states
    small = SupernetFitness(net, batch, batch_size=4, cache_mb=budget_mb)
    res = small(archs)
    info = small.cache_info()
    assert 0 < info["bytes"] <= info["max_bytes"] == int(budget_mb * 2**20)
    assert info["entries"] == 3 and info["evictions"] > 0
    assert info["slots_reused"] > 0  # a budget below a whole path keeps the shallow prefixes, which archs share
    assert res == SupernetFitness(net, batch, batch_size=4, cache_mb=0)(archs)
    assert SupernetFitness(net, batch, batch_size=4, cache_mb=0).cache_info()["entries"] == 0


def test_prefix_cache_evicts_by_priority_when_given():
    c = PrefixCache(max_bytes=250)
    t = [torch.zeros(25) for _ in range(3)]  # 100 bytes each
    c.put("a1", t[0], (1, -1))
    c.put("a2", t[1], (1, -2))
    c.put("b1", t[2], (2, -1))  # pass 1's deepest state goes first
    assert set(c._items) == {"a1", "b1"}
    c.touch("a1", (3, -1))
    c.put("b2", t[1], (2, -2))  # lowest priority itself: not kept
    assert set(c._items) == {"a1", "b1"} and c.nbytes == 200 and c.evictions == 2


def test_prefix_cache_is_an_lru_under_a_byte_budget():
    c = PrefixCache(max_bytes=250)
    t = [torch.zeros(25) for _ in range(4)]  # 100 bytes each
    c.put("a", t[0])
    c.put("b", t[1])
    assert c.get("a") is t[0]  # refreshed: "b" is now the oldest
    c.put("c", t[2])
    assert "b" not in c and "a" in c and "c" in c and c.nbytes == 200 and c.evictions == 1
    c.put("big", torch.zeros(100))  # 400 bytes: larger than the budget, not kept
    assert "big" not in c and c.nbytes == 200
    assert c.deepest(["x", "c", "a"]) == (1, t[2]) and c.deepest(["y"]) == (None, None)
    assert (c.hits, c.misses) == (2, 1)
    assert PrefixCache(0).put("a", t[0]) is None and len(PrefixCache(0)) == 0
    with pytest.raises(ValueError):
        PrefixCache(-1)


def test_the_cache_is_dropped_when_the_weights_change():
    net, batch = tiny_supernet(), valid_batch()
    archs = evolution_like_archs(n=6, seed=2)
    fit = SupernetFitness(net, batch, batch_size=4)
    before = fit(archs)
    with torch.no_grad():
        next(iter(net.lvbert.encoder.slots[2].values())).LayerNorm.weight.mul_(1.5)
        net.lvbert.embeddings.LayerNorm.bias.add_(0.1)
    after = fit(archs)
    assert after == SupernetFitness(net, batch, batch_size=4)(archs) != before


def test_bad_settings_and_archs_are_refused():
    net, batch = tiny_supernet(), valid_batch()
    with pytest.raises(ValueError, match="cache_mb"):
        SupernetFitness(net, batch, cache_mb=-1)
    with pytest.raises(ValueError, match="head_rows"):
        SupernetFitness(net, batch, head_rows=0)
    from lvbert.errors import LvBertError

    with pytest.raises(LvBertError, match="slot"):
        SupernetFitness(net, batch)(["CAF", "CAFCAF"])


@pytest.mark.skipif(not cxx_compiler(), reason="torch.compile (inductor) on CPU needs a C++ compiler")
@pytest.mark.parametrize("bf16", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_compiled_fitness_is_exact_among_itself_and_close_to_eager(bf16):
    """``compile=True``: the cache, the order and the chunks seen before change no number; against
    the eager path the numbers differ by rounding only."""
    net, batch = tiny_supernet(), valid_batch()
    archs = evolution_like_archs(8)
    kw = dict(batch_size=4, bf16=bf16, head_rows=5)
    eager = SupernetFitness(net, batch, **kw)(archs)
    compiled = SupernetFitness(net, batch, compile=True, **kw)
    first = compiled(archs)
    assert compiled._compiled  # the compiled sub-layers did run
    assert SupernetFitness(net, batch, compile=True, cache_mb=0, **kw)(archs[::-1])[::-1] == first
    assert [compiled.evaluate(a) for a in reversed(archs)] == first[::-1]
    for c, e in zip(first, eager):
        assert c["masked"] == e["masked"]
        assert abs(c["fitness"] - e["fitness"]) <= 2 / e["masked"]  # at most two near-ties flipped
        assert c["loss"] == pytest.approx(e["loss"], rel=1e-2 if bf16 else 1e-4)


def test_compile_without_a_cxx_compiler_is_a_clear_error(monkeypatch):
    import shutil

    from lvbert.errors import LvBertError
    from lvbert.recipes.search import SearchRunConfig

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="needs a C.. compiler"):
        SupernetFitness(tiny_supernet(), valid_batch(), compile=True)
    with pytest.raises(LvBertError, match="--compile needs a C.. compiler"):
        SearchRunConfig(supernet="sn", data="d", compile=True)
