"""The supernet: one path per forward, extract(arch) parity, arch sampling, the space it shows."""

from __future__ import annotations

import random

import pytest
import torch

from lvbert.errors import LvBertError
from lvbert.modeling_lvbert import LvBertForMaskedLM
from lvbert.space import ArchSampler, probe_archs
from lvbert.supernet import LvBertSupernet


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return LvBertSupernet.from_size("tiny", vocab_size=500).eval()


def _batch(seed=0, bsz=3, length=24, vocab=500):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (bsz, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 17:] = 0
    ids[1, 17:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    labels[0, 9] = ids[0, 9]
    return ids, mask, labels


@pytest.mark.parametrize("arch", ["bert", "lv-bert-small", "dynamicconv", "random:3", "random:11", "C" * 24])
def test_extract_matches_supernet_path(supernet, arch):
    arch = supernet.check_arch(arch)
    model = supernet.extract(arch)
    assert isinstance(model, LvBertForMaskedLM) and model.config.arch == arch
    ids, mask, labels = _batch()
    with torch.no_grad():
        a = supernet(input_ids=ids, attention_mask=mask, labels=labels, arch=arch)
        b = model.eval()(input_ids=ids, attention_mask=mask, labels=labels)
        full_a = supernet(input_ids=ids, attention_mask=mask, arch=arch).logits
        full_b = model(input_ids=ids, attention_mask=mask).logits
    assert a.logits.shape == (int((labels != -100).sum()), 500)
    assert torch.allclose(a.logits, b.logits, atol=1e-6, rtol=0)
    assert torch.allclose(full_a, full_b, atol=1e-6, rtol=0)
    assert abs(a.loss.item() - b.loss.item()) < 1e-6


def test_extracted_model_saves_and_reloads(supernet, tmp_path):
    model = supernet.extract("lv-bert-small")
    model.save_pretrained(tmp_path)
    again = LvBertForMaskedLM.from_pretrained(tmp_path).eval()
    ids, mask, _ = _batch(1)
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, model.eval()(input_ids=ids, attention_mask=mask).logits)


def test_only_the_path_gets_gradients(supernet):
    net = LvBertSupernet.from_size("tiny", vocab_size=500, num_slots=6).train()
    ids, mask, labels = _batch()
    net(input_ids=ids, attention_mask=mask, labels=labels, arch="CAFFAC").loss.backward()
    for i, t in enumerate("CAFFAC"):
        for other, layer in net.lvbert.encoder.slots[i].items():
            grads = [p.grad is not None for p in layer.parameters()]
            assert all(grads) if other == t else not any(grads)


def test_arch_outside_space_and_missing_arch():
    net = LvBertSupernet.from_size("tiny", vocab_size=500, num_slots=4, allowed="AF")
    assert "AF at every slot" in repr(net) and "16 architectures" in repr(net)
    with pytest.raises(LvBertError, match="slot 1 is C"):
        net.check_arch("CAFA")
    with pytest.raises(LvBertError, match="4"):
        net.check_arch("AFA")
    with pytest.raises(ValueError, match="arch="):
        net(input_ids=torch.ones(1, 4, dtype=torch.long))


def test_arch_sampler_is_a_function_of_step():
    allowed = ["CAF"] * 24
    a, b = ArchSampler(allowed, seed=5), ArchSampler(allowed, seed=5)
    assert [a(s) for s in range(20)] == [b(s) for s in reversed(range(20))][::-1]
    assert len({a(s) for s in range(20)}) == 20
    assert ArchSampler(allowed, seed=6)(0) != a(0)
    state = random.getstate()
    a(3)
    assert random.getstate() == state  # global RNG untouched


def test_fair_sampling_balances_types_per_slot():
    allowed = ["CAF"] * 10 + ["AF"] * 2
    fair = ArchSampler(allowed, seed=0, mode="fair")
    archs = [fair(s) for s in range(6)]  # lcm(3, 2): every slot balanced
    for i, ok in enumerate(allowed):
        counts = [sum(a[i] == t for a in archs) for t in ok]
        assert len(set(counts)) == 1, (i, counts)


def test_probes_stay_in_the_space():
    probes = probe_archs(["AF"] * 24, seed=0)
    assert probes["bert"] == "AF" * 12 and "lv-bert-small" not in probes
    assert all(set(a) <= set("AF") for a in probes.values())
    assert set(probe_archs(["CAF"] * 24, 0)) == {"bert", "lv-bert-small", "random1", "random2"}
