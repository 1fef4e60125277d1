"""The PyTorch model: parameter counts against the counting code, the three sub-layers,
heads and losses, save/load and Auto classes, the fill-mask pipeline. Tiny preset
everywhere except where a pinned parameter count needs a real size."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import lvbert  # noqa: F401  (registers the Auto classes)
from lvbert.arch import LV_BERT_SMALL, count_params, get_size, sublayer_params
from lvbert.modeling_lvbert import (
    AttentionLayer,
    DynamicConvLayer,
    FeedForwardLayer,
    LvBertConfig,
    LvBertForMaskedLM,
    LvBertForPreTraining,
    LvBertForSequenceClassification,
    LvBertModel,
)

TINY_ARCH = "CAFCAF"  # every layer type, twice: enough to mix them, still fast


def tiny_config(arch: str = TINY_ARCH, **overrides) -> LvBertConfig:
    return LvBertConfig.from_size("tiny", arch=arch, **overrides)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied parameters are counted once


def batch(B=3, L=12, vocab=4096, seed=0, pad_lengths=(12, 7, 4)):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (B, L), generator=g)
    mask = torch.zeros(B, L, dtype=torch.long)
    for b, n in enumerate(pad_lengths):
        mask[b, :n] = 1
    ids = ids.masked_fill(mask == 0, 0)
    return ids, mask


# ============================================================================ parameter counts


@pytest.mark.parametrize("size", ["small", "medium"])
def test_sublayer_param_counts_match_model(size):
    config = LvBertConfig.from_size(size, arch="bert")
    s = get_size(size)
    for layer_type, cls in (("C", DynamicConvLayer), ("A", AttentionLayer), ("F", FeedForwardLayer)):
        assert n_params(cls(config)) == sublayer_params(layer_type, s)


def test_small_backbone_counts_match_model():
    small = get_size("small")
    lv = LvBertModel(LvBertConfig.from_size("small", arch="lv-bert-small"))  # one real build (~1 s)
    assert n_params(lv) == count_params(LV_BERT_SMALL, small) == 12_525_856
    with torch.device("meta"):  # the same modules without memory or initialisation (instant)
        bert = LvBertForMaskedLM(LvBertConfig.from_size("small", arch="bert"))
    assert n_params(bert.lvbert) == count_params("AF" * 12, small) == 13_483_008
    assert n_params(bert) == count_params("AF" * 12, small, head="mlm")  # decoder tied to the word embeddings


def test_medium_backbone_count_matches_model():
    medium = get_size("medium")
    with torch.device("meta"):
        lv = LvBertModel(LvBertConfig.from_size("medium", arch="lv-bert-small"))
        bert = LvBertModel(LvBertConfig.from_size("medium", arch="bert"))
    assert n_params(lv) == count_params(LV_BERT_SMALL, medium) == 23_149_104
    assert n_params(bert) == count_params("AF" * 12, medium) == 25_315_968


def test_base_backbone_count_matches_model_on_meta_device():
    with torch.device("meta"):  # no memory, no initialisation: instant
        model = LvBertModel(LvBertConfig.from_size("base", arch="lv-bert-small"))
    assert n_params(model) == count_params(LV_BERT_SMALL, get_size("base")) == 100_171_104


# ============================================================================ config


def test_config_canonicalises_arch_and_sizes():
    assert LvBertConfig(arch="c-c-a-f").arch == "CCAF"
    assert LvBertConfig.from_size("small", arch="lv-bert-small").arch == LV_BERT_SMALL
    assert LvBertConfig.from_size("tiny", arch="bert").num_slots == 24
    c = LvBertConfig.from_size("small", arch="bert", hidden_size=128, num_attention_heads=2, conv_heads=2, hidden_dropout_prob=0.0)
    assert (c.hidden_size, c.hidden_dropout_prob, c.embedding_size) == (128, 0.0, 128)
    assert c.size_config().hidden_size == 128
    assert LvBertConfig.from_dict(c.to_dict()).arch == c.arch


# ============================================================================ the dynamic convolution


def naive_dynamic_conv(layer: DynamicConvLayer, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The official code's operator, written with explicit loops over positions t and kernel taps k.

    x: [L, H] (one sequence), mask: [L] of 0/1 or None."""
    L, H = x.shape
    N, K = layer.num_heads, layer.kernel_size
    d, half = H // N, K // 2
    v = (x @ layer.linear.weight.T + layer.linear.bias) * torch.sigmoid(x @ layer.gate.weight.T + layer.gate.bias)
    if mask is not None and layer.mask_padding:
        v = v * mask[:, None].to(v.dtype)
    dw = layer.depthwise.weight[:, 0, :]  # [H, K]
    depth = torch.zeros(L, H, dtype=x.dtype)
    for t in range(L):
        for k in range(K):
            j = t + k - half
            if 0 <= j < L:
                depth[t] += dw[:, k] * v[j]
    s = depth @ layer.pointwise.weight.T + layer.pointwise.bias
    w = (s @ layer.kernel.weight.T + layer.kernel.bias).view(L, N, K).softmax(-1)
    out = torch.zeros(L, N, d, dtype=x.dtype)
    vh = v.view(L, N, d)
    for t in range(L):
        for k in range(K):
            j = t + k - half
            if 0 <= j < L:
                out[t] += w[t, :, k, None] * vh[j]
    y = out.reshape(L, H) @ layer.dense.weight.T + layer.dense.bias
    return F.layer_norm(x + y, (H,), layer.LayerNorm.weight, layer.LayerNorm.bias, layer.LayerNorm.eps)


@pytest.mark.parametrize("mask_padding", [True, False])
def test_dynamic_conv_matches_naive_reference(mask_padding):
    torch.manual_seed(0)
    model = LvBertModel(tiny_config("C", conv_mask_padding=mask_padding)).eval()
    layer = model.encoder.slots[0]
    with torch.no_grad():  # non-trivial biases and LayerNorm
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 11, 64)
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        got = layer(x, mask)
        for b in range(2):
            torch.testing.assert_close(got[b], naive_dynamic_conv(layer, x[b], mask[b]), atol=1e-5, rtol=1e-5)


def test_dynamic_conv_kernel_is_softmax_over_k():
    layer = DynamicConvLayer(tiny_config("C"))
    assert layer.kernel.out_features == layer.num_heads * layer.kernel_size == 2 * 9
    assert layer.depthwise.bias is None and layer.depthwise.groups == 64


def _real(out, mask):
    return out[mask.bool()]


def test_conv_padding_invariance():
    torch.manual_seed(0)
    ids, mask = batch()
    other = ids.clone()
    other[mask == 0] = torch.randint(5, 4096, (int((mask == 0).sum()),))  # change only padded tokens
    masked = LvBertModel(tiny_config("CCAF")).eval()
    leaky = LvBertModel(tiny_config("CCAF", conv_mask_padding=False)).eval()
    leaky.load_state_dict(masked.state_dict())
    with torch.no_grad():
        a = masked(ids, mask).last_hidden_state
        b = masked(other, mask).last_hidden_state
        torch.testing.assert_close(_real(a, mask), _real(b, mask), atol=1e-6, rtol=0)
        # The official (unmasked) behaviour lets padded tokens leak into nearby real ones.
        c = leaky(ids, mask).last_hidden_state
        d = leaky(other, mask).last_hidden_state
        assert (_real(c, mask) - _real(d, mask)).abs().max() > 1e-3


def test_padded_batch_equals_unpadded_sequences():
    torch.manual_seed(0)
    ids, mask = batch()
    model = LvBertModel(tiny_config()).eval()
    with torch.no_grad():
        full = model(ids, mask).last_hidden_state
        for b in range(ids.shape[0]):
            n = int(mask[b].sum())
            alone = model(ids[b : b + 1, :n]).last_hidden_state[0]
            torch.testing.assert_close(full[b, :n], alone, atol=1e-5, rtol=1e-5)


# ============================================================================ heads and losses


def test_base_model_shapes_and_hidden_states():
    model = LvBertModel(tiny_config()).eval()
    ids, mask = batch()
    out = model(ids, mask, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, 12, 64)
    assert len(out.hidden_states) == len(TINY_ARCH) + 1
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert isinstance(model(ids, mask, return_dict=False), tuple)


def test_masked_lm_logits_only_at_masked_positions():
    torch.manual_seed(0)
    model = LvBertForMaskedLM(tiny_config()).eval()
    ids, mask = batch()
    labels = torch.full_like(ids, -100)
    where = [(0, 1), (0, 5), (1, 2), (2, 0), (2, 3)]
    for b, t in where:
        labels[b, t] = int(ids[b, t])
    with torch.no_grad():
        full = model(ids, mask).logits  # no labels: every position
        out = model(ids, mask, labels=labels)
    assert full.shape == (3, 12, 4096)
    assert out.logits.shape == (len(where), 4096)
    sel = labels != -100
    torch.testing.assert_close(out.logits, full[sel], atol=1e-5, rtol=1e-5)
    by_hand = F.cross_entropy(full.view(-1, 4096), labels.view(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, by_hand, atol=1e-5, rtol=1e-5)


def test_masked_lm_without_masked_tokens_gives_zero_loss_with_graph():
    model = LvBertForMaskedLM(tiny_config())
    ids, mask = batch()
    out = model(ids, mask, labels=torch.full_like(ids, -100))
    assert out.logits.shape == (0, 4096) and out.loss.item() == 0.0
    out.loss.backward()  # does not raise


def test_masked_lm_head_is_tied_and_trains():
    torch.manual_seed(0)
    model = LvBertForMaskedLM(tiny_config())
    assert model.mlm_head.decoder.weight is model.lvbert.embeddings.word_embeddings.weight
    ids, mask = batch()
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, torch.full_like(ids, -100))
    labels[0, 0] = ids[0, 0]
    loss = model(ids, mask, labels=labels).loss
    assert math.isfinite(loss.item()) and abs(loss.item() - math.log(4096)) < 1.0  # near uniform at init
    loss.backward()
    assert all(p.grad is not None for p in model.lvbert.encoder.parameters())


def test_pretraining_bce_ignores_padding():
    torch.manual_seed(0)
    model = LvBertForPreTraining(tiny_config()).eval()
    ids, mask = batch()
    labels = (torch.rand(ids.shape) < 0.2).long()
    with torch.no_grad():
        out = model(ids, mask, labels=labels)
        # padded labels are garbage; they must not count
        out2 = model(ids, mask, labels=torch.where(mask.bool(), labels, 1 - labels))
    assert out.logits.shape == (3, 12)
    per = F.binary_cross_entropy_with_logits(out.logits, labels.float(), reduction="none")
    by_hand = per[mask.bool()].mean()
    torch.testing.assert_close(out.loss, by_hand)
    torch.testing.assert_close(out2.loss, out.loss)
    no_mask = model(ids, labels=labels).loss
    assert no_mask.shape == ()


def test_sequence_classification_and_regression():
    torch.manual_seed(0)
    ids, mask = batch()
    clf = LvBertForSequenceClassification(tiny_config(num_labels=3)).eval()
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        out = clf(ids, mask, labels=labels)
        h0 = clf.lvbert(ids, mask).last_hidden_state[:, 0]
    assert out.logits.shape == (3, 3)
    torch.testing.assert_close(out.logits, clf.classifier(h0))  # token-0 representation, no pooler
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))

    reg = LvBertForSequenceClassification(tiny_config(num_labels=1)).eval()
    target = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        out = reg(ids, mask, labels=target)
    assert out.logits.shape == (3, 1)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), target))


# ============================================================================ save / load, Auto classes, pipeline


def test_save_load_round_trip_and_auto_classes(tmp_path):
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForPreTraining,
        AutoModelForSequenceClassification,
    )

    torch.manual_seed(0)
    model = LvBertForMaskedLM(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / "pytorch_model.bin").exists()
    ids, mask = batch()
    with torch.no_grad():
        expected = model(ids, mask).logits

    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, LvBertConfig) and config.arch == TINY_ARCH and config.model_type == "lvbert"

    mlm = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(mlm) is LvBertForMaskedLM
    assert mlm.mlm_head.decoder.weight is mlm.lvbert.embeddings.word_embeddings.weight
    with torch.no_grad():
        torch.testing.assert_close(mlm(ids, mask).logits, expected, atol=0, rtol=0)

    base = AutoModel.from_pretrained(tmp_path).eval()
    assert type(base) is LvBertModel
    with torch.no_grad():
        torch.testing.assert_close(base(ids, mask).last_hidden_state, model.lvbert(ids, mask).last_hidden_state)

    pre = AutoModelForPreTraining.from_pretrained(tmp_path)
    clf = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert type(pre) is LvBertForPreTraining and type(clf) is LvBertForSequenceClassification
    for m in (pre, clf):
        assert torch.equal(m.lvbert.encoder.slots[0].kernel.weight, model.lvbert.encoder.slots[0].kernel.weight)


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "on", "mat", "a", "ran", "##s", "."]


def _wordpiece_tokenizer():
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )


def test_fill_mask_pipeline(tmp_path):
    from transformers import AutoTokenizer, pipeline

    tokenizer = _wordpiece_tokenizer()
    assert len(tokenizer) == len(VOCAB)
    config = tiny_config(vocab_size=len(VOCAB))
    LvBertForMaskedLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert len(AutoTokenizer.from_pretrained(tmp_path)) == len(VOCAB)  # transformers 5 can silently drop a vocab

    fill = pipeline("fill-mask", model=str(tmp_path))
    preds = fill("the cat [MASK] on the mat .", top_k=3)
    assert len(preds) == 3
    assert all(p["token_str"].strip() in VOCAB for p in preds)
    assert abs(sum(p["score"] for p in fill("the [MASK] sat .", top_k=len(VOCAB))) - 1.0) < 1e-4


# ============================================================================ training-mode paths


def test_fast_dropout_keep_rate_and_scale():
    from lvbert.modeling_lvbert import Dropout, fast_dropout

    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fast_dropout(x, 0.1)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.005
    # the CPU mask: four 16-bit uniforms per 64 random bits; rates, lanes independent, any size
    for p in (0.02, 0.1, 0.5):
        k = (fast_dropout(torch.ones(1_000_003), p) != 0).float()
        assert abs(k.mean().item() - (1 - p)) < 4 * math.sqrt(p * (1 - p) / k.numel())
        both = (k[:-1:2] * k[1::2]).mean().item()  # neighbours come from the same 64 bits
        assert abs(both - (1 - p) ** 2) < 0.004
    a, b = fast_dropout(torch.ones(7, 5, dtype=torch.bfloat16), 0.5), fast_dropout(torch.ones(7, 5), 0.5)
    assert a.shape == (7, 5) and a.dtype == torch.bfloat16 and not torch.equal(a.float() != 0, b != 0)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.9))
    d = Dropout(0.1).eval()
    assert d(x) is x and isinstance(d, torch.nn.Dropout)
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))


def test_training_attention_path_matches_sdpa():
    # On CPU with attention dropout, training takes an explicit path instead of SDPA's math
    # fallback; with a vanishing dropout rate it must give SDPA's (eval) output.
    torch.manual_seed(0)
    config = tiny_config("A", hidden_dropout_prob=0.0, attention_probs_dropout_prob=1e-12)
    layer = AttentionLayer(config)
    x = torch.randn(3, 12, 64)
    _, mask = batch()
    for m in (None, mask):
        train_out = layer.train()(x, m)
        eval_out = layer.eval()(x, m)
        torch.testing.assert_close(train_out[mask.bool()], eval_out[mask.bool()], atol=1e-5, rtol=1e-5)


def test_bf16_attention_on_cpu_matches_fp32():
    """In bfloat16 on CPU the A sub-layer computes attention by hand (faster than SDPA's kernel there):
    with padding it gives the fp32 SDPA result to bf16 precision, and padded keys get no weight."""
    torch.manual_seed(0)
    layer = LvBertModel(tiny_config("A")).encoder.slots[0].eval()
    x = torch.randn(2, 24, 64)
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[1, 15:] = 0
    other = x.clone()
    other[1, 15:] = torch.randn(9, 64)  # change only padded positions
    with torch.no_grad():
        ref = layer(x, mask)
        fast = layer.to(torch.bfloat16)(x.bfloat16(), mask)
        fast_other = layer(other.bfloat16(), mask)
    torch.testing.assert_close(fast.float(), ref, atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(fast[1, :15], fast_other[1, :15], atol=0, rtol=0)
