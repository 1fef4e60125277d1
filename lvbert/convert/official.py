"""The official LV-BERT (and google-research/electra) TensorFlow variable names -> lvbert models.

Everything comes from the checkpoint's names and shapes; no config file is needed:

- slot types: ``{scope}/encoder/layer_{i}/{first,second}_submodule/`` holding
  ``dynamic_convolution_layer/`` (C), ``attention/`` (A) or ``intermediate/`` + ``output/`` (F);
  an ELECTRA layer (``layer_{i}/attention/``, ``layer_{i}/intermediate/``, ``layer_{i}/output/``,
  no submodules) is the two slots A F;
- widths: vocabulary, embedding size and positions from ``word_embeddings`` /
  ``position_embeddings``, hidden from the LayerNorms, inner from ``intermediate/dense``, the
  kernel size K from ``conv_attn_key/depthwise_kernel`` [K, H, 1] and the heads N from
  ``conv_attn_kernel`` [H, N*K]. A model without C slots does not record its heads; the official
  code always uses ``max(1, hidden // 64)``, which is taken then.

Names (``{scope}`` is ``electra`` for the discriminator, ``generator`` for the generator):

- ``electra/embeddings/{word,position,token_type}_embeddings``, ``.../LayerNorm/{gamma,beta}``
  -> ``lvbert.embeddings.*`` (the generator shares them); ``{scope}/embeddings_project`` (E != H)
  -> ``lvbert.embeddings.project``
- C: ``.../dynamic_convolution_layer/convolution/{glu_l,glu_g}`` -> ``linear``, ``gate``;
  ``conv_attn_key/{depthwise_kernel,pointwise_kernel,bias}`` -> ``depthwise``, ``pointwise``;
  ``conv_attn_kernel`` -> ``kernel``; ``dynamic_convolution_layer/output/{dense,LayerNorm}``
- A: ``.../attention/self/{query,key,value}`` -> ``qkv`` (rows q, k, v); ``attention/output/{dense,LayerNorm}``
- F: ``.../intermediate/dense``, ``.../output/{dense,LayerNorm}`` -> ``intermediate``, ``output``, ``LayerNorm``
- ``discriminator_predictions/{dense,dense_1}`` -> ``discriminator_head.{dense,out}``;
  ``generator_predictions/{dense,LayerNorm,output_bias}`` -> ``mlm_head.{dense,LayerNorm,decoder.bias}``
  (the decoder weight is the word embeddings, as in the official head);
  ``task_specific/<task>/dense`` (a fine-tuned checkpoint) -> ``classifier``

Dense kernels are [in, out] in TensorFlow and [out, in] in torch. ``global_step`` and the
optimizer slots (``*/adam_m``, ``*/adam_v``) are skipped. The converted configs set
``conv_mask_padding=False``: the official convolution lets padded positions leak into their
neighbours, and only then are the outputs the official ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from lvbert.errors import LvBertError
from lvbert.modeling_lvbert import (
    LvBertConfig,
    LvBertForMaskedLM,
    LvBertForPreTraining,
    LvBertForSequenceClassification,
    LvBertModel,
)

PARTS = ("discriminator", "generator", "both")
_LAYER = re.compile(r"^(electra|generator)/encoder/layer_(\d+)/(.+)$")
_SUBMODULES = ("first_submodule", "second_submodule")


def is_skipped(name: str) -> bool:
    """Training state, not model: the step counter and Adam's moment estimates."""
    return name == "global_step" or name.endswith(("/adam_m", "/adam_v"))


@dataclass
class Converted:
    """One model of a checkpoint: its config, class and state dict (lvbert names)."""

    part: str  # "discriminator" or "generator"
    config: LvBertConfig
    model_class: type
    state_dict: dict[str, torch.Tensor]
    sources: set[str] = field(default_factory=set)  # the checkpoint tensors it uses

    def build(self) -> torch.nn.Module:
        """The model holding exactly these weights (built on the meta device: no random initialisation to pay for)."""
        with torch.device("meta"):
            model = self.model_class(self.config)
        missing, unexpected = model.load_state_dict(self.state_dict, strict=False, assign=True)
        if missing or unexpected:
            raise LvBertError(f"internal: converted weights do not fit {self.model_class.__name__}: {(missing + unexpected)[:3]}")
        if hasattr(model, "mlm_head"):
            model.tie_weights()
        return model.eval()


class _Taker:
    """Takes tensors out of the checkpoint by name, remembering which were used."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors, self.used = tensors, set()

    def has(self, name: str) -> bool:
        return name in self.tensors

    def __call__(self, name: str) -> torch.Tensor:
        if name not in self.tensors:
            raise LvBertError(f"the checkpoint lacks {name!r}; is it an official LV-BERT / ELECTRA checkpoint?")
        self.used.add(name)
        return self.tensors[name].float()

    def dense(self, out: dict, lv: str, tf: str) -> None:
        out[f"{lv}.weight"] = self(f"{tf}/kernel").t().contiguous()
        out[f"{lv}.bias"] = self(f"{tf}/bias")

    def layer_norm(self, out: dict, lv: str, tf: str) -> None:
        out[f"{lv}.weight"] = self(f"{tf}/gamma")
        out[f"{lv}.bias"] = self(f"{tf}/beta")


def _slots(names: list[str], scope: str) -> list[tuple[str, str]]:
    """``(type letter, tensor-name prefix)`` of every slot of ``scope``'s encoder, bottom first."""
    layers: dict[int, set[str]] = {}
    for name in names:
        m = _LAYER.match(name)
        if m and m.group(1) == scope:
            layers.setdefault(int(m.group(2)), set()).add(m.group(3))
    if sorted(layers) != list(range(len(layers))):
        raise LvBertError(f"the layers of {scope}/encoder are not numbered 0..n-1: {sorted(layers)}")
    slots = []
    for i in range(len(layers)):
        rests = layers[i]
        base = f"{scope}/encoder/layer_{i}/"
        if any(r.startswith(_SUBMODULES) for r in rests):  # LV-BERT: two typed submodules
            for sub in _SUBMODULES:
                inner = {r[len(sub) + 1 :] for r in rests if r.startswith(sub + "/")}
                kinds = [t for t, key in (("C", "dynamic_convolution_layer/"), ("A", "attention/"), ("F", "intermediate/"))
                         if any(r.startswith(key) for r in inner)]  # fmt: skip
                if len(kinds) != 1:
                    raise LvBertError(f"{base}{sub} holds {' and '.join(kinds) or 'no known sub-layer'}; "
                                      "expected one of dynamic_convolution_layer/, attention/, intermediate/+output/")  # fmt: skip
                slots.append((kinds[0], f"{base}{sub}/"))
        else:  # ELECTRA / BERT: attention then feed-forward
            slots += [("A", base), ("F", base)]
    return slots


def _encoder(take: _Taker, scope: str, out: dict) -> dict:
    """Map ``scope``'s embeddings and encoder into ``out`` (``lvbert.`` names); return the config fields."""
    emb_scope = scope if take.has(f"{scope}/embeddings/word_embeddings") else "electra"
    emb = f"{emb_scope}/embeddings/"
    for lv in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"lvbert.embeddings.{lv}.weight"] = take(emb + lv)
    take.layer_norm(out, "lvbert.embeddings.LayerNorm", emb + "LayerNorm")
    vocab, E = out["lvbert.embeddings.word_embeddings.weight"].shape
    if take.has(f"{scope}/embeddings_project/kernel"):
        take.dense(out, "lvbert.embeddings.project", f"{scope}/embeddings_project")
    slots = _slots(list(take.tensors), scope)
    if not slots:
        raise LvBertError(f"the checkpoint has no {scope}/encoder/layer_0/ variables")
    widths, heads, kernels, inner = set(), set(), set(), set()
    for j, (kind, tf) in enumerate(slots):
        lv = f"lvbert.encoder.slots.{j}"
        if kind == "C":
            conv = tf + "dynamic_convolution_layer/convolution/"
            take.dense(out, f"{lv}.linear", conv + "glu_l")
            take.dense(out, f"{lv}.gate", conv + "glu_g")
            depthwise = take(conv + "conv_attn_key/depthwise_kernel")  # [K, H, 1]
            out[f"{lv}.depthwise.weight"] = depthwise.permute(1, 2, 0).contiguous()  # [H, 1, K]
            out[f"{lv}.pointwise.weight"] = take(conv + "conv_attn_key/pointwise_kernel")[0].t().contiguous()  # [1, H, H]
            out[f"{lv}.pointwise.bias"] = take(conv + "conv_attn_key/bias")
            take.dense(out, f"{lv}.kernel", conv + "conv_attn_kernel")
            take.dense(out, f"{lv}.dense", tf + "dynamic_convolution_layer/output/dense")
            take.layer_norm(out, f"{lv}.LayerNorm", tf + "dynamic_convolution_layer/output/LayerNorm")
            K = depthwise.shape[0]
            kernels.add(K)
            heads.add(out[f"{lv}.kernel.weight"].shape[0] // K)
        elif kind == "A":
            att = tf + "attention/"
            parts = [(take(f"{att}self/{n}/kernel").t(), take(f"{att}self/{n}/bias")) for n in ("query", "key", "value")]
            out[f"{lv}.qkv.weight"] = torch.cat([w for w, _ in parts], dim=0)
            out[f"{lv}.qkv.bias"] = torch.cat([b for _, b in parts], dim=0)
            take.dense(out, f"{lv}.dense", att + "output/dense")
            take.layer_norm(out, f"{lv}.LayerNorm", att + "output/LayerNorm")
        else:
            take.dense(out, f"{lv}.intermediate", tf + "intermediate/dense")
            take.dense(out, f"{lv}.output", tf + "output/dense")
            take.layer_norm(out, f"{lv}.LayerNorm", tf + "output/LayerNorm")
            inner.add(out[f"{lv}.intermediate.weight"].shape[0])
        widths.add(out[f"{lv}.LayerNorm.weight"].shape[0])
    for what, values in (("hidden sizes", widths), ("convolution heads", heads), ("kernel sizes", kernels), ("inner sizes", inner)):
        if len(values) > 1:
            raise LvBertError(f"the slots of {scope}/encoder have different {what} {sorted(values)}; lvbert cannot read that")
    H = widths.pop()
    N = heads.pop() if heads else max(1, H // 64)  # no C slot: the official rule (training_utils.get_bert_config)
    return dict(
        arch="".join(kind for kind, _ in slots),
        vocab_size=vocab,
        hidden_size=H,
        num_attention_heads=N,
        conv_heads=N,
        intermediate_size=inner.pop() if inner else 4 * H,
        embedding_size=E,
        conv_kernel_size=kernels.pop() if kernels else 9,
        conv_mask_padding=False,
        max_position_embeddings=out["lvbert.embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=out["lvbert.embeddings.token_type_embeddings.weight"].shape[0],
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )


def _discriminator(tensors: dict[str, torch.Tensor], task: str | None) -> Converted:
    take, out = _Taker(tensors), {}
    fields = _encoder(take, "electra", out)
    tasks = sorted({n.split("/")[1] for n in tensors if n.startswith("task_specific/")})
    if take.has("discriminator_predictions/dense/kernel"):
        take.dense(out, "discriminator_head.dense", "discriminator_predictions/dense")
        take.dense(out, "discriminator_head.out", "discriminator_predictions/dense_1")
        model_class = LvBertForPreTraining
    elif tasks:
        if task is None and len(tasks) > 1:
            raise LvBertError(f"the checkpoint is fine-tuned on several tasks ({', '.join(tasks)}); choose one with --task")
        task = task or tasks[0]
        if task not in tasks:
            raise LvBertError(f"the checkpoint has no task {task!r}; its tasks: {', '.join(tasks)}")
        head = sorted(n for n in tensors if n.startswith(f"task_specific/{task}/"))
        if head != [f"task_specific/{task}/dense/bias", f"task_specific/{task}/dense/kernel"]:
            raise LvBertError(f"task {task!r} has a {', '.join(h.split('/', 2)[2] for h in head)} head; only sequence "
                              "classification / regression heads (task_specific/<task>/dense) convert")  # fmt: skip
        take.dense(out, "classifier", f"task_specific/{task}/dense")
        labels = out["classifier.weight"].shape[0]
        fields.update(num_labels=labels, problem_type="regression" if labels == 1 else "single_label_classification",
                      finetuning_task=task)  # fmt: skip
        model_class = LvBertForSequenceClassification
    else:
        out = {k.removeprefix("lvbert."): v for k, v in out.items()}
        model_class = LvBertModel
    return Converted("discriminator", LvBertConfig(**fields), model_class, out, take.used)


def _generator(tensors: dict[str, torch.Tensor]) -> Converted:
    take, out = _Taker(tensors), {}
    fields = _encoder(take, "generator", out)
    take.dense(out, "mlm_head.dense", "generator_predictions/dense")
    take.layer_norm(out, "mlm_head.LayerNorm", "generator_predictions/LayerNorm")
    out["mlm_head.decoder.bias"] = take("generator_predictions/output_bias")
    out["mlm_head.decoder.weight"] = out["lvbert.embeddings.word_embeddings.weight"]  # tied, as the official head
    return Converted("generator", LvBertConfig(**fields), LvBertForMaskedLM, out, take.used)


def has_generator(tensors: dict[str, torch.Tensor]) -> bool:
    return any(n.startswith("generator/encoder/") for n in tensors)


def convert_official(tensors: dict[str, torch.Tensor], part: str = "discriminator", task: str | None = None) -> list[Converted]:
    """The models ``part`` asks for out of an official checkpoint's tensors (``is_skipped`` ones left out).

    Every tensor must belong to a known model part, whichever part is converted: a name this
    module does not know (ghost heads, another model family) is a one-line error, not a silent drop."""
    if part not in PARTS:
        raise LvBertError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}")
    tensors = {n: t for n, t in tensors.items() if not is_skipped(n)}
    if not any(_LAYER.match(n) and n.startswith("electra/") for n in tensors):
        raise LvBertError("the checkpoint has no electra/encoder/layer_* variables; it is not an LV-BERT or ELECTRA checkpoint")
    models = [_discriminator(tensors, task)]
    if has_generator(tensors):
        models.append(_generator(tensors))
    elif part != "discriminator":
        raise LvBertError("the checkpoint has no generator (no generator/encoder variables); use --part discriminator")
    used = set().union(*(m.sources for m in models))
    unknown = sorted(n for n in set(tensors) - used if not n.startswith("task_specific/"))  # other tasks: known
    if unknown:
        raise LvBertError(f"the checkpoint has {len(unknown)} variable(s) lvbert cannot map, e.g. {unknown[0]!r}; "
                          "only official LV-BERT / ELECTRA checkpoints convert")  # fmt: skip
    return [m for m in models if part in (m.part, "both")]
