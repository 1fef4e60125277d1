"""Architecture notation, size presets, counting and ``lvbert arch info`` (no torch needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lvbert.arch import (
    LV_BERT_SMALL,
    NAMED_ARCHS,
    SIZES,
    ArchError,
    count_macs,
    count_params,
    embedding_params,
    get_size,
    parse_arch,
    sublayer_params,
    to_codes,
)
from lvbert.cli import main
from lvbert.errors import LvBertError

LV_CODES = [0, 0, 1, 2, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2, 0, 2, 1, 0, 2, 0, 1, 1, 2, 1]  # the released list (official code)

# ----------------------------------------------------------------------------- accepted notations


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("CCAF", "CCAF"),
        ("ccaf", "CCAF"),
        ("cCaF", "CCAF"),
        ("C-C-A", "CCA"),
        ("C C A", "CCA"),
        ("C,C,A", "CCA"),
        ("  C, C - A  ", "CCA"),
        ("[0,0,1,2]", "CCAF"),
        ("[0, 0, 1, 2]", "CCAF"),
        ("(2 1 0)", "FAC"),
        ([0, 0, 1, 2], "CCAF"),
        ((2, 1), "FA"),
        (["C", "a", "F"], "CAF"),
        ("lv-bert-small", LV_BERT_SMALL),
        ("LV-BERT-small", LV_BERT_SMALL),
        ("bert", "AF" * 12),
        ("dynamicconv", "CF" * 12),
        ("sandwich", "AAA" + "AF" * 9 + "FFF"),
        ("sandwich:0", "AF" * 12),
        ("sandwich:5", "A" * 5 + "AF" * 7 + "F" * 5),
    ],
)
def test_accepted_notations(spec, expected):
    assert parse_arch(spec) == expected


def test_released_list_matches_official_codes():
    assert parse_arch(LV_CODES) == LV_BERT_SMALL == parse_arch(str(LV_CODES))
    assert to_codes(LV_BERT_SMALL) == LV_CODES
    assert {t: LV_BERT_SMALL.count(t) for t in "CAF"} == {"C": 8, "A": 8, "F": 8}


def test_named_archs_follow_num_slots():
    assert parse_arch("bert", num_slots=4) == "AFAF"
    assert parse_arch("sandwich:1", num_slots=6) == "AAFAFF"
    assert len(parse_arch("random:3", num_slots=10)) == 10


def test_random_seed_is_deterministic_and_uniform():
    a = parse_arch("random:7")
    assert a == parse_arch("random:7") == parse_arch("RANDOM:7")
    assert len(a) == 24 and set(a) <= set("CAF")
    others = {parse_arch(f"random:{s}") for s in range(20)}
    assert len(others) == 20  # different seeds give different archs
    letters = "".join(others)
    assert all(letters.count(t) > 100 for t in "CAF")  # 480 draws, ~160 each


# ----------------------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    "spec, words",
    [
        ("CCXF", ["'X'", "position 3"]),
        ("C-C-Q", ["'Q'", "position 3"]),
        ("[0,0,3,2]", ["'3'", "position 3"]),
        ("[0,x]", ["'x'", "position 2"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("[]", ["empty"]),
        ("[0,1,2", ["unbalanced"]),
        ("0,1,2]", ["unbalanced"]),
        ("random", ["seed"]),
        ("random:abc", ["integer"]),
        ("sandwich:x", ["integer"]),
        ("sandwich:13", ["between 0 and 12"]),
        ("bert:3", ["no argument"]),
    ],
)
def test_invalid_notation(spec, words):
    with pytest.raises(ArchError) as e:
        parse_arch(spec)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg
    assert isinstance(e.value, LvBertError)


def test_wrong_slot_count():
    with pytest.raises(ArchError, match="has 4 slots but the model has 24"):
        parse_arch("CCAF", num_slots=24)
    with pytest.raises(ArchError, match="even"):
        parse_arch("bert", num_slots=5)


# ----------------------------------------------------------------------------- parameter counts


# Counted from the official code, per sub-layer C / A / F.
SUBLAYER_COUNTS = {
    "small": (275_236, 263_680, 526_080),
    "medium": (616_374, 592_128, 1_182_336),
    "base": (2_453_868, 2_363_904, 4_723_968),
}


@pytest.mark.parametrize("size", ["small", "medium", "base"])
def test_sublayer_params(size):
    s = get_size(size)
    assert tuple(sublayer_params(t, s) for t in "CAF") == SUBLAYER_COUNTS[size]


def _embeddings_by_hand(size: str) -> int:
    """The official sizes: (vocab + positions + types) x E, LayerNorm(E), projection E->H when E != H."""
    s = SIZES[size]
    E, H = s.embedding_size, s.hidden_size
    return (30522 + 512 + 2) * E + 2 * E + (E * H + H if E != H else 0)


@pytest.mark.parametrize("size", ["small", "medium", "base"])
def test_backbone_params(size):
    s = get_size(size)
    c, a, f = SUBLAYER_COUNTS[size]
    emb = _embeddings_by_hand(size)
    assert embedding_params(s) == emb
    assert count_params(LV_BERT_SMALL, s) == emb + 8 * (c + a + f)
    assert count_params("AF" * 12, s) == emb + 12 * (a + f)


def test_small_backbone_params_pinned():
    small = get_size("small")
    assert embedding_params(small) == 4_005_888
    assert count_params(LV_BERT_SMALL, small) == 12_525_856
    assert count_params("AF" * 12, small) == 13_483_008


def test_mlm_head_params():
    s = get_size("small")
    # dense 256->128, LayerNorm(128), vocabulary bias (decoder weight tied to the word embeddings)
    assert count_params("AF", s, head="mlm") - count_params("AF", s) == 256 * 128 + 128 + 2 * 128 + 30522


def test_macs_ratio_matches_reference():
    s = get_size("small")
    r128 = count_macs(LV_BERT_SMALL, s, 128) / count_macs("AF" * 12, s, 128)
    r512 = count_macs(LV_BERT_SMALL, s, 512) / count_macs("AF" * 12, s, 512)
    assert round(r128, 2) == 0.88 and round(r512, 2) == 0.84


def test_sizes_overridable_and_validated():
    assert get_size("small", hidden_size=512, num_attention_heads=8).hidden_size == 512
    with pytest.raises(LvBertError, match="unknown size"):
        get_size("huge")
    with pytest.raises(LvBertError, match="divisible"):
        get_size("small", hidden_size=250)
    with pytest.raises(LvBertError, match="unknown size field"):
        get_size("small", widht=3)


# ----------------------------------------------------------------------------- CLI


def test_cli_json_keys(capsys):
    assert main(["arch", "info", "lv-bert-small", "--size", "small", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"arch", "size", "counts", "params", "params_with_mlm_head", "macs_per_token"} <= set(info)
    assert info["arch"] == LV_BERT_SMALL and info["size"] == "small"
    assert info["counts"] == {"C": 8, "A": 8, "F": 8}
    assert info["params"] == 12_525_856
    assert info["params_with_mlm_head"] == 12_525_856 + 256 * 128 + 128 + 256 + 30522


def test_cli_text(capsys):
    assert main(["arch", "info", "c-c-a-f", "--size", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "CCAF" in out and "params" in out and "MACs/token" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["arch", "info", "CCXF"], ["'X'", "position 3"]),
        (["arch", "info", "[0,1"], ["unbalanced"]),
        (["arch", "info", "random"], ["seed"]),
        (["arch", "info", "bert", "--seq-len", "0"], ["seq-len"]),
        (["arch", "info", "bert", "--size", "huge"], ["huge"]),
        (["arch", "info", "bert", "--bogus"], ["--bogus"]),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv, words, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse errors exit directly
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    for w in words:
        assert w in lines[0]


def test_console_script_error():
    exe = Path(sys.executable).parent / "lvbert"
    if not exe.exists():
        pytest.skip("console script not installed (pip install -e .)")
    p = subprocess.run([str(exe), "arch", "info", "CCAZ"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.strip() == p.stderr.strip().splitlines()[0]
    assert "'Z'" in p.stderr and "position 4" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("name", sorted(NAMED_ARCHS))
def test_every_registered_name_builds_and_counts(name):
    """The registry (timm's habit): every entry and alias parses at its example, the built model has
    exactly the counted parameters, and the help text is there."""
    from lvbert.modeling_lvbert import LvBertConfig, LvBertModel

    entry = NAMED_ARCHS[name]
    assert entry.help
    spec = entry.example or name
    arch = parse_arch(spec)  # named patterns at the default 24 slots
    assert len(arch) == 24
    for alias in entry.aliases:
        assert parse_arch(alias + spec[len(name):]) == arch
    size = get_size("tiny").replace(num_slots=24)
    model = LvBertModel(LvBertConfig.from_size(size, arch=arch))
    assert sum(p.numel() for p in model.parameters()) == count_params(arch, size)
