"""Masking statistics, special tokens, caps, whole words, determinism, the collator."""

from __future__ import annotations

import pytest
import torch

from fixtures_data import tiny_corpus, tiny_prepared, tiny_tokenizer  # noqa: F401 (pytest fixtures)
from lvbert.data.masking import MaskingConfig, MaskingVocab, MlmCollator, fixed_mask_validation, mask_tokens
from lvbert.errors import LvBertError

VOCAB = MaskingVocab(mask_token_id=4, vocab_size=1000, special_ids=[0, 1, 2, 3, 4], continuation_ids=range(500, 1000))


def _batch(bsz=512, seq_len=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (bsz, seq_len), generator=g)
    lengths = torch.randint(20, seq_len + 1, (bsz,), generator=g)
    attention = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    ids[:, 0] = 2
    ids[torch.arange(bsz), lengths - 1] = 3
    ids[attention == 0] = 0
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": attention}


@pytest.mark.parametrize("mode, mask_share, keep_share", [("bert", 0.8, 0.1), ("electra", 0.85, 0.15)])
def test_rates_specials_and_cap(mode, mask_share, keep_share):
    batch = _batch()
    collator = MlmCollator(VOCAB, MaskingConfig(mode=mode), seed=0)
    items = [{k: v[i] for k, v in batch.items()} for i in range(len(batch["input_ids"]))]
    out = collator(items)
    original, labels = batch["input_ids"], out["labels"]
    chosen = labels != -100
    maskable = (batch["attention_mask"] == 1) & (original > 4)
    assert not (chosen & ~maskable).any()  # never specials or padding
    assert torch.equal(labels[chosen], original[chosen])
    assert torch.equal(out["input_ids"][~chosen], original[~chosen])  # only chosen positions change
    per_seq = chosen.sum(1)
    assert per_seq.max() <= 19 and per_seq.min() >= 1  # int(0.155 * 128) = 19
    uncapped = maskable.sum(1) * 0.15 < 18
    rate = (per_seq[uncapped].float() / maskable.sum(1)[uncapped]).mean()
    assert abs(rate - 0.15) < 0.01
    masked = out["input_ids"][chosen]
    assert abs((masked == 4).float().mean() - mask_share) < 0.02
    assert abs((masked == original[chosen]).float().mean() - keep_share) < 0.02
    assert not ((masked >= 0) & (masked <= 3)).any()  # random replacements are never special


def test_whole_word_masking_takes_all_pieces():
    ids = torch.tensor([[2] + [10, 600, 601, 11, 12, 602] * 20 + [3] + [0] * 7])
    special = (ids <= 4)
    cont = (ids >= 500)
    config = MaskingConfig(mask_prob=0.3, whole_word=True, max_predictions=40)
    for seed in range(20):
        _, labels = mask_tokens(ids, special, mask_token_id=4, vocab_size=1000, config=config,
                                generator=torch.Generator().manual_seed(seed), continuation_mask=cont)
        chosen = labels[0] != -100
        for start in range(1, 121, 6):  # words: [10, ##600, ##601], [11], [12, ##602]
            assert len({bool(chosen[start + j]) for j in range(3)}) == 1
            assert chosen[start + 4] == chosen[start + 5]
        assert 1 <= int(chosen.sum()) <= 40


def test_seeded_and_independent_of_global_rng():
    items = [{k: v[i] for k, v in _batch(8).items()} for i in range(8)]
    a = MlmCollator(VOCAB, seed=3)(items)
    torch.manual_seed(123)
    torch.rand(10)
    b = MlmCollator(VOCAB, seed=3)(items)
    c = MlmCollator(VOCAB, seed=4)(items)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["labels"], c["labels"])


def test_collator_on_prepared_data_and_fixed_validation(tiny_prepared):
    from lvbert.data.packed import PackedDataset

    loader = torch.utils.data.DataLoader(PackedDataset(tiny_prepared), batch_size=8,
                                         collate_fn=MlmCollator(tiny_prepared, MaskingConfig(mode="electra"), seed=0))
    batch = next(iter(loader))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert batch["labels"].shape == (8, 32) and (batch["labels"] != -100).any()
    v1 = fixed_mask_validation(tiny_prepared, num_sequences=16, seed=0)
    v2 = fixed_mask_validation(tiny_prepared, num_sequences=16, seed=0)
    assert all(torch.equal(v1[k], v2[k]) for k in v1)
    assert not torch.equal(fixed_mask_validation(tiny_prepared, 16, seed=1)["labels"], v1["labels"])


def test_config_validation():
    with pytest.raises(LvBertError, match="unknown masking mode"):
        MaskingConfig(mode="xlnet")
    with pytest.raises(LvBertError):
        MaskingConfig(mask_prob=0.0)
    assert MaskingConfig().predictions_for(128) == 19 and MaskingConfig(max_predictions=5).predictions_for(128) == 5
