"""KG-BERT: graph layouts, input format and segments, filtered seeded negatives, ranks and metrics
against hand-made answers and a second implementation, the demo graphs end to end, bad input."""

from __future__ import annotations

import json
import random

import pytest

from lvbert.cli import main
from lvbert.errors import LvBertError
from lvbert.tasks.kg import clean_name, link_candidates, load_graph, negatives, rank_metrics, rank_of

# ----------------------------------------------------------------------------- layouts


def _write(folder, files: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def test_plain_and_kgbert_layouts(tmp_path):
    plain = tmp_path / "plain"
    _write(plain, {"train.tsv": "a_b\tis_a\tc\nc\t/x/part_of\ta_b\n", "valid.tsv": "c\tis_a\ta_b\n", "test.tsv": "a_b\tis_a\ta_b\n"})
    g = load_graph(plain)
    assert g.entities == ["a_b", "c"] and g.relations == ["/x/part_of", "is_a"]
    assert g.entity_text["a_b"] == "a b" and g.relation_text["/x/part_of"] == "x part of"
    assert set(g.splits) == {"train", "dev", "test"} and len(g.true_triples) == 4
    kgb = tmp_path / "kgbert"
    _write(kgb, {"train.tsv": "e1\tr1\te2\t1\ne1\tr1\te1\t-1\n", "dev.tsv": "e2\tr1\te1\t1\n", "test.tsv": "e1\tr1\te2\t1\n",
                 "entity2text.txt": "e1\tstool, solid excretory product\ne2\tchair, a seat\n",
                 "entity2textlong.txt": "e1\ta long text\ne2\tanother long text\n", "relation2text.txt": "r1\thas part\n",
                 "entities.txt": "e1\ne2\n", "relations.txt": "r1\n"})  # fmt: skip
    g = load_graph(kgb)
    assert g.entity_text["e1"] == "stool, solid excretory product" and g.relation_text["r1"] == "has part"
    assert g.labels["train"] == [1, 0] and g.positives("train") == [("e1", "r1", "e2")]
    assert ("e1", "r1", "e1") not in g.true_triples  # a -1 line is not a true triple
    assert load_graph(kgb, long_text=True).entity_text["e2"] == "another long text"
    assert clean_name("/music/artist/origin") == "music artist origin"


@pytest.mark.parametrize(
    "files, words",
    [
        ({"train.tsv": "a\tr\n", "dev.tsv": "", "test.tsv": ""}, "expected 'head<TAB>relation<TAB>tail'"),
        ({"train.tsv": "a\tr\tb\n", "dev.tsv": "", "test.tsv": "a\tr\tz\n", "entities.txt": "a\nb\n"}, "unknown entity 'z'"),
        ({"train.tsv": "a\tr\tb\n", "dev.tsv": "", "test.tsv": "", "relation2text.txt": "q\tsomething\n"},
         "no text for relation 'r'"),  # fmt: skip
        ({"train.tsv": "a\tr\tb\tyes\n", "dev.tsv": "", "test.tsv": ""}, "1 or -1"),
        ({"train.tsv": "a\tr\tb\n", "test.tsv": ""}, "no dev file"),
    ],
)
def test_bad_graphs_are_one_line_errors(tmp_path, files, words):
    _write(tmp_path / "g", files)
    with pytest.raises(LvBertError) as e:
        load_graph(tmp_path / "g")
    assert words in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- inputs


def test_assembled_triples_equal_tokenised_triples(real_tokenizer):
    from lvbert.data.tokenizer import load_tokenizer
    from lvbert.tasks.encoding import PieceCache, encode_triples

    tok = load_tokenizer(real_tokenizer)
    texts = {"h": "the parser module", "r": "returns a", "t": "list of strings"}
    cache = PieceCache(tok, texts)
    ids, types, cut = cache.triple("h", "r", "t", 64)
    ref = encode_triples(tok, [(texts["h"], texts["r"], texts["t"])], 64)
    assert (ids, types, cut) == (ref.input_ids[0], ref.token_type_ids[0], False)
    ids, types, cut = cache.triple("h", "r", "t", 9)
    assert len(ids) == 9 and cut and ids.count(tok.sep_token_id) == 3
    pair_ids, pair_types, _ = cache.pair("h", "t", 64)
    assert pair_types.count(1) == len(tok("list of strings", add_special_tokens=False)["input_ids"]) + 1


# ----------------------------------------------------------------------------- negatives


def test_negatives_are_filtered_and_seeded():
    ents = [f"e{i}" for i in range(6)]
    pos = [("e0", "r", "e1"), ("e1", "r", "e2")]
    truth = {*pos, ("e0", "r", "e2"), ("e3", "r", "e1")}
    a = negatives(pos, ents, 5, seed=3, filter_set=truth)
    assert a == negatives(pos, ents, 5, seed=3, filter_set=truth) != negatives(pos, ents, 5, seed=4, filter_set=truth)
    assert len(a) == 10 and not set(a) & truth
    for neg, p in zip(a, [pos[0]] * 5 + [pos[1]] * 5):
        assert neg[1] == "r" and (neg[0] == p[0]) != (neg[2] == p[2])  # exactly one side replaced
    same = negatives(pos, ents, 5, seed=0, filter_set=truth, same_side=True)
    for k in (0, 5):
        side = {"head" if n[2] == pos[k // 5][2] else "tail" for n in same[k : k + 5]}
        assert len(side) == 1  # all of a positive's negatives on one side (KG-BERT's link sampling)


# ----------------------------------------------------------------------------- ranks


def test_ranks_and_metrics_by_hand():
    assert rank_of(0.9, [0.1, 0.5]) == 1
    assert rank_of(0.5, [0.9, 0.5, 0.1], "optimistic") == 2
    assert rank_of(0.5, [0.9, 0.5, 0.1], "pessimistic") == 3
    assert rank_of(0.5, [0.9, 0.5, 0.1], "realistic") == 2.5
    m = rank_metrics([1, 2, 4, 20])
    assert m["mr"] == pytest.approx(27 / 4) and m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 20) / 4)
    assert (m["hits@1"], m["hits@3"], m["hits@10"]) == (0.25, 0.5, 0.75)


def test_filtered_ranks_on_a_hand_made_graph():
    """Tail side of (a, r, b): candidates c, d, e; (a, r, c) is also true, so the filtered setting drops it."""
    ents = ["a", "b", "c", "d", "e"]
    truth = {("a", "r", "b"), ("a", "r", "c")}
    raw = link_candidates(("a", "r", "b"), "tail", ents, None)
    filt = link_candidates(("a", "r", "b"), "tail", ents, truth)
    assert raw == [("a", "r", "a"), ("a", "r", "c"), ("a", "r", "d"), ("a", "r", "e")]
    assert filt == [("a", "r", "a"), ("a", "r", "d"), ("a", "r", "e")]
    score = {"a": 0.1, "b": 0.6, "c": 0.9, "d": 0.6, "e": 0.2}  # c above b, d tied with b
    true = score["b"]
    assert rank_of(true, [score[t] for _, _, t in raw]) == 2.5  # c above, d tied: 1 + 1 + 0.5
    assert rank_of(true, [score[t] for _, _, t in filt]) == 1.5  # c filtered out


def _second_implementation(true_score, others, ties):
    """Ranks by sorting, written independently: position of the true candidate in a sorted list."""
    import numpy as np

    scores = np.array([true_score, *others])
    order = np.argsort(-scores, kind="stable")  # the true candidate (index 0) first among equals
    optimistic = int(np.where(order == 0)[0][0]) + 1
    n_equal = int((scores == true_score).sum()) - 1
    return {"optimistic": optimistic, "pessimistic": optimistic + n_equal, "realistic": optimistic + n_equal / 2}[ties]


@pytest.mark.parametrize("ties", ["optimistic", "pessimistic", "realistic"])
def test_ranks_agree_with_a_second_implementation(ties):
    rng = random.Random(0)
    for _ in range(300):
        others = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(rng.randint(0, 12))]
        true_score = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])
        assert rank_of(true_score, others, ties) == _second_implementation(true_score, others, ties)


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def kg_setup(real_data, tmp_path_factory):
    """A tiny pre-trained lvbert model (real tokenizer) and a small graph of real words in KG-BERT's layout."""
    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    root = tmp_path_factory.mktemp("kg")
    model = pretrain(PretrainConfig(data=str(real_data), out=str(root / "lm"), arch="CAFA", size="tiny", objective="mlm",
                                    steps=4, batch_size=8, eval_every=100, eval_sequences=8, progress=False,
                                    warmup_steps=1))  # fmt: skip
    words = ["parser", "socket", "thread", "queue", "string", "number", "module", "object", "file", "path"]
    rels = {"next": lambda i: (i + 1) % 10, "prev": lambda i: (i - 1) % 10}
    triples = [(words[i], r, words[f(i)]) for r, f in rels.items() for i in range(10)]
    rng = random.Random(0)
    rng.shuffle(triples)
    graph = root / "graph"
    _write(graph, {"train.tsv": "".join("\t".join(t) + "\n" for t in triples[:14]),
                   "dev.tsv": "".join("\t".join(t) + "\n" for t in triples[14:17]),
                   "test.tsv": "".join("\t".join(t) + "\n" for t in triples[17:]),
                   "relation2text.txt": "next\tcomes before\nprev\tcomes after\n"})  # fmt: skip
    return model, graph


@pytest.mark.parametrize("task", ["link", "triple", "relation"])
def test_train_and_eval_each_task(kg_setup, tmp_path, task, capsys):
    model, graph = kg_setup
    out = tmp_path / task
    argv = ["kg", "train", "--model", str(model), "--dataset", str(graph), "--task", task, "--epochs", "2",
            "--batch-size", "8", "--lr", "1e-3", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    test = res["test"]
    assert test["split"] == "test" and json.loads((out / "kg.json").read_text())["task"] == task
    if task == "link":
        n_ent = 10
        assert test["scored"] == 3 * 2 * n_ent  # 3 test triples x 2 sides x (the true one + 9 corruptions)
        for setting in ("raw", "filtered"):
            both = test[setting]["both"]
            assert 1 <= both["mr"] <= n_ent and both["count"] == 6 and 0 <= both["hits@10"] <= 1
        assert test["filtered"]["both"]["mr"] <= test["raw"]["both"]["mr"]  # filtering only removes rivals
    if task == "relation":
        assert test["filtered"]["mr"] <= test["raw"]["mr"] <= 2
    capsys.readouterr()
    assert main(["kg", "eval", "--model", str(out), "--dataset", str(graph), "--split", "dev", "--json",
                 "--no-progress"]) == 0  # fmt: skip
    again = json.loads(capsys.readouterr().out)
    assert again["split"] == "dev" and again["task"] == task


def test_score_user_triples(kg_setup, tmp_path, capsys):
    model, graph = kg_setup
    out = tmp_path / "m"
    assert main(["kg", "train", "--model", str(model), "--dataset", str(graph), "--task", "triple", "--epochs", "1",
                 "--no-progress", "--no-test", "--out", str(out)]) == 0  # fmt: skip
    mine = tmp_path / "mine.tsv"
    mine.write_text("parser\tnext\tsocket\nqueue\tprev\tparser\n")
    capsys.readouterr()
    assert main(["kg", "score", "--model", str(out), "--triples", str(mine), "--dataset", str(graph)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(0 <= float(line.split("\t")[3]) <= 1 for line in lines)
    mine.write_text("parser\tnext\tunheard_of\n")
    assert main(["kg", "score", "--model", str(out), "--triples", str(mine), "--dataset", str(graph)]) == 2
    assert "unknown entity 'unheard_of'" in capsys.readouterr().err
    assert main(["kg", "score", "--model", str(out), "--triples", str(mine)]) == 0  # by the names


def test_demo_graphs_end_to_end(kg_setup, tmp_path, monkeypatch, capsys):
    from fixtures_data import make_fake_archives

    model, _ = kg_setup
    archives = make_fake_archives(tmp_path / "archives")
    monkeypatch.setenv("LVBERT_HOME", str(tmp_path / "cache"))
    assert main(["data", "fetch", "demo", "--archives", str(archives)]) == 0
    for name in ("nations", "kinships", "umls"):
        out = tmp_path / name
        assert main(["kg", "train", "--model", str(model), "--dataset", name, "--task", "link", "--epochs", "1",
                     "--max-test", "1", "--no-progress", "--out", str(out)]) == 0  # fmt: skip
        res = json.loads((out / "results.json").read_text())
        assert res["test"]["full_protocol"] is False and res["test"]["filtered"]["both"]["count"] == 2


def test_kg_bad_input(kg_setup, tmp_path, capsys, other_vocab_data):
    model, graph = kg_setup
    base = ["kg", "train", "--dataset", str(graph), "--no-progress"]
    (tmp_path / "empty").mkdir()
    for extra, words in (
        (["--model", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], "not a model directory"),
        (["--model", str(model), "--task", "links", "--out", str(tmp_path / "o")], "--task must be one of"),
        (["--model", str(model), "--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "o")], "neither a demo graph"),
    ):
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("lvbert: error:") and words in err and err.count("\n") == 0, err
    assert main(["kg", "eval", "--model", str(model), "--dataset", str(graph)]) == 2
    assert "is not a KG model" in capsys.readouterr().err
