"""Corpus reading (all input kinds, bad input) and the WordPiece tokenizer round trip."""

from __future__ import annotations

import json
import warnings

import pytest

from fixtures_data import tiny_corpus, tiny_tokenizer  # noqa: F401 (pytest fixtures)
from lvbert.data.corpus import CorpusStats, iter_documents
from lvbert.data.tokenizer import SPECIAL_TOKENS, check_tokenizer_matches, load_tokenizer, train_tokenizer
from lvbert.errors import LvBertError


def test_text_modes_folder_glob_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n\n\nthree\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("four\n")
    (tmp_path / ".hidden").write_text("never\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "five\nsix"}) + "\n\n" + json.dumps({"body": ""}) + "\n")
    assert list(iter_documents(tmp_path / "a.txt")) == ["one\ntwo", "three"]
    assert list(iter_documents(tmp_path / "a.txt", doc_mode="line")) == ["one", "two", "three"]
    assert list(iter_documents(str(tmp_path / "*.txt"))) == ["one\ntwo", "three"]
    assert list(iter_documents(tmp_path / "c.jsonl", text_field="body")) == ["five\nsix"]
    stats = CorpusStats()
    docs = list(iter_documents(tmp_path, text_field="body", stats=stats))
    assert docs == ["one\ntwo", "three", "five\nsix", "four"]  # sorted: a.txt, c.jsonl, sub/b.txt
    assert stats.documents == 4 and len(stats.files) == 3


def test_saved_dataset(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["first doc", "second doc"]}).save_to_disk(str(tmp_path / "ds"))
    assert list(iter_documents(tmp_path / "ds")) == ["first doc", "second doc"]
    with pytest.raises(LvBertError, match="no column"):
        list(iter_documents(tmp_path / "ds", text_field="body"))


def test_missing_paths_and_bad_jsonl(tmp_path):
    with pytest.raises(LvBertError, match="does not exist"):
        list(iter_documents(tmp_path / "nope.txt"))
    with pytest.raises(LvBertError, match="no file matches"):
        list(iter_documents(str(tmp_path / "*.none")))
    (tmp_path / "x.jsonl").write_text('{"other": 1}\n')
    with pytest.raises(LvBertError, match="no field 'text'"):
        list(iter_documents(tmp_path / "x.jsonl"))


def test_invalid_utf8_is_replaced_counted_and_reported(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 ok\n\nfine \xff\xfe text\n")
    stats = CorpusStats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(iter_documents(tmp_path / "bad.txt", stats=stats))
    assert docs == ["caf\ufffd ok", "fine \ufffd\ufffd text"]
    assert stats.invalid_bytes == 3
    assert len(caught) == 1 and "3 bytes of invalid UTF-8" in str(caught[0].message)


def test_tokenizer_round_trip_through_autotokenizer(tiny_tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer))
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tok.pad_token_id == 0 and 100 < len(tok) <= 200
    enc = tok("The Supernet", "mask")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
    assert enc["token_type_ids"][-1] == 1 and enc["token_type_ids"][0] == 0
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "the supernet mask"  # uncased
    assert load_tokenizer(tiny_tokenizer).get_vocab() == tok.get_vocab()


def test_load_tokenizer_rejects_broken_folders(tmp_path, tiny_tokenizer):
    with pytest.raises(LvBertError, match="does not exist"):
        load_tokenizer(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LvBertError, match="not a tokenizer folder"):
        load_tokenizer(tmp_path / "empty")
    # the transformers 5 pitfall: a folder that loads with only the special tokens
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "vocab.txt").write_text("\n".join(SPECIAL_TOKENS) + "\n")
    (tmp_path / "tiny" / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    with pytest.raises(LvBertError):
        load_tokenizer(tmp_path / "tiny")


def test_check_tokenizer_matches(tiny_tokenizer):
    tok = load_tokenizer(tiny_tokenizer)
    n = len(tok)
    check_tokenizer_matches(tok, n)
    with pytest.raises(LvBertError, match=f"{n} tokens but the model only {n - 1}"):
        check_tokenizer_matches(tok, n - 1)
    with pytest.warns(UserWarning, match="unused"):
        check_tokenizer_matches(tok, n + 8)


def test_train_on_empty_corpus_fails_without_output(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(LvBertError, match="empty"):
        train_tokenizer(tmp_path / "empty.txt", tmp_path / "tok", vocab_size=100, progress=False)
    assert not (tmp_path / "tok").exists()
