"""Tasks over user CSV/TSV/JSONL files and the demo tasks by name."""

from __future__ import annotations

import json

import pytest

from lvbert.errors import LvBertError
from lvbert.tasks import get_task


def test_csv_pair_task_with_quotes(tmp_path):
    (tmp_path / "train.csv").write_text('id,q,a,y\n7,"Is it, really?",yes,10\n8,plain,"say ""hi""",2\n9,x,y,10\n')
    (tmp_path / "dev.csv").write_text("id,q,a,y\n1,x,y,2\n")
    task = get_task("mine", tmp_path, text_column="q", text_pair_column="a", label_column="y")
    assert task.labels == ("2", "10")  # integer labels sort numerically
    assert task.metrics == ("accuracy", "macro_f1")
    assert task.is_pair and "test" not in task.splits and task.test_splits == {}
    train = task.read(tmp_path, "train")
    assert [(x.text, x.text_pair, x.label) for x in train] == [("Is it, really?", "yes", "10"), ("plain", 'say "hi"', "2"), ("x", "y", "10")]
    assert task.label_ids(train) == [1, 0, 1]


def test_jsonl_task_with_validation_and_test(tmp_path):
    rows = [{"body": f"text {i}", "stars": ["neg", "pos"][i % 2]} for i in range(4)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "validation.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"body": "unlabelled"}) + "\n")
    task = get_task("reviews", tmp_path, text_column="body", label_column="stars")
    assert task.labels == ("neg", "pos") and task.splits["dev"].file == "validation.jsonl"
    assert task.test_splits == {"test": "reviews.tsv"}
    assert task.read(tmp_path, "test")[0].text == "unlabelled"
    (tmp_path / "validation.jsonl").write_text('{"body": "no label"}\n')
    with pytest.raises(LvBertError, match="missing key.*'stars'"):
        task.read(tmp_path, "dev")
    (tmp_path / "validation.jsonl").write_text("[1, 2]\n")
    with pytest.raises(LvBertError, match="expected a JSON object"):
        task.read(tmp_path, "dev")


def test_regression_and_explicit_labels(tmp_path):
    (tmp_path / "train.tsv").write_text("s\tscore\na\t0.5\nb\t1.5\n")
    (tmp_path / "dev.tsv").write_text("s\tscore\nc\t1.0\n")
    task = get_task("sim", tmp_path, text_column="s", label_column="score", regression=True)
    assert task.is_regression and task.num_labels == 1 and task.metrics == ("pearson", "spearman")
    assert task.label_ids(task.read(tmp_path, "train")) == [0.5, 1.5]
    fixed = get_task("sim", tmp_path, text_column="s", label_column="score", labels=["1.5", "0.5", "1.0"])
    assert fixed.labels == ("1.5", "0.5", "1.0")


def test_file_task_bad_input(tmp_path):
    with pytest.raises(LvBertError, match="does not exist"):
        get_task("t", tmp_path / "nope", text_column="s")
    (tmp_path / "train.tsv").write_text("s\tlabel\na\tx\nb\tx\n")
    with pytest.raises(LvBertError, match="no dev file"):
        get_task("t", tmp_path, text_column="s")
    (tmp_path / "dev.tsv").write_text("s\tlabel\nc\ty\n")
    with pytest.raises(LvBertError, match="only one label value 'x'"):
        get_task("t", tmp_path, text_column="s")
    (tmp_path / "train.tsv").write_text("s\tlabel\na\tx\nb\tz\n")
    task = get_task("t", tmp_path, text_column="s")
    with pytest.raises(LvBertError, match=r"label 'y' .* not in the label set \['x', 'z'\]"):
        task.label_ids(task.read(tmp_path, "dev"))
    with pytest.raises(LvBertError, match="missing column.*'body'"):
        get_task("t", tmp_path, text_column="body", labels=["x", "z"]).read(tmp_path, "train")
    with pytest.raises(LvBertError, match="give --data-dir"):
        get_task("t", None, text_column="s")


def test_demo_task_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LVBERT_HOME", str(tmp_path))
    with pytest.raises(LvBertError, match="demo task files not found"):
        get_task("polarity")
    d = tmp_path / "demo" / "tasks" / "bbc-topic"
    d.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (d / f"{split}.tsv").write_text("text\tlabel\nshares fell\tbusiness\nthe match\tsport\nnew phone\ttech\n")
    task = get_task("bbc-topic")
    assert task.labels == ("business", "sport", "tech") and task.test_splits == {"test": "bbc-topic.tsv"}
    assert len(task.read(d, "test")) == 3 and task.read(d, "test")[0].label is None


def test_encoding_one_text_a_pair_and_a_triple(tmp_path):
    from lvbert.data.tokenizer import train_tokenizer
    from lvbert.tasks import Example
    from lvbert.tasks.encoding import collate, encode, encode_triples

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat. a dog ran in the park. knowledge graphs hold triples.\n" * 20)
    tok = __import__("lvbert.data.tokenizer", fromlist=["load_tokenizer"]).load_tokenizer(
        train_tokenizer(corpus, tmp_path / "tok", vocab_size=200, progress=False))
    one = encode(tok, [Example("0", "the cat sat")], 16, "one")
    pair = encode(tok, [Example("0", "the cat", "a dog")], 16, "pair")
    cls, sep = tok.cls_token_id, tok.sep_token_id
    assert one.input_ids[0][0] == cls and one.input_ids[0][-1] == sep and set(one.token_type_ids[0]) == {0}
    assert pair.input_ids[0].count(sep) == 2 and pair.token_type_ids[0][-1] == 1
    tri = encode_triples(tok, [("the cat", "sat on", "the mat")], 32)
    ids, types = tri.input_ids[0], tri.token_type_ids[0]
    n = [len(tok("the cat", add_special_tokens=False)["input_ids"]), len(tok("sat on", add_special_tokens=False)["input_ids"]),
         len(tok("the mat", add_special_tokens=False)["input_ids"])]  # fmt: skip
    assert ids[0] == cls and [i for i, t in enumerate(ids) if t == sep] == [n[0] + 1, n[0] + n[1] + 2, len(ids) - 1]
    assert types == [0] * (n[0] + 2) + [1] * (n[1] + 1) + [0] * (n[2] + 1)  # head and tail A, relation B
    cut = encode_triples(tok, [("the cat " * 10, "sat", "the mat")], 12)
    assert len(cut.input_ids[0]) == 12 and cut.token_type_ids[0].count(1) == 2  # the longest part lost pieces
    batch = collate(tri, [0], tok.pad_token_id)
    assert batch["attention_mask"].sum() == len(ids)
