"""ELECTRA replaced-token detection (Clark et al. 2020, as the official LV-BERT code trains).

:class:`ElectraPretrainer`: a narrow generator with the same layer list shares the
discriminator's embeddings and samples replacements at temperature 1; loss = 1.0 x
generator MLM + 50 x the discriminator's binary cross-entropy.
"""

from __future__ import annotations

import torch
from torch import nn

from lvbert.arch import Arch, Op
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertForPreTraining, replaced_token_loss
from lvbert.objectives.mlm import evaluate_mlm, masked_accuracy


def generator_config(disc: LvBertConfig, hidden_size: int) -> LvBertConfig:
    """The generator: same layer list and embeddings, hidden ``hidden_size``, heads and FFN scaled.

    Per-slot settings are scaled with the width too: a slot keeps its type (and a C slot its
    kernel size), while its heads and FFN width are the generator's own (hidden/64, 4 x hidden)."""

    cfg = disc.to_dict()
    for key in ("architectures", "model_type", "transformers_version", "dtype", "torch_dtype", "allowed_types"):
        cfg.pop(key, None)
    heads = max(1, hidden_size // 64)
    kernel_of = {i: op.kernel for i, op in enumerate(disc.ops) if op.type == "C"}
    cfg.update(
        arch=str(Arch(Op(op.type, kernel=kernel_of[i]) if op.type == "C" else Op(op.type) for i, op in enumerate(disc.ops))),
        hidden_size=hidden_size,
        num_attention_heads=heads,
        conv_heads=heads,
        intermediate_size=4 * hidden_size,
    )
    return LvBertConfig(**cfg)


def sample_tokens(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One token per row of ``logits`` [M, V], drawn from ``softmax(logits / temperature)``.

    Inverse-CDF sampling: one uniform per row, searched in the row's cumulative sum of
    ``exp(logits - max)``. Same distribution as Gumbel-max (``argmax(logits - log(-log u))``),
    but Gumbel-max draws V uniforms and takes two logarithms per row: at batch 32 x 128
    (M ~ 600 rows x 30,522 words) it cost ~4x more, ~10% of a small ELECTRA step on CPU."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    weights = (logits - logits.amax(dim=-1, keepdim=True)).exp_()  # [M, V], unnormalised
    cdf = weights.cumsum_(dim=-1)
    u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]  # [M, 1] in [0, total)
    # right=True: the first index whose cdf exceeds u; zero-weight words can never be drawn.
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)


class ElectraPretrainer(nn.Module):
    """Generator + discriminator trained jointly; the discriminator is the model kept.

    The word, position and token-type embeddings and their LayerNorm are shared
    (the generator keeps its own E->H projection); the generator's decoder is tied
    to the shared word embeddings.
    """

    def __init__(self, discriminator: LvBertForPreTraining, generator_hidden: int, rtd_weight: float = 50.0, temperature: float = 1.0):
        super().__init__()
        self.discriminator = discriminator
        self.generator = LvBertForMaskedLM(generator_config(discriminator.config, generator_hidden))
        d_emb, g_emb = discriminator.lvbert.embeddings, self.generator.lvbert.embeddings
        g_emb.word_embeddings = d_emb.word_embeddings
        g_emb.position_embeddings = d_emb.position_embeddings
        g_emb.token_type_embeddings = d_emb.token_type_embeddings
        g_emb.LayerNorm = d_emb.LayerNorm
        self.generator.mlm_head.decoder.weight = d_emb.word_embeddings.weight
        self.rtd_weight = rtd_weight
        self.temperature = temperature

    def forward(self, input_ids, attention_mask, token_type_ids, labels, original_ids=None, **_) -> dict:
        gen = self.generator(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, labels=labels)
        selected = labels != -100
        with torch.no_grad():
            sampled = sample_tokens(gen.logits.detach(), self.temperature)  # [M], one per masked position
            original = input_ids.clone()
            original[selected] = labels[selected]
            corrupted = original.clone()
            corrupted[selected] = sampled
            replaced = (corrupted != original).long()
        disc = self.discriminator(input_ids=corrupted, attention_mask=attention_mask, token_type_ids=token_type_ids)
        rtd_loss = replaced_token_loss(disc.logits, replaced, attention_mask)
        with torch.no_grad():
            correct, total = masked_accuracy(gen.logits, labels)
            real = attention_mask.bool()
            rtd_acc = ((disc.logits > 0).long() == replaced)[real].float().mean()
        return {
            "loss": gen.loss + self.rtd_weight * rtd_loss,
            "mlm_loss": gen.loss.detach(),
            "rtd_loss": rtd_loss.detach(),
            "mlm_accuracy": correct / max(total, 1),
            "rtd_accuracy": rtd_acc,
            "replaced_share": replaced[real].float().mean(),
        }


def electra_objective(model, batch: dict) -> dict:
    return model(**batch)


@torch.inference_mode()
def evaluate_electra(pretrainer: ElectraPretrainer, valid: dict, batch_size: int = 64) -> dict:
    """The generator's masked-LM numbers (:func:`~lvbert.objectives.mlm.evaluate_mlm`) and the
    discriminator's detection accuracy and loss, on a fixed-mask set.

    The replacements are sampled, so detection numbers vary a little between calls; the
    generator's MLM numbers are exact."""
    out = evaluate_mlm(pretrainer.generator, valid, batch_size)
    was_training = pretrainer.training
    pretrainer.eval()
    device = next(pretrainer.parameters()).device
    sums, n = {"loss": 0.0, "rtd_accuracy": 0.0}, 0
    try:
        for start in range(0, valid["input_ids"].shape[0], batch_size):
            batch = {k: v[start : start + batch_size].to(device) for k, v in valid.items()}
            o = pretrainer(**batch)
            for k in sums:
                sums[k] += float(o[k])
            n += 1
    finally:
        pretrainer.train(was_training)
    return {**out, **{k: v / max(n, 1) for k, v in sums.items()}}
