"""Packing layout, determinism, the loader, and bad input to ``prepare``."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fixtures_data import make_text, tiny_corpus, tiny_prepared, tiny_tokenizer  # noqa: F401 (pytest fixtures)
from lvbert.data.packed import PackedDataset, load_data_tokenizer, load_manifest
from lvbert.data.prepare import pack_document, prepare_data
from lvbert.errors import LvBertError


def test_pack_document_keeps_every_token_and_fits():
    rng = random.Random(0)
    sentences = [list(range(100 * i, 100 * i + n)) for i, n in enumerate([5, 40, 3, 70, 12, 9, 200, 4])]
    examples = pack_document(sentences, 32, rng)
    flat = [t for a, b in examples for t in a + b]
    assert flat == [t for s in sentences for t in s]  # nothing lost, order kept
    for a, b in examples:
        assert a and len(a) + len(b) + (3 if b else 2) <= 32


def test_layout_and_special_tokens(tiny_prepared):
    m = load_manifest(tiny_prepared)
    tok = load_data_tokenizer(tiny_prepared)
    cls, sep, pad = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
    assert m["seq_len"] == 32 and m["tokenizer"]["vocab_size"] == len(tok)
    assert m["splits"]["train"]["sequences"] > 0 and m["splits"]["valid"]["sequences"] > 0
    ids = np.load(tiny_prepared / "train_input_ids.npy", mmap_mode="r")
    types = np.load(tiny_prepared / "train_token_type_ids.npy", mmap_mode="r")
    assert ids.shape == types.shape == (m["splits"]["train"]["sequences"], 32) and ids.dtype == np.uint16
    full = 0
    for row, tt in zip(np.asarray(ids), np.asarray(types)):
        n = int((row != pad).sum())
        assert (row[n:] == pad).all() and (tt[n:] == 0).all()  # padding only at the tail
        assert row[0] == cls and row[n - 1] == sep
        seps = np.flatnonzero(row[:n] == sep)
        assert len(seps) in (1, 2)
        assert (tt[: seps[0] + 1] == 0).all() and (tt[seps[0] + 1 : n] == 1).all()
        full += n == 32
    assert full / len(ids) > 0.5  # most sequences are full
    # token counts in the manifest match the arrays
    real = int(np.isin(np.asarray(ids), [cls, sep, pad], invert=True).sum())
    assert real == m["splits"]["train"]["tokens"]


def test_dataset_items(tiny_prepared):
    ds = PackedDataset(tiny_prepared, "valid")
    item = ds[0]
    assert set(item) == {"input_ids", "token_type_ids", "attention_mask"}
    assert all(v.dtype == torch.long and v.shape == (32,) for v in item.values())
    assert torch.equal(item["attention_mask"], (item["input_ids"] != 0).long())
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)))
    assert batch["input_ids"].shape == (4, 32)
    with pytest.raises(LvBertError, match="longer than the model's 16 positions"):
        PackedDataset(tiny_prepared, max_positions=16)
    with pytest.raises(LvBertError, match="unknown split"):
        PackedDataset(tiny_prepared, "dev")


def test_byte_identical_for_same_input_and_seed(tiny_corpus, tiny_tokenizer, tiny_prepared, tmp_path):
    again = prepare_data(tiny_corpus, tiny_tokenizer, tmp_path / "again", 32, valid_fraction=0.1, progress=False)
    other_seed = prepare_data(tiny_corpus, tiny_tokenizer, tmp_path / "seed1", 32, valid_fraction=0.1, seed=1, progress=False)
    for name in ("manifest.json", "train_input_ids.npy", "train_token_type_ids.npy", "valid_input_ids.npy",
                 "tokenizer/tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_prepared / name).read_bytes()
    assert (other_seed / "train_input_ids.npy").read_bytes() != (tiny_prepared / "train_input_ids.npy").read_bytes()


@pytest.mark.slow
def test_multiprocess_output_is_identical(tiny_corpus, tiny_tokenizer, tiny_prepared, tmp_path):
    two = prepare_data(tiny_corpus, tiny_tokenizer, tmp_path / "two", 32, valid_fraction=0.1, num_proc=2, progress=False)
    for name in ("train_input_ids.npy", "valid_input_ids.npy", "manifest.json"):
        assert (two / name).read_bytes() == (tiny_prepared / name).read_bytes()


def test_validation_split_is_by_document_and_never_empty(tiny_tokenizer, tmp_path):
    corpus = tmp_path / "three.txt"
    corpus.write_text(make_text(num_docs=3, sentences=(12, 12)))
    out = prepare_data(corpus, tiny_tokenizer, tmp_path / "out", 32, valid_fraction=0.001, progress=False)
    m = load_manifest(out)
    assert m["splits"]["valid"]["documents"] == 1 and m["splits"]["valid"]["sequences"] > 0
    assert m["splits"]["train"]["documents"] == 2


@pytest.mark.parametrize(
    "text, seq_len, max_positions, message",
    [
        ("\n\n\n", 32, 512, "empty"),
        ("Just a few words.\n", 32, 512, "less than one sequence"),
        (None, 1024, 512, "longer than the model's 512 positions"),
    ],
)
def test_bad_input_leaves_no_output(tiny_tokenizer, tmp_path, text, seq_len, max_positions, message):
    corpus = tmp_path / "c.txt"
    corpus.write_text(text if text is not None else make_text(5))
    with pytest.raises(LvBertError, match=message):
        prepare_data(corpus, tiny_tokenizer, tmp_path / "out", seq_len, max_positions=max_positions, progress=False)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c.txt"]  # no temporary folder left either


def test_missing_corpus_tokenizer_and_existing_output(tiny_corpus, tiny_tokenizer, tiny_prepared, tmp_path):
    with pytest.raises(LvBertError, match="does not exist"):
        prepare_data(tmp_path / "none.txt", tiny_tokenizer, tmp_path / "o", 32, progress=False)
    with pytest.raises(LvBertError, match="tokenizer folder"):
        prepare_data(tiny_corpus, tmp_path / "no-tok", tmp_path / "o", 32, progress=False)
    with pytest.raises(LvBertError, match="exists and is not empty"):
        prepare_data(tiny_corpus, tiny_tokenizer, tiny_prepared, 32, progress=False)


def test_invalid_utf8_is_counted_in_the_manifest(tiny_tokenizer, tmp_path):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(make_text(8).encode() + b"bad \xff\xfe bytes here.\n")
    with pytest.warns(UnicodeWarning, match="2 bytes of invalid UTF-8"):
        out = prepare_data(corpus, tiny_tokenizer, tmp_path / "out", 32, progress=False)
    assert load_manifest(out)["sources"]["invalid_utf8_bytes"] == 2
