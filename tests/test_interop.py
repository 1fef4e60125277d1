"""Hugging Face BERT / ELECTRA weights in an ``AF`` x N lvbert model: outputs match to 1e-5.

All source models are tiny and randomly initialised here (no hub access)."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertModel,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForPreTraining,
    ElectraModel,
)

from lvbert.errors import LvBertError
from lvbert.interop import config_from_hf, convert_state_dict, from_hf
from lvbert.modeling_lvbert import LvBertForMaskedLM, LvBertForPreTraining, LvBertModel

VOCAB = 120
TOL = dict(atol=1e-5, rtol=1e-5)


def bert_config(**kw) -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=40, **kw,
    )


def electra_config(**kw) -> ElectraConfig:
    return ElectraConfig(
        vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=40, **kw,
    )


def randomised(model):
    """Fresh HF init has zero biases and unit LayerNorms; perturb everything so a swapped
    weight cannot hide. Returns the model in eval mode."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def inputs(padded: bool):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (3, 14), generator=g)
    types = torch.zeros_like(ids)
    types[:, 7:] = 1
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 9:] = 0
        mask[2, 4:] = 0
        ids = ids.masked_fill(mask == 0, 0)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types)


def assert_close_at_real(a, b, mask):
    """Compare at real (non-padded) positions only: padded rows are meaningless in both models."""
    torch.testing.assert_close(a[mask.bool()], b[mask.bool()], **TOL)


@pytest.mark.parametrize("padded", [False, True])
def test_bert_masked_lm_parity(padded):
    torch.manual_seed(0)
    hf = randomised(BertForMaskedLM(bert_config()))
    ours = from_hf(hf, target="mlm")
    assert isinstance(ours, LvBertForMaskedLM) and ours.config.arch == "AF" * 3
    x = inputs(padded)
    with torch.no_grad():
        a = hf(**x, output_hidden_states=True)
        b = ours(**x, output_hidden_states=True)
    assert_close_at_real(a.hidden_states[-1], b.hidden_states[-1], x["attention_mask"])
    assert_close_at_real(a.logits, b.logits, x["attention_mask"])
    # Our head with labels returns logits only at the masked positions: the same rows.
    labels = torch.full_like(x["input_ids"], -100)
    labels[0, 2], labels[2, 1] = 5, 7
    with torch.no_grad():
        c = ours(**x, labels=labels)
        ref = hf(**x, labels=labels)
    torch.testing.assert_close(c.logits, a.logits[labels != -100], **TOL)
    torch.testing.assert_close(c.loss, ref.loss, **TOL)


@pytest.mark.parametrize("padded", [False, True])
def test_bert_base_parity_and_pooler_dropped(padded):
    torch.manual_seed(0)
    hf = randomised(BertModel(bert_config()))  # with a pooler
    ours = from_hf(hf, target="base")
    assert isinstance(ours, LvBertModel)
    assert not any("pooler" in k for k in ours.state_dict())
    x = inputs(padded)
    with torch.no_grad():
        assert_close_at_real(hf(**x).last_hidden_state, ours(**x).last_hidden_state, x["attention_mask"])


@pytest.mark.parametrize("padded", [False, True])
def test_electra_discriminator_parity(padded):
    torch.manual_seed(0)
    hf = randomised(ElectraForPreTraining(electra_config()))
    ours = from_hf(hf, target="pretraining")
    assert isinstance(ours, LvBertForPreTraining)
    assert ours.lvbert.embeddings.project is not None  # E 16 -> H 32
    x = inputs(padded)
    with torch.no_grad():
        a = hf(**x, output_hidden_states=True)
        b = ours(**x, output_hidden_states=True)
    assert_close_at_real(a.hidden_states[-1], b.hidden_states[-1], x["attention_mask"])
    assert_close_at_real(a.logits, b.logits, x["attention_mask"])


@pytest.mark.parametrize("padded", [False, True])
def test_electra_generator_parity(padded):
    torch.manual_seed(0)
    hf = randomised(ElectraForMaskedLM(electra_config()))
    ours = from_hf(hf, target="mlm")
    x = inputs(padded)
    with torch.no_grad():
        assert_close_at_real(hf(**x).logits, ours(**x).logits, x["attention_mask"])


def test_electra_base_model(tmp_path):
    hf = randomised(ElectraModel(electra_config()))
    hf.save_pretrained(tmp_path)  # keys without the 'electra.' prefix
    ours = from_hf(tmp_path, target="base")
    x = inputs(True)
    with torch.no_grad():
        assert_close_at_real(hf(**x).last_hidden_state, ours(**x).last_hidden_state, x["attention_mask"])


def test_load_from_directory(tmp_path):
    hf = randomised(BertForMaskedLM(bert_config()))
    hf.save_pretrained(tmp_path)
    ours = from_hf(str(tmp_path), target="mlm")
    assert ours.mlm_head.decoder.weight is ours.lvbert.embeddings.word_embeddings.weight  # tied, as the source
    x = inputs(True)
    with torch.no_grad():
        assert_close_at_real(hf(**x).logits, ours(**x).logits, x["attention_mask"])
    # and it saves / loads as an ordinary lvbert checkpoint
    ours.save_pretrained(tmp_path / "lv")
    again = LvBertForMaskedLM.from_pretrained(tmp_path / "lv").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(**x).logits, ours(**x).logits, atol=0, rtol=0)


def test_bert_for_pretraining_drops_next_sentence_head():
    hf = randomised(BertForPreTraining(bert_config()))
    ours = from_hf(hf, target="mlm")
    x = inputs(True)
    with torch.no_grad():
        assert_close_at_real(hf(**x).prediction_logits, ours(**x).logits, x["attention_mask"])


def test_untied_decoder_is_kept():
    # transformers 5 honours tie_word_embeddings=False: decoder and word embeddings differ.
    hf = randomised(BertForMaskedLM(bert_config(tie_word_embeddings=False)))
    assert hf.cls.predictions.decoder.weight is not hf.bert.embeddings.word_embeddings.weight
    ours = from_hf(hf, target="mlm")
    assert ours.config.tie_word_embeddings is False
    assert ours.mlm_head.decoder.weight is not ours.lvbert.embeddings.word_embeddings.weight
    x = inputs(False)
    with torch.no_grad():
        torch.testing.assert_close(hf(**x).logits, ours(**x).logits, **TOL)


def test_convert_state_dict_names():
    hf = BertForMaskedLM(bert_config())
    sd = convert_state_dict(hf.state_dict(), hf.config)
    att = hf.bert.encoder.layer[1].attention.self
    assert torch.equal(sd["lvbert.encoder.slots.2.qkv.weight"], torch.cat([att.query.weight, att.key.weight, att.value.weight]))
    assert torch.equal(sd["lvbert.encoder.slots.3.intermediate.weight"], hf.bert.encoder.layer[1].intermediate.dense.weight)
    assert "mlm_head.decoder.bias" in sd and not any(k.startswith("discriminator_head") for k in sd)
    assert set(sd) == set(LvBertForMaskedLM(config_from_hf(hf.config)).state_dict())


def test_config_from_hf():
    c = config_from_hf(electra_config(hidden_dropout_prob=0.0))
    assert (c.arch, c.hidden_size, c.embedding_size, c.intermediate_size) == ("AF" * 3, 32, 16, 64)
    assert c.hidden_dropout_prob == 0.0 and c.vocab_size == VOCAB
    assert config_from_hf(bert_config()).embedding_size == 32  # BERT: E == H, no projection
    assert config_from_hf(bert_config(), attention_probs_dropout_prob=0.0).attention_probs_dropout_prob == 0.0


@pytest.mark.parametrize(
    "config, words",
    [
        (bert_config(hidden_act="relu"), "hidden_act"),
        (bert_config(position_embedding_type="relative_key"), "position_embedding_type"),
        (bert_config(is_decoder=True), "decoder"),
        ({"model_type": "roberta", "hidden_size": 32}, "roberta"),
    ],
)
def test_unsupported_configs_are_refused(config, words):
    with pytest.raises(LvBertError, match=words):
        config_from_hf(config)


def test_missing_head_is_refused_unless_not_strict(tmp_path):
    hf = BertModel(bert_config())
    with pytest.raises(LvBertError, match="strict=False"):
        from_hf(hf, target="pretraining")
    ours = from_hf(hf, target="pretraining", strict=False)  # fresh discriminator head on BERT weights
    assert torch.equal(ours.lvbert.encoder.slots[0].qkv.bias[:32], hf.encoder.layer[0].attention.self.query.bias)
    with pytest.raises(LvBertError, match="target"):
        from_hf(hf, target="classifier")
    with pytest.raises(LvBertError, match="config.json"):
        from_hf(tmp_path, target="base")
