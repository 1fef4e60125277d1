"""``lvbert eval``: masked-LM accuracy on fixed masks for lvbert MLM and ELECTRA run folders and for a
Hugging Face BERT MLM checkpoint on disk, on prepared data or on text packed with the model's tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

from lvbert.cli import main
from lvbert.recipes.pretrain import PretrainConfig, pretrain

KEYS = {"mlm_accuracy", "mlm_loss", "masked_tokens", "sequences", "unigram_accuracy", "kind", "seq_len"}


def _pretrain(real_data, out, objective):
    return pretrain(PretrainConfig(data=str(real_data), out=str(out), arch="CAFA", size="tiny", objective=objective,
                                   steps=3, batch_size=8, eval_every=100, eval_sequences=8, progress=False,
                                   warmup_steps=1))  # fmt: skip


@pytest.fixture(scope="module")
def mlm_run(real_data, tmp_path_factory):
    return _pretrain(real_data, tmp_path_factory.mktemp("eval") / "mlm", "mlm")


def _eval(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["eval", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_on_prepared_data_is_exact_and_repeatable(mlm_run, real_data, capsys):
    a = _eval(capsys, "--model", mlm_run, "--data", real_data, "--sequences", "16")
    assert KEYS <= set(a) and a["kind"] == "lvbert" and a["sequences"] == 16 and a["masked_tokens"] > 0
    assert 0.0 <= a["mlm_accuracy"] <= 1.0 and a["mlm_loss"] > 0
    assert _eval(capsys, "--model", mlm_run, "--data", real_data, "--sequences", "16") == a
    other_masks = _eval(capsys, "--model", mlm_run, "--data", real_data, "--sequences", "16", "--seed", "1")
    assert other_masks["masked_tokens"] != a["masked_tokens"] or other_masks["mlm_loss"] != a["mlm_loss"]


def test_eval_of_an_electra_run_uses_its_generator(real_data, tmp_path, capsys):
    run = _pretrain(real_data, tmp_path / "electra", "electra")
    r = _eval(capsys, "--model", run, "--data", real_data, "--sequences", "8")
    assert r["kind"] == "lvbert-generator" and 0 <= r["mlm_accuracy"] <= 1


def test_eval_of_a_random_hugging_face_bert_checkpoint_on_a_corpus(real_corpus, real_tokenizer, real_data, tmp_path,
                                                                   capsys):  # fmt: skip
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tok = AutoTokenizer.from_pretrained(real_tokenizer)
    torch.manual_seed(0)
    hf = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, max_position_embeddings=64))  # fmt: skip
    hf.save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    r = _eval(capsys, "--model", tmp_path / "bert", "--corpus", real_corpus, "--seq-len", "64", "--sequences", "16")
    assert r["kind"] == "bert" and r["corpus"] == [str(real_corpus)] and r["seq_len"] == 64
    assert 0.0 <= r["mlm_accuracy"] < 0.05  # random weights: near zero, and the unigram baseline is well above
    assert r["unigram_accuracy"] > r["mlm_accuracy"]
    on_data = _eval(capsys, "--model", tmp_path / "bert", "--data", real_data, "--sequences", "16")
    assert on_data["kind"] == "bert"


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--data", "{data}", "--corpus", "{corpus}"], "exactly one of --data"),
        ([], "exactly one of --data"),
        (["--data", "{other}"], "another tokenizer than the model's"),
        (["--data", "{data}", "--sequences", "0"], "--sequences must be at least 1"),
    ],
)
def test_eval_bad_input_is_one_line(mlm_run, real_data, real_corpus, other_vocab_data, capsys, extra, words):
    fill = {"data": real_data, "corpus": real_corpus, "other": other_vocab_data}
    capsys.readouterr()
    assert main(["eval", "--model", str(mlm_run), *[a.format(**fill) for a in extra]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("lvbert: error:") and words in err, err


def test_eval_refuses_a_folder_that_is_not_a_model(real_data, tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path), "--data", str(real_data)]) == 2
    assert "not a model directory" in capsys.readouterr().err
