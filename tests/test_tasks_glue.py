"""Every GLUE layout read from small fixture files written here in the official formats.

:func:`write_glue` is also used by the fine-tuning tests (imported as a sibling
test module): it writes ``root/<Task>/*.tsv`` exactly as GLUE's download does,
with ``n`` rows per split whose label is 1 (or the second class) when the text
contains the word "good" -- a pattern a tiny model can learn.
"""

from __future__ import annotations

import pytest

from lvbert.errors import LvBertError
from lvbert.tasks import GLUE_TASKS, get_task, glue_tasks_in

WORDS = "the a movie film plot actor scene story was is very quite rather".split()


def _sentence(i: int, good: bool) -> str:
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(4 + i % 5)]
    words.insert(i % len(words), "good" if good else "bad")
    return " ".join(words)


def _tsv(path, header, rows, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(map(str, r)) for r in rows]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]  # fmt: skip
STSB_HEAD = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]


def write_glue(root, n: int = 6, tasks=None) -> dict[str, dict[str, list]]:
    """Write GLUE-format fixtures; returns {task: {split: [(text, pair, label, index), ...]}} as expected back."""
    expected: dict[str, dict[str, list]] = {}
    want = set(tasks or GLUE_TASKS)

    def rows(split, k):  # (i, good, s1, s2)
        off = {"train": 0, "dev": 1000, "test": 2000}.get(split.split("_")[0], 0) + k
        return [(i, i % 2 == 1, _sentence(off + i, i % 2 == 1), _sentence(off + i + 1, False)) for i in range(n)]

    if "cola" in want:
        d, e = root / "CoLA", {}
        for split in ("train", "dev"):
            r = rows(split, 0)
            _tsv(d / f"{split}.tsv", None, [("gj04", int(g), "" if g else "*", s) for i, g, s, _ in r])
            e[split] = [(s, None, str(int(g)), str(i)) for i, g, s, _ in r]
        r = rows("test", 0)
        _tsv(d / "test.tsv", ["index", "sentence"], [(i, s) for i, g, s, _ in r])
        e["test"] = [(s, None, None, str(i)) for i, g, s, _ in r]
        expected["cola"] = e
    if "sst2" in want:
        d, e = root / "SST-2", {}
        for split in ("train", "dev"):
            r = rows(split, 1)
            # SST-2 sentences keep a trailing space and bare quotes (the files are not quoted)
            _tsv(d / f"{split}.tsv", ["sentence", "label"], [(f'" {s} " ', int(g)) for i, g, s, _ in r])
            e[split] = [(f'" {s} " ', None, str(int(g)), str(k)) for k, (i, g, s, _) in enumerate(r)]
        r = rows("test", 1)
        _tsv(d / "test.tsv", ["index", "sentence"], [(i, s) for i, g, s, _ in r])
        e["test"] = [(s, None, None, str(i)) for i, g, s, _ in r]
        expected["sst2"] = e
    if "mrpc" in want:
        d, e = root / "MRPC", {}
        head = ["#1 ID", "#2 ID", "#1 String", "#2 String"]
        for split in ("train", "dev"):
            r = rows(split, 2)
            _tsv(d / f"{split}.tsv", ["Quality", *head], [(int(g), 700 + i, 900 + i, a, b) for i, g, a, b in r], bom=True)
            e[split] = [(a, b, str(int(g)), str(k)) for k, (i, g, a, b) in enumerate(r)]
        r = rows("test", 2)
        _tsv(d / "test.tsv", ["index", *head], [(i, 700 + i, 900 + i, a, b) for i, g, a, b in r])
        e["test"] = [(a, b, None, str(i)) for i, g, a, b in r]
        expected["mrpc"] = e
    if "stsb" in want:
        d, e = root / "STS-B", {}
        meta = ("main-captions", "MSRvid", "2012test", "0001", "none", "none")
        for split in ("train", "dev"):
            r = rows(split, 3)
            _tsv(d / f"{split}.tsv", [*STSB_HEAD, "score"], [(i, *meta, a, b, f"{4.2 * g + 0.4:.3f}") for i, g, a, b in r])
            e[split] = [(a, b, f"{4.2 * g + 0.4:.3f}", str(i)) for i, g, a, b in r]
        r = rows("test", 3)
        _tsv(d / "test.tsv", STSB_HEAD, [(i, *meta, a, b) for i, g, a, b in r])
        e["test"] = [(a, b, None, str(i)) for i, g, a, b in r]
        expected["stsb"] = e
    if "qqp" in want:
        d, e = root / "QQP", {}
        for split in ("train", "dev"):
            r = rows(split, 4)
            body = [(100 + i, 2 * i, 2 * i + 1, a, b, int(g)) for i, g, a, b in r]
            body.insert(1, (99, 1, 2, "a broken row with too few columns"))  # as in the real QQP train file
            _tsv(d / f"{split}.tsv", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], body)
            e[split] = [(a, b, str(int(g)), str(100 + i)) for i, g, a, b in r]
        r = rows("test", 4)
        _tsv(d / "test.tsv", ["id", "question1", "question2"], [(i, a, b) for i, g, a, b in r])
        e["test"] = [(a, b, None, str(i)) for i, g, a, b in r]
        expected["qqp"] = e
    if "mnli" in want:
        d, e = root / "MNLI", {}
        names = ("contradiction", "entailment", "neutral")
        for split, extra in (("train", ["label1"]), ("dev_matched", [f"label{k}" for k in range(1, 6)]),
                             ("dev_mismatched", [f"label{k}" for k in range(1, 6)])):  # fmt: skip
            r = rows(split, 5)
            lab = [names[1] if g else names[i % 4 // 2 * 2] for i, g, a, b in r]
            body = [(i, 31193, f"{i}n", "government", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b, *[lab[i]] * len(extra), lab[i])
                    for i, g, a, b in r]  # fmt: skip
            _tsv(d / f"{split}.tsv", [*MNLI_HEAD, *extra, "gold_label"], body)
            e[split] = [(a, b, lab[i], str(i)) for i, g, a, b in r]
        for split in ("test_matched", "test_mismatched"):
            r = rows(split, 5)
            _tsv(d / f"{split}.tsv", MNLI_HEAD, [(i, 1, f"{i}c", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b) for i, g, a, b in r])
            e[split] = [(a, b, None, str(i)) for i, g, a, b in r]
        expected["mnli"] = e
    pair_tasks = {"qnli": ("QNLI", "question", "sentence", ("entailment", "not_entailment")),
                  "rte": ("RTE", "sentence1", "sentence2", ("entailment", "not_entailment")),
                  "wnli": ("WNLI", "sentence1", "sentence2", ("0", "1"))}  # fmt: skip
    for task, (folder, c1, c2, names) in pair_tasks.items():
        if task not in want:
            continue
        d, e = root / folder, {}
        for split in ("train", "dev"):
            r = rows(split, 6)
            _tsv(d / f"{split}.tsv", ["index", c1, c2, "label"], [(i, a, b, names[int(g)]) for i, g, a, b in r])
            e[split] = [(a, b, names[int(g)], str(i)) for i, g, a, b in r]
        r = rows("test", 6)
        _tsv(d / "test.tsv", ["index", c1, c2], [(i, a, b) for i, g, a, b in r])
        e["test"] = [(a, b, None, str(i)) for i, g, a, b in r]
        expected[task] = e
    return expected


@pytest.mark.parametrize("name", list(GLUE_TASKS))
def test_glue_layout(tmp_path, name, capsys):
    expected = write_glue(tmp_path, n=6, tasks=[name])[name]
    task = get_task(name)
    folder = tmp_path / task.glue_dir
    assert set(expected) == set(task.splits)
    for split, want in expected.items():
        got = task.read(folder, split)
        assert [(x.text, x.text_pair, x.label, x.index) for x in got] == want, split
        if want[0][2] is not None:
            ids = task.label_ids(got)
            assert len(ids) == len(want)
            if task.is_regression:
                assert all(isinstance(v, float) for v in ids)
            else:
                assert [task.labels[i] for i in ids] == [w[2] for w in want]
    if name == "qqp":
        assert "skipped 1 malformed row" in capsys.readouterr().err


def test_glue_task_facts():
    t = GLUE_TASKS
    assert t["cola"].metrics == ("mcc",)
    assert t["stsb"].metrics == ("pearson", "spearman") and t["stsb"].is_regression
    assert t["mrpc"].metrics == t["qqp"].metrics == ("f1", "accuracy")
    assert {n for n, x in t.items() if x.epochs == 10} == {"rte", "stsb"}
    assert {n for n, x in t.items() if x.both_orders} == {"mrpc", "qqp", "stsb"}
    assert t["mnli"].dev_splits == ("dev_matched", "dev_mismatched")
    assert t["mnli"].test_splits == {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"}
    assert t["mnli"].labels == ("contradiction", "entailment", "neutral")
    assert [x.test_splits["test"] for n, x in t.items() if n != "mnli"] == [
        "CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "QNLI.tsv", "RTE.tsv", "WNLI.tsv"
    ]  # fmt: skip


def test_glue_tasks_in(tmp_path):
    write_glue(tmp_path, n=2, tasks=["rte", "cola"])
    assert [t.name for t, _ in glue_tasks_in(tmp_path)] == ["cola", "rte"]  # GLUE order
    with pytest.raises(LvBertError, match="no GLUE task folders"):
        glue_tasks_in(tmp_path / "CoLA")


def test_score_is_mean_of_metrics_on_first_dev_split():
    t = GLUE_TASKS["mrpc"]
    assert t.score({"dev": {"f1": 0.8, "accuracy": 0.6}}) == pytest.approx(0.7)
    m = GLUE_TASKS["mnli"]
    assert m.score({"dev_matched": {"accuracy": 0.5}, "dev_mismatched": {"accuracy": 0.9}}) == 0.5


# ----------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    write_glue(tmp_path, n=2, tasks=["sst2"])
    (tmp_path / "SST-2" / "dev.tsv").unlink()
    with pytest.raises(LvBertError, match=r"missing file .*dev.tsv \(sst2 dev\)"):
        get_task("sst2").read(tmp_path / "SST-2", "dev")


def test_missing_column(tmp_path):
    write_glue(tmp_path, n=2, tasks=["rte"])
    p = tmp_path / "RTE" / "train.tsv"
    p.write_text(p.read_text().replace("sentence2", "hypothesis", 1))
    with pytest.raises(LvBertError, match="missing column.*'sentence2'.*hypothesis"):
        get_task("rte").read(tmp_path / "RTE", "train")


def test_label_outside_label_set(tmp_path):
    write_glue(tmp_path, n=2, tasks=["sst2"])
    p = tmp_path / "SST-2" / "train.tsv"
    p.write_text(p.read_text() + "an extra sentence\t2\n")
    task = get_task("sst2")
    with pytest.raises(LvBertError, match=r"label '2' of example 2 is not in the label set \['0', '1'\]"):
        task.label_ids(task.read(tmp_path / "SST-2", "train"))


def test_regression_label_not_a_number(tmp_path):
    write_glue(tmp_path, n=2, tasks=["stsb"])
    p = tmp_path / "STS-B" / "dev.tsv"
    p.write_text(p.read_text().replace("4.600", "high"))
    task = get_task("stsb")
    with pytest.raises(LvBertError, match="not a number"):
        task.label_ids(task.read(tmp_path / "STS-B", "dev"))


def test_empty_split(tmp_path):
    write_glue(tmp_path, n=2, tasks=["qnli", "cola"])
    (tmp_path / "QNLI" / "dev.tsv").write_text("index\tquestion\tsentence\tlabel\n")
    with pytest.raises(LvBertError, match="has no examples"):
        get_task("qnli").read(tmp_path / "QNLI", "dev")
    (tmp_path / "CoLA" / "dev.tsv").write_text("")
    with pytest.raises(LvBertError, match="has no examples"):
        get_task("cola").read(tmp_path / "CoLA", "dev")


def test_short_row_without_header(tmp_path):
    write_glue(tmp_path, n=2, tasks=["cola"])
    p = tmp_path / "CoLA" / "train.tsv"
    p.write_text(p.read_text() + "gj04\t1\n")
    with pytest.raises(LvBertError, match=r"train.tsv:3: 2 column\(s\), expected at least 4"):
        get_task("cola").read(tmp_path / "CoLA", "train")


def test_unknown_task_and_misplaced_options(tmp_path):
    with pytest.raises(LvBertError, match="unknown task 'sst3'.*--text-column"):
        get_task("sst3")
    with pytest.raises(LvBertError, match="are for file tasks"):
        get_task("sst2", text_column="sentence")
    with pytest.raises(LvBertError, match="glue_tasks_in"):
        get_task("glue")
