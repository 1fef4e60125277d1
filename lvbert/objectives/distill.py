"""TinyBERT distillation (Jiao et al. 2020) for any LV-BERT student: layer mapping, teachers, losses.

A *layer* is what the loss aligns: the teacher's transformer layers (a Hugging Face BERT /
ELECTRA model) or pairs of slots (an lvbert model, grouped in pairs as the official LV-BERT
code groups them); layer 0 is the embedding output. The student's layer m (a pair of its
slots) is matched with the teacher's layer ``g(m)``:

- ``uniform`` (TinyBERT's default): ``g(m) = ceil(m * N / M)`` for M student and N teacher
  layers, i.e. ``m * N / M`` when M divides N (TinyBERT-4 of BERT-base: 3, 6, 9, 12), and the
  teacher layer whose span holds student layer m when the student is deeper;
- ``top``: ``g(m) = N - M + m``; ``bottom``: ``g(m) = m`` (clamped to 1..N).

Losses, as TinyBERT (and its official code where the paper is silent, which the docs say):

- hidden states: ``MSE(H_S W, H_T)`` at every mapped layer including the embedding output
  (layer 0), through learnable projections ``W`` (``projection="shared"``: one for every
  layer, the official code; ``"per-layer"``: one each); a projection is used even when the
  widths agree, as in the official code. A student whose width changes between slots (a
  NAS-BERT arch with ``P(hidden=W)`` slots, :func:`hidden_widths`) needs ``"per-layer"``:
  each mapped layer's projection reads that layer's width;
- attention: ``MSE(A_S, A_T)`` of the **pre-softmax** scores, entries at padded keys set to 0
  on both sides, for every student A slot against the teacher layer its pair maps to (its
  first A slot for an lvbert teacher). Heads are matched 1:1 when the counts agree; otherwise
  the scores are averaged over heads on both sides before the MSE. A teacher layer without
  an A slot gives no attention loss;
- prediction: soft cross-entropy ``-softmax(z_T / t) . log_softmax(z_S / t)`` (sum over
  classes, mean over the batch) at temperature t, or MSE to the teacher's output for
  regression. General distillation uses no prediction loss.

C, F and I slots of the student take part through the hidden-state loss only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification

from lvbert.arch import Arch
from lvbert.errors import LvBertError
from lvbert.model_dir import load_config, quiet_transformers
from lvbert.objectives.mlm import MODEL_KEYS, masked_accuracy

MAPPINGS = ("uniform", "top", "bottom")


# ============================================================================ layers and mapping


@dataclass(frozen=True)
class Layers:
    """The layers of one model as distillation sees them.

    ``hidden[n]`` is the index into ``outputs.hidden_states`` of layer n (``hidden[0] = 0``,
    the embedding output); ``attention[n]`` the indices into ``outputs.attentions`` of the
    attention maps inside layer n (layer 0 has none)."""

    hidden: tuple[int, ...]
    attention: tuple[tuple[int, ...], ...]

    @property
    def num_layers(self) -> int:
        return len(self.hidden) - 1


def slot_pair_layers(arch) -> Layers:
    """An lvbert arch as layers: pairs of slots (2p, 2p+1), the last one alone when the count is odd."""

    ops = Arch.parse(arch)
    n = len(ops)
    hidden, attention, a_index = [0], [()], 0
    for start in range(0, n, 2):
        inside = []
        for s in range(start, min(start + 2, n)):
            if ops[s].type == "A":
                inside.append(a_index)
                a_index += 1
        hidden.append(min(start + 2, n))
        attention.append(tuple(inside))
    return Layers(tuple(hidden), tuple(attention))


def hidden_widths(config) -> list[int]:
    """The width of each of an lvbert model's ``outputs.hidden_states``: index 0 the embedding output
    (``config.hidden_size``), index s + 1 the output of slot s (changed by every ``P(hidden=W)`` slot)."""

    out = [config.hidden_size]
    for op in Arch.parse(config.arch):
        out.append(op.hidden if op.type == "P" else out[-1])
    return out


def transformer_layers(num_layers: int) -> Layers:
    """A BERT-style model of ``num_layers`` layers: hidden state n after layer n, one attention map each."""
    return Layers(tuple(range(num_layers + 1)), ((),) + tuple((i,) for i in range(num_layers)))


def map_layers(student_layers: int, teacher_layers: int, mapping: str = "uniform") -> list[int]:
    """``g(m)`` for m = 0..M (``g(0) = 0``, the embedding output), see the module docstring."""
    if mapping not in MAPPINGS:
        raise ValueError(f"unknown mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")
    M, N = student_layers, teacher_layers
    if M < 1 or N < 1:
        raise ValueError(f"both models need at least one layer, got student {M}, teacher {N}")
    out = [0]
    for m in range(1, M + 1):
        if mapping == "uniform":
            g = math.ceil(m * N / M)
        elif mapping == "top":
            g = N - M + m
        else:
            g = m
        out.append(min(max(g, 1), N))
    return out


@dataclass
class Alignment:
    """What is compared with what: hidden-state index pairs and attention index pairs."""

    hidden: list[tuple[int, int]]  # (student hidden index, teacher hidden index)
    attention: list[tuple[int, int]]  # (student attention index, teacher attention index)
    mapping: list[int] = field(default_factory=list)  # g(m), m = 0..M

    def describe(self) -> str:
        return (f"hidden states {[(s, t) for s, t in self.hidden]}; attention maps "
                f"{[(s, t) for s, t in self.attention]}")  # fmt: skip


def align(student: Layers, teacher: Layers, mapping: str = "uniform") -> Alignment:
    """Pair the student's layers with the teacher's (see :func:`map_layers`)."""
    g = map_layers(student.num_layers, teacher.num_layers, mapping)
    hidden = [(student.hidden[m], teacher.hidden[g[m]]) for m in range(student.num_layers + 1)]
    attention = []
    for m in range(1, student.num_layers + 1):
        t_maps = teacher.attention[g[m]]
        if not t_maps:
            continue  # the teacher layer has no attention: hidden states only
        attention += [(s, t_maps[0]) for s in student.attention[m]]
    return Alignment(hidden, attention, g)


# ============================================================================ teachers


@dataclass
class TeacherOutputs:
    hidden_states: tuple[torch.Tensor, ...]
    attentions: tuple[torch.Tensor, ...]  # pre-softmax scores [B, heads, L, L]
    logits: torch.Tensor | None = None


class HFAttentionCapture:
    """Pre-softmax attention scores of a Hugging Face BERT / ELECTRA model, without editing transformers.

    With SDPA, ``output_attentions=True`` returns nothing, and eager attention returns the
    probabilities after softmax; TinyBERT needs the scores before it. Forward hooks on every
    layer's ``query`` and ``key`` projections keep their outputs, and :meth:`scores` computes
    ``q k^T / sqrt(d)`` per head, with padded keys at the dtype's minimum (as lvbert's own).
    """

    def __init__(self, encoder_layers, num_heads: int):
        self.num_heads = num_heads
        self._q: list[torch.Tensor | None] = [None] * len(encoder_layers)
        self._k: list[torch.Tensor | None] = [None] * len(encoder_layers)
        self.handles = []
        for i, layer in enumerate(encoder_layers):
            attn = layer.attention.self
            self.handles.append(attn.query.register_forward_hook(self._keep(self._q, i)))
            self.handles.append(attn.key.register_forward_hook(self._keep(self._k, i)))

    @staticmethod
    def _keep(store, i):
        def hook(module, inputs, output):
            store[i] = output

        return hook

    def scores(self, attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        if any(q is None for q in self._q) or any(k is None for k in self._k):
            from lvbert.errors import LvBertError

            raise LvBertError("the teacher's attention layers did not call their query/key projections, so their "
                              "scores cannot be captured; load it with the default (sdpa or eager) attention")  # fmt: skip
        out = []
        for q, k in zip(self._q, self._k):
            B, L, H = q.shape
            d = H // self.num_heads
            qh = q.view(B, L, self.num_heads, d).transpose(1, 2)
            kh = k.view(B, L, self.num_heads, d).transpose(1, 2)
            s = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(d)
            if attention_mask is not None:
                s = s.masked_fill(~attention_mask.bool()[:, None, None, :], torch.finfo(s.dtype).min)
            out.append(s)
        for store in (self._q, self._k):  # in place: the hooks hold these lists
            store[:] = [None] * len(store)
        return tuple(out)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class Teacher(nn.Module):
    """A frozen teacher giving hidden states, pre-softmax attention scores and (task models) logits.

    ``model`` is an lvbert model (any arch, any head) or a Hugging Face BERT / ELECTRA model
    (a backbone or a model with a head). Build one from a folder with :func:`load_teacher`.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        cfg = model.config
        self.is_lvbert = cfg.model_type == "lvbert"
        self.hidden_size = cfg.hidden_size
        if self.is_lvbert:
            self.layers = slot_pair_layers(cfg.arch)
            self.capture = None
        else:
            base = getattr(model, model.base_model_prefix, model)
            self.layers = transformer_layers(cfg.num_hidden_layers)
            self.capture = HFAttentionCapture(base.encoder.layer, cfg.num_attention_heads)

    def train(self, mode: bool = True):  # the teacher stays in eval mode (no dropout)
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, input_ids, attention_mask=None, token_type_ids=None, with_attentions: bool = True) -> TeacherOutputs:
        kw = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                  output_hidden_states=True)  # fmt: skip
        if self.is_lvbert:
            out = self.model(**kw, output_attentions=with_attentions)
            attentions = out.attentions or ()
        else:
            out = self.model(**kw)
            attentions = self.capture.scores(attention_mask) if with_attentions else ()
        return TeacherOutputs(tuple(out.hidden_states), tuple(attentions), getattr(out, "logits", None))


def load_teacher(path, task_head: bool = False) -> Teacher:
    """A :class:`Teacher` from a model folder: lvbert (any arch, any head) or Hugging Face BERT / ELECTRA.

    ``task_head``: the model must have a sequence-classification head (task distillation)."""

    config = load_config(path, ("lvbert", "bert", "electra"))
    if getattr(config, "allowed_types", None) is not None:
        raise LvBertError(f"{path} is a supernet; extract an arch first (lvbert supernet extract) to use it as a teacher")
    archs = config.architectures or []
    with quiet_transformers():
        if task_head:
            if not any(a.endswith("ForSequenceClassification") for a in archs):
                raise LvBertError(f"{path} is not fine-tuned on a task ({', '.join(archs) or 'no head'}); task "
                                  "distillation needs a task-fine-tuned teacher (lvbert finetune)")  # fmt: skip
            model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        else:
            model = AutoModel.from_pretrained(path, local_files_only=True)
    return Teacher(model)


# ============================================================================ the loss module


class DistillLoss(nn.Module):
    """TinyBERT's losses between a student's outputs and a :class:`TeacherOutputs` (module docstring).

    Args:
        alignment: which student hidden states / attention maps meet which of the teacher's.
        student_hidden, teacher_hidden: widths H_S and H_T (the projections map H_S -> H_T). ``student_hidden``
            is one width, or one per student hidden-state index (:func:`hidden_widths`) for a student whose
            width changes between slots.
        projection: ``"shared"`` (one projection for every layer, the official code), ``"per-layer"``, or
            ``"none"`` (equal widths, e.g. a quantized student of its own full-precision model). When the
            widths of the aligned student layers differ, only ``"per-layer"`` fits them.
        temperature: of the soft cross-entropy.
        weights: ``{"hidden", "attention", "prediction"}`` multipliers (1.0 each, as TinyBERT).
    """

    def __init__(self, alignment: Alignment, student_hidden: int | Sequence[int], teacher_hidden: int,
                 projection: str = "shared", temperature: float = 1.0, weights: dict | None = None):  # fmt: skip
        super().__init__()
        if projection not in ("shared", "per-layer", "none"):
            raise ValueError(f"projection must be shared, per-layer or none, got {projection!r}")
        if not isinstance(student_hidden, Sequence):
            widths = [student_hidden] * len(alignment.hidden)
        else:
            if any(s >= len(student_hidden) for s, _ in alignment.hidden):
                raise ValueError(f"student_hidden gives {len(student_hidden)} widths but the alignment reads hidden "
                                 f"state {max(s for s, _ in alignment.hidden)}")  # fmt: skip
            widths = [int(student_hidden[s]) for s, _ in alignment.hidden]
        if projection == "shared" and len(set(widths)) > 1:
            raise ValueError(f"projection shared needs one student width, but the aligned layers have widths "
                             f"{widths}; use per-layer projections")  # fmt: skip
        if projection == "none" and any(w != teacher_hidden for w in widths):
            raise ValueError(f"projection none needs equal widths, got {sorted(set(widths))} and {teacher_hidden}")
        self.alignment = alignment
        self.projection = projection
        self.student_widths = widths  # of the aligned student layers, in alignment order
        n = {"shared": 1, "per-layer": len(alignment.hidden), "none": 0}[projection]
        self.proj = nn.ModuleList(nn.Linear(widths[k], teacher_hidden) for k in range(n))
        for p in self.proj:
            nn.init.trunc_normal_(p.weight, std=0.02, a=-0.04, b=0.04)
            nn.init.zeros_(p.bias)
        self.temperature = temperature
        self.weights = {"hidden": 1.0, "attention": 1.0, "prediction": 1.0, **(weights or {})}

    def hidden_loss(self, student_hidden, teacher_hidden) -> torch.Tensor:
        total = 0.0
        for k, (s, t) in enumerate(self.alignment.hidden):
            h = student_hidden[s]
            if self.projection != "none":
                h = self.proj[0 if self.projection == "shared" else k](h)
            total = total + F.mse_loss(h.float(), teacher_hidden[t].float())
        return total

    def attention_loss(self, student_att, teacher_att, attention_mask=None) -> torch.Tensor:
        total = 0.0
        for s, t in self.alignment.attention:
            a_s, a_t = student_att[s].float(), teacher_att[t].float()
            if a_s.shape[1] != a_t.shape[1]:  # different head counts: compare the head means
                if attention_mask is not None:
                    keep = attention_mask.bool()[:, None, None, :]
                    a_s, a_t = a_s.masked_fill(~keep, 0.0), a_t.masked_fill(~keep, 0.0)
                a_s, a_t = a_s.mean(1, keepdim=True), a_t.mean(1, keepdim=True)
            total = total + masked_score_mse(a_s, a_t, attention_mask)
        return total

    def prediction_loss(self, student_logits, teacher_logits) -> torch.Tensor:
        return soft_cross_entropy(student_logits, teacher_logits, self.temperature)

    def forward(self, student_out, teacher: TeacherOutputs, attention_mask=None, prediction: bool = False) -> dict:
        """``{"loss", "hidden_loss", "attention_loss"}`` (intermediate) or ``{"loss", "prediction_loss"}``."""
        if prediction:
            pred = self.prediction_loss(student_out.logits, teacher.logits)
            return {"loss": self.weights["prediction"] * pred, "prediction_loss": pred.detach()}
        hid = self.hidden_loss(student_out.hidden_states, teacher.hidden_states)
        att = self.attention_loss(student_out.attentions or (), teacher.attentions, attention_mask)
        loss = self.weights["hidden"] * hid + self.weights["attention"] * att
        return {"loss": loss, "hidden_loss": _detach(hid), "attention_loss": _detach(att)}


def _detach(x):
    return x.detach() if torch.is_tensor(x) else torch.tensor(float(x))


def masked_score_mse(a_s: torch.Tensor, a_t: torch.Tensor, attention_mask=None) -> torch.Tensor:
    """MSE of two [B, h, L, L] score tensors with the entries at padded keys set to 0 on both sides
    (TinyBERT's official code zeroes every entry at or below -100, which are exactly those)."""
    if attention_mask is not None:
        keep = attention_mask.bool()[:, None, None, :]
        a_s = a_s.masked_fill(~keep, 0.0)
        a_t = a_t.masked_fill(~keep, 0.0)
    return F.mse_loss(a_s, a_t)


def soft_cross_entropy(student_logits, teacher_logits, temperature: float = 1.0) -> torch.Tensor:
    """``-softmax(z_T / t) . log_softmax(z_S / t)``, summed over classes and averaged over the batch;
    one output (regression): MSE to the teacher's output."""
    s, t = student_logits.float(), teacher_logits.float()
    if s.shape[-1] == 1:
        return F.mse_loss(s, t)
    return -(F.softmax(t / temperature, dim=-1) * F.log_softmax(s / temperature, dim=-1)).sum(-1).mean()


# ============================================================================ prediction-layer KD in pre-training


def teacher_mlm_logits(teacher: nn.Module, batch: dict) -> torch.Tensor:
    """A frozen MLM teacher's logits at the masked positions, [M, V] in row-major order (the rows of an
    ``LvBertForMaskedLM`` with labels); lvbert and Hugging Face MLM models."""

    kwargs = {k: batch[k] for k in MODEL_KEYS if k in batch and k != "labels"}
    with torch.no_grad():
        if getattr(teacher.config, "model_type", None) == "lvbert":
            return teacher(**kwargs, labels=batch["labels"]).logits
        return teacher(**kwargs).logits[batch["labels"] != -100]


def mlm_kd_objective(model, batch: dict, teacher: nn.Module, weight: float = 0.5, temperature: float = 1.0) -> dict:
    """NAS-BERT's pre-training loss (Xu et al. 2021): ``(1 - weight) x MLM cross-entropy + weight x
    KL(teacher || student)`` on the masked positions' vocabulary logits (prediction-layer KD only)."""

    out = model(**{k: batch[k] for k in MODEL_KEYS if k in batch})
    t_logits = teacher_mlm_logits(teacher, batch)
    if t_logits.shape != out.logits.shape:
        raise ValueError(f"teacher logits {tuple(t_logits.shape)} and student logits {tuple(out.logits.shape)} differ")
    T = temperature
    kd = F.kl_div(F.log_softmax(out.logits.float() / T, -1), F.log_softmax(t_logits.float() / T, -1), log_target=True,
                  reduction="batchmean") * (T * T)  # fmt: skip
    correct, total = masked_accuracy(out.logits.detach(), batch["labels"])
    return {"loss": (1.0 - weight) * out.loss + weight * kd, "mlm_loss": out.loss.detach(), "kd_loss": kd.detach(),
            "mlm_accuracy": correct / max(total, 1)}  # fmt: skip


class DistillModel(nn.Module):
    """What the loop trains: the student and the loss module (its projections). The teacher is held
    outside the module tree, so it is neither trained nor saved in checkpoints."""

    def __init__(self, student: nn.Module, loss: nn.Module, teacher: nn.Module, mlm_weight: float = 0.0):
        super().__init__()
        self.student = student
        self.loss = loss
        object.__setattr__(self, "_teacher", teacher)  # not a submodule
        self.mlm_weight = mlm_weight

    @property
    def teacher(self):
        return self._teacher

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, prediction: bool = False,
                **_) -> dict:  # fmt: skip
        """Teacher and student read the same ``input_ids`` (masked or not: the batches decide)."""
        t = self.teacher(input_ids, attention_mask, token_type_ids, with_attentions=not prediction)
        kw = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                  output_hidden_states=not prediction, output_attentions=not prediction)  # fmt: skip
        if self.mlm_weight > 0:
            kw["labels"] = labels
        out = self.student(**kw)
        res = self.loss(out, t, attention_mask, prediction=prediction)
        if self.mlm_weight > 0:
            res["loss"] = res["loss"] + self.mlm_weight * out.loss
            res["mlm_loss"] = out.loss.detach()
        return res


def distill_objective(model, batch: dict, prediction: bool = False) -> dict:
    keys = ("input_ids", "attention_mask", "token_type_ids", "labels")
    return model(**{k: batch[k] for k in keys if k in batch}, prediction=prediction)


def num_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def kdlsq_objective(kd: bool, gold_weight: float, regression: bool):
    """KDLSQ's loss for quantization-aware training (Jin et al. 2021): the TinyBERT hidden-state and
    attention terms plus the prediction term (soft cross-entropy, or MSE to the label for regression),
    with ``gold_weight`` x the labels' cross-entropy; without ``kd``, the labels' loss alone. The
    model is a :class:`DistillModel` (``student``, ``teacher``, ``loss``)."""

    def objective(model, batch: dict) -> dict:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        if not kd:
            return {"loss": model.student(**inputs, labels=batch["labels"]).loss}
        t = model.teacher(inputs["input_ids"], inputs.get("attention_mask"), inputs.get("token_type_ids"))
        out = model.student(**inputs, output_hidden_states=True, output_attentions=True)
        inter = model.loss(out, t, inputs.get("attention_mask"))
        if regression:  # KDLSQ: the logit term of a regression task is the MSE to the label
            pred = F.mse_loss(out.logits.squeeze(-1).float(), batch["labels"].float())
        else:
            pred = model.loss.prediction_loss(out.logits, t.logits)
        loss = inter["loss"] + pred
        res = {"hidden_loss": inter["hidden_loss"], "attention_loss": inter["attention_loss"], "pred_loss": pred.detach()}
        if gold_weight > 0 and not regression:
            gold = F.cross_entropy(out.logits.float(), batch["labels"].long())
            loss = loss + gold_weight * gold
            res["gold_loss"] = gold.detach()
        return {"loss": loss, **res}

    return objective


@torch.no_grad()
def evaluate_distill(model: DistillModel, valid: dict, batch_size: int = 64, masked: bool = False) -> dict:
    """Mean intermediate losses on a fixed validation set (unmasked unless ``masked``)."""
    sums, n = {}, 0
    device = next(model.parameters()).device
    for start in range(0, valid["input_ids"].shape[0], batch_size):
        b = {k: v[start : start + batch_size].to(device) for k, v in valid.items()}
        ids = b["input_ids"] if masked else torch.where(b["labels"] != -100, b["labels"], b["input_ids"])
        t = model.teacher(ids, b["attention_mask"], b["token_type_ids"])
        s = model.student(input_ids=ids, attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
                          output_hidden_states=True, output_attentions=True)  # fmt: skip
        res = model.loss(s, t, b["attention_mask"])
        for k, v in res.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
    return {k: v / max(n, 1) for k, v in sums.items()}


def student_projection(config, projection: str, verbose: bool = True) -> tuple[list[int], str]:
    """The student's hidden-state widths (:func:`hidden_widths`) and the projection to use: ``per-layer``
    when the widths differ (``P(hidden=W)`` slots; one projection cannot read them all), else ``projection``."""

    widths = hidden_widths(config)
    if len(set(widths)) > 1:
        if verbose:
            print(f"the student's width changes between slots ({' -> '.join(str(w) for w in dict.fromkeys(widths))}): "
                  "per-layer hidden-state projections, each reading its layer's width")  # fmt: skip
        return widths, "per-layer"
    return widths, projection
