"""SQuAD 1.1 / 2.0: reading, windows and offsets (answers recovered exactly from their token spans),
post-processing, the official metrics against hand-computed values, fine-tuning, prediction, the
pipeline, and bad input. The data are SQuAD-layout files built here with known spans."""

from __future__ import annotations

import json
import random

import pytest

from lvbert.cli import main
from lvbert.errors import LvBertError
from lvbert.tasks.squad import (
    QAExample,
    apply_threshold,
    best_threshold,
    encode_windows,
    exact_match,
    f1,
    normalize_answer,
    predict_answers,
    read_squad,
    squad_scores,
)

WORDS = ("parser socket thread queue string number module object file path list value error event record table "
         "column index array buffer").split()  # fmt: skip


def make_squad(path, n: int, seed: int, version: str = "1.1", long: bool = False) -> list:
    """Contexts of "the <animal> keeps the <object>." facts; "What does the <animal> keep?" -> <object>."""
    rng = random.Random(seed)
    keepers = ["cat", "dog", "owl", "fox", "bee", "ant"]
    articles = []
    for a in range(n):
        facts = []
        pairs = list(zip(rng.sample(keepers, 3), rng.sample(WORDS, 3)))
        filler = " ".join(rng.choices(WORDS, k=60 if long else 4))
        text = filler + " "
        qas = []
        for k, (who, what) in enumerate(pairs):
            sentence = f"the {who} keeps the {what}. "
            start = len(text) + sentence.index(what)
            text += sentence + (" ".join(rng.choices(WORDS, k=40)) + " " if long else "")
            qas.append({"id": f"q{a}-{k}", "question": f"what does the {who} keep?",
                        "answers": [{"text": what, "answer_start": start}]})  # fmt: skip
            facts.append(what)
        if version == "2.0":
            qas.append({"id": f"q{a}-none", "question": "what does the yak keep?", "answers": [], "is_impossible": True,
                        "plausible_answers": [{"text": facts[0], "answer_start": text.index(facts[0])}]})  # fmt: skip
        articles.append({"title": f"t{a}", "paragraphs": [{"context": text.strip(), "qas": qas}]})
    path.write_text(json.dumps({"version": version, "data": articles}))
    return articles


@pytest.fixture(scope="module")
def tok(real_tokenizer):
    from lvbert.data.tokenizer import load_tokenizer

    return load_tokenizer(real_tokenizer)


# ----------------------------------------------------------------------------- reading and windows


def test_reading_both_versions(tmp_path):
    make_squad(tmp_path / "v1.json", 3, 0)
    make_squad(tmp_path / "v2.json", 3, 0, "2.0")
    v1 = read_squad(tmp_path / "v1.json")
    v2 = read_squad(tmp_path / "v2.json", "2.0")
    assert len(v1) == 9 and len(v2) == 12 and sum(e.is_impossible for e in v2) == 3
    ex = v1[0]
    text, start = ex.answers[0]
    assert ex.context[start : start + len(text)] == text
    with pytest.raises(LvBertError, match="SQuAD 2.0; use --task squad2"):
        read_squad(tmp_path / "v2.json", "1.1")
    (tmp_path / "bad.json").write_text('{"data": [{"paragraphs": [{"qas": []}]}]}')
    with pytest.raises(LvBertError, match="not in SQuAD's layout"):
        read_squad(tmp_path / "bad.json")
    (tmp_path / "nojson.json").write_text("[1, 2]")
    with pytest.raises(LvBertError, match="not a SQuAD JSON file"):
        read_squad(tmp_path / "nojson.json")


def test_windows_recover_every_answer_exactly_from_its_token_span(tmp_path, tok):
    make_squad(tmp_path / "long.json", 4, 1, long=True)
    examples = read_squad(tmp_path / "long.json")
    w, misaligned = encode_windows(tok, examples, max_len=64, stride=16, max_query=16, train=True)
    assert misaligned == 0 and len(w) > len(examples)  # long contexts: several windows each
    for i in range(len(w)):
        ex = examples[w.example[i]]
        s, e = w.start_positions[i], w.end_positions[i]
        assert len(w.input_ids[i]) <= 64
        got = ex.context[w.offsets[i][s][0] : w.offsets[i][e][1]]
        assert got == ex.answers[0][0]  # 1.1: windows without the answer are dropped
    # 2.0: a window without the answer points at [CLS]
    make_squad(tmp_path / "v2.json", 4, 1, "2.0", long=True)
    w2, _ = encode_windows(tok, read_squad(tmp_path / "v2.json", "2.0"), 64, 16, 16, train=True, version="2.0")
    assert 0 in w2.start_positions and len(w2) > len(w)


def test_misaligned_answers_are_counted_and_skipped(tmp_path, tok):
    make_squad(tmp_path / "v1.json", 2, 0)
    data = json.loads((tmp_path / "v1.json").read_text())
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 3
    (tmp_path / "v1.json").write_text(json.dumps(data))
    w, misaligned = encode_windows(tok, read_squad(tmp_path / "v1.json"), train=True)
    assert misaligned == 1 and len(w) == 5


# ----------------------------------------------------------------------------- metrics by hand


def test_normalisation_and_metrics_by_hand():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert exact_match("the cat", "Cat") == 1.0 and exact_match("a cat", "dog") == 0.0
    # "big red dog" vs "red dog": overlap 2, precision 2/3, recall 1 -> F1 0.8
    assert f1("big red dog", "the red dog") == pytest.approx(0.8)
    assert f1("", "") == 1.0 and f1("x", "") == 0.0
    exs = [QAExample("a", "q", "c", [("red dog", 0), ("dog", 4)]), QAExample("b", "q", "c", [], True)]
    s = squad_scores(exs, {"a": "big red dog", "b": ""})
    assert s["exact"] == pytest.approx(50.0)  # a: not exact; b: "" right
    assert s["f1"] == pytest.approx((80.0 + 100.0) / 2)  # a: the best gold is "red dog" (F1 0.8)
    assert s["HasAns_f1"] == pytest.approx(80.0) and s["NoAns_exact"] == 100.0


def test_best_threshold_by_hand():
    exs = [QAExample("a", "q", "c", [("x", 0)]), QAExample("b", "q", "c", [], True), QAExample("c", "q", "c", [("y", 0)])]
    preds = {"a": "x", "b": "z", "c": "wrong"}
    margins = {"a": -2.0, "b": 1.0, "c": 3.0}  # null - best span: high means "no answer" is likelier
    found = best_threshold(exs, preds, margins)
    # threshold -2: a answered (right), b and c "" (b right, c wrong) -> 2 of 3 exact; the best
    assert found["best_exact"] == pytest.approx(200 / 3) and found["best_exact_thresh"] == -2.0
    assert apply_threshold(preds, margins, -2.0) == {"a": "x", "b": "", "c": ""}


def test_post_processing_picks_the_best_valid_span():
    ex = QAExample("q", "what?", "alpha beta gamma", [("beta", 6)])
    from lvbert.tasks.squad import Windows

    offsets = [None, None, None, (0, 5), (6, 10), (11, 16), None]  # [CLS] q [SEP] alpha beta gamma [SEP]
    w = Windows([[0] * 7], [[0] * 7], [0], [offsets])
    start = [[5.0, 0, 0, 1.0, 4.0, 0.5, 9.0]]  # the [SEP] at 6 is not context: never a span
    end = [[5.0, 0, 0, 0.5, 3.0, 2.0, 9.0]]
    best, nbest, margin = predict_answers([ex], w, start, end)
    assert best["q"] == "beta" and nbest["q"][0]["score"] == 7.0
    assert nbest["q"][1]["text"] == "beta gamma"  # 4 + 2
    assert margin["q"] == pytest.approx(10.0 - 7.0)  # the null score: [CLS] start + end


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def qa_model(real_data, tmp_path_factory):
    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    root = tmp_path_factory.mktemp("qa")
    return pretrain(PretrainConfig(data=str(real_data), out=str(root / "lm"), arch="CAFAFA", size="tiny", objective="mlm",
                                   steps=4, batch_size=8, eval_every=100, eval_sequences=8, progress=False,
                                   warmup_steps=1))  # fmt: skip


@pytest.mark.parametrize("task, version", [("squad", "1.1"), ("squad2", "2.0")])
def test_finetune_predict_and_pipeline(qa_model, tmp_path, task, version):
    make_squad(tmp_path / "train.json", 60, 1, version)
    make_squad(tmp_path / "dev.json", 10, 2, version)
    out = tmp_path / "run"
    argv = ["finetune", "--model", str(qa_model), "--task", task, "--train-file", str(tmp_path / "train.json"),
            "--dev-file", str(tmp_path / "dev.json"), "--epochs", "3", "--batch-size", "16", "--lr", "2e-3",
            "--layer-decay", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    qa = json.loads((out / "qa.json").read_text())
    assert qa["version"] == version and qa["max_len"] == 128  # the tiny model's positions
    assert (qa["threshold"] is not None) == (version == "2.0")
    f1s = [h["f1"] for h in res["runs"][0]["history"]]
    assert max(f1s) > 30, f1s  # it learns to point at the object, not just run
    assert main(["predict", "--model", str(out), "--task", task, "--dev-file", str(tmp_path / "dev.json"), "--out",
                 str(tmp_path / "pred")]) == 0  # fmt: skip
    preds = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(preds) == len(read_squad(tmp_path / "dev.json", version))
    assert (tmp_path / "pred" / "nbest_predictions.json").exists()
    assert (tmp_path / "pred" / "null_odds.json").exists() == (version == "2.0")
    from transformers import AutoModelForQuestionAnswering

    from lvbert.tasks.qa import QuestionAnswerer

    assert type(AutoModelForQuestionAnswering.from_pretrained(out)).__name__ == "LvBertForQuestionAnswering"
    context = "the cat keeps the socket. the dog keeps the file."
    answer = QuestionAnswerer(out)(question="what does the cat keep?", context=context)
    assert set(answer) >= {"answer", "start", "end", "score"}
    assert context[answer["start"] : answer["end"]] == answer["answer"]


def test_squad_bad_input_is_one_line(qa_model, tmp_path, capsys):
    make_squad(tmp_path / "v2.json", 3, 0, "2.0")
    cases = [
        (["--task", "squad", "--train-file", str(tmp_path / "v2.json"), "--dev-file", str(tmp_path / "v2.json")],
         "use --task squad2"),  # fmt: skip
        (["--task", "squad", "--dev-file", str(tmp_path / "v2.json")], "needs --train-file"),
        (["--task", "squad", "--train-file", str(tmp_path / "none.json"), "--dev-file", str(tmp_path / "none.json")],
         "does not exist"),  # fmt: skip
    ]
    for extra, words in cases:
        capsys.readouterr()
        assert main(["finetune", "--model", str(qa_model), "--out", str(tmp_path / "o"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("lvbert: error:") and words in err and err.count("\n") == 0, err
    assert not (tmp_path / "o").exists()
    assert main(["predict", "--model", str(qa_model), "--task", "squad", "--dev-file", str(tmp_path / "v2.json"),
                 "--out", str(tmp_path / "p")]) == 2  # fmt: skip
    assert "not a SQuAD model" in capsys.readouterr().err

