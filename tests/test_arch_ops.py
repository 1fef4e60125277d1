"""Slots with settings and identity slots: notation round trips, exact counting tied to the built
model, the search space over ops, the supernet with op variants, the distillation outputs, and
model folders written before settings existed."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lvbert  # noqa: F401  (registers the Auto classes)
from lvbert.arch import Arch, ArchError, Op, attention_slots, count_macs, count_params, get_size, parse_arch
from lvbert.cli import main
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertModel
from lvbert.space import SearchSpace, all_archs
from lvbert.supernet import LvBertSupernet

FIXTURES = Path(__file__).parent / "fixtures"


def random_op(rng: random.Random) -> Op:
    t = rng.choice("CAFI")
    if t == "C":
        return Op("C", kernel=rng.choice([None, 3, 5, 7]), heads=rng.choice([None, 1, 2, 4]))
    if t == "A":
        return Op("A", heads=rng.choice([None, 1, 2, 4]))
    if t == "F":
        return Op("F", ffn=rng.choice([None, 32, 96, 200]))
    return Op("I")


def random_arch(rng: random.Random, n: int | None = None) -> Arch:
    return Arch(random_op(rng) for _ in range(n or rng.randint(1, 12)))


# ----------------------------------------------------------------------------- notation


def test_parse_canonical_parse_is_the_identity_for_random_archs():
    rng = random.Random(0)
    for _ in range(300):
        arch = random_arch(rng)
        text = str(arch)
        assert Arch.parse(text) == arch and str(Arch.parse(text)) == text
        assert Arch.parse(arch.to_json()) == arch  # the JSON list form
        assert Arch.parse(json.dumps(arch.to_json())) == arch  # ... also as text
        messy = " , ".join(str(op).lower() for op in arch)  # any case, other separators
        assert Arch.parse(messy) == arch


def test_plain_strings_mean_and_print_what_they_did():
    assert parse_arch("ccaf") == "CCAF" and parse_arch("C C A F") == "CCAF"
    assert parse_arch("C(kernel=5) A(heads=2) F(ffn=512) I") == "C(kernel=5) A(heads=2) F(ffn=512) I"
    assert parse_arch("CCA(heads=2)F") == "C C A(heads=2) F"
    assert parse_arch('["C", {"type": "A", "heads": 2}, "I"]') == "C A(heads=2) I"
    assert Arch.parse("CAF") == "CAF" and Arch.parse("CAF").types == "CAF"


@pytest.mark.parametrize(
    "spec, words",
    [
        ("C(kernal=5) A", ["'kernal'", "slot 1", "kernel, heads"]),
        ("A F(heads=2)", ["'heads'", "slot 2", "F takes ffn"]),
        ("C(kernel=4)", ["odd"]),
        ("C(kernel=5", ["unbalanced", "position 1"]),
        ("C(kernel=x)", ["cannot read setting", "slot 1"]),
        ("I(ffn=3)", ["I takes no settings"]),
        ("CAQ", ["'Q'", "position 3"]),
    ],
)
def test_bad_settings_are_one_line_errors(spec, words):
    with pytest.raises(ArchError) as e:
        parse_arch(spec)
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_settings_equal_to_the_size_are_dropped_by_the_config():
    cfg = LvBertConfig.from_size("tiny", arch="C(kernel=9,heads=2) A(heads=2) F(ffn=256) I")
    assert cfg.arch == "CAFI" and cfg.num_slots == 4
    cfg = LvBertConfig.from_size("tiny", arch="C(kernel=5) A(heads=1) F(ffn=64)")
    assert cfg.arch == "C(kernel=5) A(heads=1) F(ffn=64)" and cfg.num_slots == 3
    with pytest.raises(ArchError, match="not divisible by 3 heads"):
        LvBertConfig.from_size("tiny", arch="A(heads=3)")


# ----------------------------------------------------------------------------- counting


def _built(arch, size="tiny", **kw) -> LvBertModel:
    return LvBertModel(LvBertConfig.from_size(size, arch=str(arch), **kw))


def test_counts_equal_the_built_model_for_random_archs_with_settings():
    rng = random.Random(1)
    size = get_size("tiny")
    for _ in range(25):
        arch = random_arch(rng)
        model = _built(arch)
        assert count_params(arch, size) == sum(p.numel() for p in model.parameters()), arch


def test_macs_of_settings_by_hand():
    s = get_size("tiny")  # H 64
    H, L = 64, 128
    assert count_macs("I", s, L, include_embedding=False) == 0
    assert count_macs("F(ffn=100)", s, L, include_embedding=False) == 2 * H * 100
    assert count_macs("A(heads=1)", s, L, include_embedding=False) == count_macs("A", s, L, include_embedding=False)
    assert count_macs("C(kernel=3,heads=4)", s, L, include_embedding=False) == 4 * H * H + 2 * 3 * H + 4 * 3 * H


def test_arch_info_params_equal_the_built_model(capsys):
    spec = "C(kernel=5) A(heads=2) F(ffn=512) I"
    assert main(["arch", "info", spec, "--size", "small", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    model = _built(spec, "small")
    assert info["params"] == sum(p.numel() for p in model.parameters()) == 4_803_092
    assert info["codes"] is None and info["counts"] == {"C": 1, "A": 1, "F": 1, "I": 1}
    assert info["slots"] == [{"type": "C", "kernel": 5, "heads": 4}, {"type": "A", "heads": 2},
                             {"type": "F", "ffn": 512}, "I"]  # fmt: skip
    assert main(["arch", "info", spec, "--size", "small"]) == 0
    assert "identity" in capsys.readouterr().out


def test_pinned_counts_are_unchanged():
    small = get_size("small")
    assert count_params("CCAFFACFFACCAFCFACFCAAFA", small) == 12_525_856
    assert count_params("AF" * 12, small) == 13_483_008
    assert count_params("C(kernel=9,heads=4) A(heads=4) F(ffn=1024)", small) == count_params("CAF", small)


# ----------------------------------------------------------------------------- the search space over ops


def test_space_over_ops_with_identity_is_exact():
    space = SearchSpace(num_slots=4, allowed=["C(kernel=3) C A I", "A F", "F I", "C(kernel=3) C(kernel=5) I"],
                        size="tiny", max_params=count_params("C A F C", get_size("tiny")), min_counts={"I": 1})  # fmt: skip
    assert space.exact and space.allowed[0] == "C C(kernel=3) A I"  # canonical order: C, A, F, I; plain op first
    brute = [a for a in all_archs(space) if space.contains(a)]
    assert space.num_feasible() == len(brute) == space.check_feasible() > 0
    rng = random.Random(0)
    for _ in range(100):
        a = space.sample(rng)
        assert a in brute
        assert space.params(a) == count_params(a, get_size("tiny"))
        m = space.mutate(a, rng, 0.5)
        assert len(Arch.parse(m)) == 4
    lo, _ = space.extremes("params")
    assert space.params(lo) == min(space.params(a) for a in brute)


def test_space_with_many_ops_checks_feasibility_by_sampling():
    ops = "C(kernel=3) C(kernel=5) C(kernel=7) C A(heads=1) A F(ffn=64) F(ffn=128) F I"
    tiny = get_size("tiny")
    free = SearchSpace(num_slots=24, allowed=ops, size="tiny")
    rng = random.Random(1)
    median = sorted(free.params(free.sample(rng)) for _ in range(201))[100]
    space = SearchSpace(num_slots=24, allowed=ops, size="tiny", max_params=median)
    assert not space.exact  # 10 ops over 24 slots: 131 million count vectors
    assert space.check_feasible() > 0  # per-limit exact, jointly by sampling
    assert 0.2 < space.num_feasible() / space.size() < 0.8  # a sampled estimate
    rare = SearchSpace(num_slots=24, allowed=ops, size="tiny", max_params=count_params("I" * 20 + "FFFF", tiny))
    assert rare.check_feasible() >= 0  # feasible only near the cheapest arch: found by trying it first
    tight = SearchSpace(num_slots=24, allowed=ops, size="tiny", max_params=count_params("I" * 24, get_size("tiny")) - 1)
    with pytest.raises(lvbert.errors.LvBertError, match="below the cheapest arch"):
        tight.check_feasible()


# ----------------------------------------------------------------------------- the supernet with op variants


@pytest.fixture(scope="module")
def variant_supernet():
    torch.manual_seed(0)
    allowed = ["C(kernel=3) C A(heads=1) F I", "C(kernel=5) A F(ffn=64) I", "CAF", "A F I"]
    net = LvBertSupernet.from_size("tiny", allowed=allowed, num_slots=4, vocab_size=300, max_position_embeddings=32)
    return net.eval()


@pytest.mark.parametrize("arch", ["C(kernel=3) C(kernel=5) C A", "A(heads=1) F(ffn=64) A I", "I I F I", "C A F F"])
def test_extract_equals_the_supernet_path_with_op_variants(variant_supernet, arch):
    ids = torch.randint(5, 300, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        a = variant_supernet(input_ids=ids, attention_mask=mask, arch=arch, output_hidden_states=True,
                             output_attentions=True)  # fmt: skip
        model = variant_supernet.extract(arch).eval()
        b = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    assert model.config.arch == parse_arch(arch)
    assert sum(p.numel() for p in model.lvbert.parameters()) == count_params(arch, model.config.size_config())
    assert torch.allclose(a.logits, b.logits, atol=1e-6)
    assert len(a.hidden_states) == len(b.hidden_states) == 5
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a.hidden_states, b.hidden_states))
    assert len(a.attentions) == len(b.attentions) == len(attention_slots(arch))


def test_supernet_refuses_an_op_outside_its_space(variant_supernet):
    with pytest.raises(lvbert.errors.LvBertError, match="slot 1 is C\\(kernel=7\\)"):
        variant_supernet.check_arch("C(kernel=7) A A A")


# ----------------------------------------------------------------------------- outputs for distillation


def test_attentions_are_pre_softmax_scores_with_padded_keys_masked():
    torch.manual_seed(0)
    model = LvBertModel(LvBertConfig.from_size("tiny", arch="CAFA(heads=4)I", vocab_size=300)).eval()
    ids = torch.randint(5, 300, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        plain = model(input_ids=ids, attention_mask=mask)
    assert attention_slots(model.config.arch) == [1, 3]
    assert [a.shape for a in out.attentions] == [(2, 2, 10, 10), (2, 4, 10, 10)]
    assert torch.allclose(out.last_hidden_state, plain.last_hidden_state, atol=1e-6)  # SDPA path = manual path
    # by hand: slot 1's input is hidden_states[1]
    layer = model.encoder.slots[1]
    x = out.hidden_states[1]
    q, k, _ = layer.qkv(x).view(2, 10, 3, 2, 32).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / 32**0.5
    real = mask.bool()[:, None, None, :].expand_as(scores)
    assert torch.allclose(out.attentions[0][real], scores[real], atol=1e-5)
    assert (out.attentions[0][~real] == torch.finfo(torch.float32).min).all()
    assert torch.equal(out.hidden_states[5], out.hidden_states[4])  # the identity slot
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)


def test_every_head_returns_hidden_states_and_attentions():
    from lvbert.modeling_lvbert import LvBertForPreTraining, LvBertForSequenceClassification

    cfg = LvBertConfig.from_size("tiny", arch="AFCA", vocab_size=300, num_labels=2)
    ids = torch.randint(5, 300, (2, 8))
    for cls in (LvBertForMaskedLM, LvBertForPreTraining, LvBertForSequenceClassification):
        out = cls(cfg).eval()(input_ids=ids, output_hidden_states=True, output_attentions=True)
        assert len(out.hidden_states) == 5 and len(out.attentions) == 2, cls.__name__


# ----------------------------------------------------------------------------- folders written before settings existed


def test_a_model_folder_written_before_this_change_loads_and_gives_the_same_outputs():
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(FIXTURES / "legacy_mlm").eval()
    expected = load_file(FIXTURES / "legacy_mlm" / "expected.safetensors")
    assert model.config.arch == "CAFCAF"
    with torch.no_grad():
        logits = model(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"]).logits
    assert torch.allclose(logits, expected["logits"], atol=1e-6)


def test_a_supernet_written_before_this_change_loads_and_gives_the_same_outputs():
    net = LvBertSupernet.from_pretrained(FIXTURES / "legacy_supernet").eval()
    expected = load_file(FIXTURES / "legacy_supernet" / "expected.safetensors")
    assert net.allowed == ["CAF"] * 4
    with torch.no_grad():
        logits = net(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"], arch="CAFC").logits
    assert torch.allclose(logits, expected["logits"], atol=1e-6)
