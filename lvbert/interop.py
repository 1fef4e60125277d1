"""Load Hugging Face BERT and ELECTRA weights into an ``AF`` x N LV-BERT model.

A BERT / ELECTRA layer is an attention block followed by a feed-forward block,
both post-LN residual -- exactly two LV-BERT slots, ``A`` then ``F``. Layer i
of the Hugging Face encoder therefore becomes slots 2i (A) and 2i+1 (F):

=============================================  ==========================================
Hugging Face                                    lvbert
=============================================  ==========================================
``embeddings.{word,position,token_type}_...``   ``lvbert.embeddings.*`` (same names)
``embeddings.LayerNorm``                        ``lvbert.embeddings.LayerNorm``
``embeddings_project`` (ELECTRA, E != H)        ``lvbert.embeddings.project``
``layer.i.attention.self.{query,key,value}``    ``lvbert.encoder.slots.2i.qkv`` (rows q, k, v)
``layer.i.attention.output.{dense,LayerNorm}``  ``lvbert.encoder.slots.2i.{dense,LayerNorm}``
``layer.i.intermediate.dense``                  ``lvbert.encoder.slots.2i+1.intermediate``
``layer.i.output.{dense,LayerNorm}``            ``lvbert.encoder.slots.2i+1.{output,LayerNorm}``
``cls.predictions.transform.{dense,LayerNorm}`` ``mlm_head.{dense,LayerNorm}`` (BERT, E == H)
``cls.predictions.decoder`` / ``.bias``         ``mlm_head.decoder`` (tied to word embeddings)
``generator_predictions.{dense,LayerNorm}``     ``mlm_head.{dense,LayerNorm}`` (ELECTRA generator)
``generator_lm_head``                           ``mlm_head.decoder``
``discriminator_predictions.dense``             ``discriminator_head.dense``
``discriminator_predictions.dense_prediction``  ``discriminator_head.out``
=============================================  ==========================================

BERT's tanh pooler (``pooler.dense``) and next-sentence head (``cls.seq_relationship``)
are dropped: LV-BERT has no pooler (token 0's hidden state summarises the sequence).

Usage::

    from lvbert.interop import from_hf
    model = from_hf("path/to/bert-base-uncased", target="mlm")   # LvBertForMaskedLM, arch AF x 12
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from lvbert.errors import LvBertError
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertForPreTraining, LvBertModel

SUPPORTED_MODEL_TYPES = ("bert", "electra")
TARGETS = {"base": LvBertModel, "mlm": LvBertForMaskedLM, "pretraining": LvBertForPreTraining}

# Prefix of the backbone's keys inside a Hugging Face head model's state dict.
_BACKBONE_PREFIX = {"bert": "bert.", "electra": "electra."}


# ============================================================================ configuration


def config_from_hf(hf_config, **overrides) -> LvBertConfig:
    """The :class:`LvBertConfig` of an ``AF`` x N model equivalent to a Hugging Face
    ``BertConfig`` or ``ElectraConfig`` (N = ``num_hidden_layers``).

    Args:
        hf_config: a ``transformers`` config object (or its ``to_dict()``).
        overrides: any :class:`LvBertConfig` field to set on top (e.g. dropout).

    Raises :class:`LvBertError` for a configuration the ``AF`` x N model cannot reproduce.
    """
    c = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
    model_type = c.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise LvBertError(f"cannot convert model_type {model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    pos = c.get("position_embedding_type") or "absolute"
    if pos != "absolute":
        raise LvBertError(f"position_embedding_type {pos!r} is not supported; LV-BERT has absolute learned positions only")
    if c.get("hidden_act") != "gelu":
        raise LvBertError(f"hidden_act {c.get('hidden_act')!r} is not supported; only 'gelu' (erf) converts exactly")
    if c.get("is_decoder") or c.get("add_cross_attention"):
        raise LvBertError("decoder / cross-attention BERT models cannot be converted; LV-BERT is an encoder only")
    H = c["hidden_size"]
    fields = dict(
        arch="AF" * c["num_hidden_layers"],
        vocab_size=c["vocab_size"],
        hidden_size=H,
        num_attention_heads=c["num_attention_heads"],
        intermediate_size=c["intermediate_size"],
        embedding_size=c.get("embedding_size") or H,  # BERT has no factorised embedding
        # Conv fields are unused by A/F slots; keep them valid for the width.
        conv_heads=c["num_attention_heads"],
        hidden_act="gelu",
        hidden_dropout_prob=c.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=c.get("attention_probs_dropout_prob", 0.1),
        max_position_embeddings=c["max_position_embeddings"],
        type_vocab_size=c["type_vocab_size"],
        layer_norm_eps=c.get("layer_norm_eps", 1e-12),
        initializer_range=c.get("initializer_range", 0.02),
        pad_token_id=c.get("pad_token_id") if c.get("pad_token_id") is not None else 0,
        tie_word_embeddings=c.get("tie_word_embeddings", True),
    )
    if c.get("classifier_dropout") is not None:
        fields["classifier_dropout"] = c["classifier_dropout"]
    fields.update(overrides)
    return LvBertConfig(**fields)


# ============================================================================ weights


def convert_state_dict(hf_state_dict: dict, hf_config) -> dict:
    """Rename a Hugging Face BERT / ELECTRA state dict to lvbert names.

    Accepts the state dict of a base model (``BertModel``, ``ElectraModel``: keys without
    prefix) or of a head model (``BertForMaskedLM``, ``BertForPreTraining``,
    ``ElectraForPreTraining``, ``ElectraForMaskedLM``). Returns a dict whose backbone keys
    start with ``lvbert.`` and whose head keys (``mlm_head.*``, ``discriminator_head.*``)
    are present only when the source has that head. Pooler and next-sentence weights are
    dropped. Tensors are not copied.
    """
    c = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
    lv_config = config_from_hf(c)  # validates
    model_type = c["model_type"]
    sd = {_rename_legacy(k): v for k, v in hf_state_dict.items()}
    prefix = _BACKBONE_PREFIX[model_type]
    if not any(k.startswith(prefix + "embeddings.") for k in sd):
        sd = {prefix + k: v for k, v in sd.items()}  # a base model saved on its own
    if prefix + "embeddings.word_embeddings.weight" not in sd:
        raise LvBertError(f"no {prefix}embeddings.word_embeddings.weight in the state dict; is this a {model_type} model?")

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise LvBertError(f"weight {key!r} is missing from the {model_type} state dict")
        return sd[key]

    out: dict[str, torch.Tensor] = {}
    emb = prefix + "embeddings."
    for name in ("word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias"):
        out["lvbert.embeddings." + name] = take(emb + name)
    if lv_config.embedding_size != lv_config.hidden_size:
        for p in ("weight", "bias"):
            out[f"lvbert.embeddings.project.{p}"] = take(f"{prefix}embeddings_project.{p}")

    for i in range(lv_config.num_slots // 2):
        src = f"{prefix}encoder.layer.{i}."
        a, f = f"lvbert.encoder.slots.{2 * i}.", f"lvbert.encoder.slots.{2 * i + 1}."
        for p in ("weight", "bias"):
            # Our fused projection computes [q | k | v] = x W^T: stack the rows in that order.
            out[a + f"qkv.{p}"] = torch.cat([take(src + f"attention.self.{n}.{p}") for n in ("query", "key", "value")], dim=0)
            out[a + f"dense.{p}"] = take(src + f"attention.output.dense.{p}")
            out[a + f"LayerNorm.{p}"] = take(src + f"attention.output.LayerNorm.{p}")
            out[f + f"intermediate.{p}"] = take(src + f"intermediate.dense.{p}")
            out[f + f"output.{p}"] = take(src + f"output.dense.{p}")
            out[f + f"LayerNorm.{p}"] = take(src + f"output.LayerNorm.{p}")

    word = out["lvbert.embeddings.word_embeddings.weight"]
    if "cls.predictions.transform.dense.weight" in sd:  # BERT MLM head: dense H->H, act, LayerNorm(H)
        if lv_config.embedding_size != lv_config.hidden_size:  # cannot happen for BERT; guards odd configs
            raise LvBertError("a BERT MLM head needs embedding_size == hidden_size")
        for p in ("weight", "bias"):
            out[f"mlm_head.dense.{p}"] = take(f"cls.predictions.transform.dense.{p}")
            out[f"mlm_head.LayerNorm.{p}"] = take(f"cls.predictions.transform.LayerNorm.{p}")
        out["mlm_head.decoder.weight"] = sd.get("cls.predictions.decoder.weight", word)  # absent when tied
        # The forward uses decoder.bias. transformers 5 ties it to cls.predictions.bias only when
        # tie_word_embeddings is True; untied, the two are separate and only decoder.bias counts.
        bias = "cls.predictions.decoder.bias" if "cls.predictions.decoder.bias" in sd else "cls.predictions.bias"
        out["mlm_head.decoder.bias"] = take(bias)
    if "generator_predictions.dense.weight" in sd:  # ELECTRA generator head: dense H->E, gelu, LayerNorm(E)
        for p in ("weight", "bias"):
            out[f"mlm_head.dense.{p}"] = take(f"generator_predictions.dense.{p}")
            out[f"mlm_head.LayerNorm.{p}"] = take(f"generator_predictions.LayerNorm.{p}")
        out["mlm_head.decoder.weight"] = sd.get("generator_lm_head.weight", word)
        out["mlm_head.decoder.bias"] = take("generator_lm_head.bias")
    if "discriminator_predictions.dense.weight" in sd:
        for p in ("weight", "bias"):
            out[f"discriminator_head.dense.{p}"] = take(f"discriminator_predictions.dense.{p}")
            out[f"discriminator_head.out.{p}"] = take(f"discriminator_predictions.dense_prediction.{p}")
    return out


def _rename_legacy(key: str) -> str:
    """Old TF-converted checkpoints name LayerNorm parameters gamma/beta."""
    if key.endswith("LayerNorm.gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith("LayerNorm.beta"):
        return key[: -len("beta")] + "bias"
    return key


# ============================================================================ loading


def from_hf(model_or_path, target: str = "base", strict: bool = True, **config_overrides):
    """An ``AF`` x N lvbert model holding the weights of a Hugging Face BERT or ELECTRA model.

    Args:
        model_or_path: a ``transformers`` model (``BertModel``, ``BertForMaskedLM``,
            ``BertForPreTraining``, ``ElectraModel``, ``ElectraForPreTraining``,
            ``ElectraForMaskedLM``) or a directory written by its ``save_pretrained``
            (``config.json`` plus ``model.safetensors``, sharded safetensors or
            ``pytorch_model.bin``).
        target: ``"base"`` -> :class:`LvBertModel`, ``"mlm"`` -> :class:`LvBertForMaskedLM`,
            ``"pretraining"`` -> :class:`LvBertForPreTraining` (ELECTRA discriminator).
        strict: refuse when the source lacks the target's head (default). With ``False``
            a missing head keeps its fresh initialisation (e.g. a discriminator head to
            train on top of BERT weights).
        config_overrides: :class:`LvBertConfig` fields to set (e.g. dropout).

    Returns the model in eval mode, on CPU, in float32 unless the source was another dtype.
    """
    if target not in TARGETS:
        raise LvBertError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if isinstance(model_or_path, (str, os.PathLike)):
        hf_config, state_dict = _read_checkpoint(Path(model_or_path))
    else:
        hf_config, state_dict = model_or_path.config.to_dict(), model_or_path.state_dict()
    config = config_from_hf(hf_config, **config_overrides)
    weights = convert_state_dict(state_dict, hf_config)
    model = TARGETS[target](config)
    if target == "base":
        weights = {k[len("lvbert.") :]: v for k, v in weights.items() if k.startswith("lvbert.")}
    else:
        weights = {k: v for k, v in weights.items() if k.startswith("lvbert.") or k.split(".")[0] in _head_prefixes(model)}
    expected = set(model.state_dict())
    missing = sorted(expected - set(weights))
    if missing and strict:
        raise LvBertError(
            f"the {hf_config.get('model_type')} checkpoint has no weights for {missing[0]}"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; it lacks the head that target={target!r} "
            "needs -- choose another target or pass strict=False to keep that head freshly initialised"
        )
    model.load_state_dict(weights, strict=False)
    model.eval()
    return model


def _head_prefixes(model) -> set[str]:
    return {name for name, _ in model.named_children() if name != "lvbert"}


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    """config.json and the full state dict of a ``save_pretrained`` directory, without building the model."""
    if not (path / "config.json").is_file():
        raise LvBertError(f"{path} has no config.json; give a directory written by save_pretrained")
    hf_config = json.loads((path / "config.json").read_text())
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return hf_config, load_file(str(path / "model.safetensors"))
    if (path / "model.safetensors.index.json").is_file():
        from safetensors.torch import load_file

        index = json.loads((path / "model.safetensors.index.json").read_text())
        state_dict = {}
        for shard in sorted(set(index["weight_map"].values())):
            state_dict.update(load_file(str(path / shard)))
        return hf_config, state_dict
    if (path / "pytorch_model.bin").is_file():
        return hf_config, torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise LvBertError(f"{path} has no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


__all__ = ["config_from_hf", "convert_state_dict", "from_hf"]
