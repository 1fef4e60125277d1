"""Recipe: TinyBERT distillation into any LV-BERT student (Jiao et al. 2020).

Two stages, one command (``lvbert distill``):

- **general** (``--data PREPARED --arch ARCH --size SIZE``, or ``--data PREPARED --student DIR``):
  a new student (or the model in DIR, e.g. one ``lvbert nas search`` wrote) learns the
  teacher's hidden states and pre-softmax attention scores on unlabelled text (the packed
  pre-training data, unmasked as TinyBERT's v2 corpus); no prediction loss. The teacher is a
  pre-trained model (an lvbert run folder or a Hugging Face BERT / ELECTRA checkpoint on disk).
  Output: an ``LvBertForMaskedLM`` folder (its MLM head is trained only with ``--mlm-weight``).
- **task** (``--task T --data-dir DIR --student STUDENT``): the student (a general-distilled
  one, or any lvbert model) learns from a teacher fine-tuned on the task, first the
  intermediate layers (hidden states and attention, constant learning rate, as the official
  code's first run), then the prediction layer (soft cross-entropy to the teacher's logits,
  warm-up and linear decay, the dev set scored every epoch and the best epoch kept, as its
  second run). Output: a fine-tuned model folder with ``results.json``, as ``lvbert finetune``
  writes (``lvbert predict`` reads it).

The loss module (:class:`lvbert.objectives.distill.DistillLoss`, with its projections) is
trained with the student and saved in the checkpoints; the teacher is frozen and never
saved. A student whose width changes between slots (``P(hidden=W)`` slots, NAS-BERT's) gets
per-layer projections, each reading its layer's width. The same loop, checkpoints, exact
resume, bf16 and distributed support as pre-training.
Layer mapping and losses: ``docs/distill.md``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lvbert.data.masking import MaskingConfig, fixed_mask_validation
from lvbert.data.packed import check_positions, open_data
from lvbert.data.tokenizer import check_teacher_vocab
from lvbert.errors import LvBertError
from lvbert.model_dir import (
    check_model_weights,
    check_student_vocab,
    load_classifier,
    load_model_config,
    load_model_tokenizer,
    load_student_mlm,
    save_model_dir,
)
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM
from lvbert.objectives.distill import (
    MAPPINGS,
    DistillLoss,
    DistillModel,
    align,
    distill_objective,
    evaluate_distill,
    load_teacher,
    num_parameters,
    slot_pair_layers,
    student_projection,
)
from lvbert.options import check_non_negative, check_rates, option
from lvbert.tasks import DEMO_TASKS, demo_data_dir, get_task
from lvbert.tasks.encoding import IndexedBatches, encode_task, evaluate_splits, resolve_max_seq_len
from lvbert.tasks.metrics import summarise
from lvbert.training.batches import PretrainBatches
from lvbert.training.distributed import cleanup, pick_device, setup_distributed
from lvbert.training.loop import LoopConfig, train_loop
from lvbert.training.optim import build_optimizer, linear_schedule
from lvbert.training.run import check_run_output, loop_config, prepare_run_dir, write_run_config
from lvbert.training.seeds import BestEpoch, dev_logs, promote_best
from lvbert.utils import atomic_write_json, fix_permissions


@dataclass
class DistillConfig:
    """Everything ``lvbert distill`` takes (general distillation with --data, task distillation with --task)."""

    teacher: str = option("teacher model folder: lvbert (any arch) or a Hugging Face BERT/ELECTRA checkpoint on disk; "
                          "fine-tuned on the task for task distillation", default=None)  # fmt: skip
    out: str = option("output folder", default=None)
    # general distillation
    data: str | None = option("general distillation: prepared data (lvbert data prepare) with the teacher's tokenizer",
                              default=None)  # fmt: skip
    arch: str = option("general distillation: the new student's architecture (ignored with --student)",
                       default="lv-bert-small")  # fmt: skip
    size: str = option("general distillation: the new student's size preset (ignored with --student)",
                       default="small")  # fmt: skip
    steps: int = option("general distillation: optimizer steps", default=10000)
    mask: bool = option("general distillation: mask the inputs BERT-style (needed by --mlm-weight)", default=False)
    mlm_weight: float = option("general distillation: weight of a masked-LM loss on the student's own MLM head "
                               "(0: TinyBERT's general distillation, which has none)", default=0.0)  # fmt: skip
    # task distillation (--student also in general distillation)
    student: str | None = option("the student model folder: task distillation's (general-distilled, or any lvbert "
                                 "model); with --data, general distillation starts from its weights, arch and widths "
                                 "(e.g. a model lvbert nas search wrote) instead of a new --arch/--size student",
                                 default=None)  # fmt: skip
    task: str | None = option("task distillation: the task (as lvbert finetune takes it)", default=None)
    data_dir: str | None = option("task distillation: the task's folder (e.g. an augmented one from lvbert augment)",
                                  default=None)  # fmt: skip
    epochs: int = option("task distillation: epochs of the intermediate phase", default=3)
    pred_epochs: int = option("task distillation: epochs of the prediction phase", default=3)
    pred_lr: float | None = option("task distillation: learning rate of the prediction phase (default --lr)",
                                   default=None)  # fmt: skip
    max_seq_len: int | None = option("task distillation: longer inputs are truncated (default 128)", default=None)
    text_column: str | None = option("file tasks: column with the text", default=None)
    text_pair_column: str | None = option("file tasks: column with the second text", default=None)
    label_column: str | None = option("file tasks: column with the label", default=None)
    # both
    mapping: str = option("layer mapping: uniform (TinyBERT's: student layer m to teacher layer m*N/M), top or "
                          "bottom", default="uniform")  # fmt: skip
    projection: str = option("hidden-state projections: shared (one for every layer, the official code) or "
                             "per-layer", default="shared")  # fmt: skip
    temperature: float = option("temperature of the soft cross-entropy", default=1.0)
    batch_size: int = option("global batch size", default=32)
    grad_accum: int = option("micro-batches per step", default=1)
    lr: float | None = option("peak learning rate (default 1e-4 general, as BERT pre-training; 5e-5 task, the "
                              "official code's)", default=None)  # fmt: skip
    warmup: float = option("warm-up fraction of the steps (general and prediction phase; the intermediate phase of "
                           "task distillation runs at a constant rate, as the official code)", default=0.1)  # fmt: skip
    weight_decay: float = option("AdamW weight decay (not on LayerNorm and biases)", default=0.01)
    clip_norm: float = option("global gradient-norm clip", default=1.0)
    dropout: float = option("the student's dropout", default=0.1)
    bf16: bool = option("bf16 autocast", default=False)
    seed: int = option("seed of the data order, masks and the student's initialisation", default=0)
    log_every: int = option("steps between metric lines", default=10)
    save_every: int = option("steps between checkpoints", default=1000)
    keep_last: int = option("checkpoints kept", default=2)
    eval_every: int = option("general distillation: steps between validations", default=500)
    eval_sequences: int = option("general distillation: validation sequences", default=128)
    device: str = option("auto, cpu, cuda", default="auto")
    progress: bool = option("progress bar", default=True)
    overwrite: bool = option("replace an existing --out folder (its old contents are removed first)", default=False)

    def __post_init__(self) -> None:
        for name in ("teacher", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")
        if (self.data is None) == (self.task is None):
            raise LvBertError("give --data PREPARED [--student S] (general distillation) or --task T --data-dir DIR "
                              "--student S (task distillation), not both")  # fmt: skip
        if self.task is not None and not self.student:
            raise LvBertError("task distillation needs --student: a general-distilled student or an lvbert model folder")
        if self.mapping not in MAPPINGS:
            raise LvBertError(f"--mapping must be one of {', '.join(MAPPINGS)}, got {self.mapping!r}")
        if self.projection not in ("shared", "per-layer"):
            raise LvBertError(f"--projection must be shared or per-layer, got {self.projection!r}")
        for name in ("steps", "epochs", "pred_epochs", "batch_size", "grad_accum", "log_every", "keep_last",
                     "eval_sequences"):  # fmt: skip
            if getattr(self, name) < 1:
                raise LvBertError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.mlm_weight < 0 or (self.mlm_weight > 0 and not self.mask):
            raise LvBertError("--mlm-weight must be >= 0, and > 0 only with --mask (the MLM loss needs masked inputs)")
        if not self.temperature > 0:
            raise LvBertError(f"--temperature must be positive, got {self.temperature}")
        if not 0 <= self.warmup < 1:
            raise LvBertError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        check_rates(self, "lr", "pred_lr")
        check_non_negative(self, "weight_decay", "clip_norm", "dropout", "save_every", "eval_every")
        if self.dropout >= 1:
            raise LvBertError(f"--dropout must be below 1, got {self.dropout}")

    def inputs(self) -> dict:
        """The paths this run reads: its --out may be none of them."""
        return {"--teacher": self.teacher, "--data": self.data, "--student": self.student, "--data-dir": self.data_dir}


def run_distill(cfg: DistillConfig, resume: bool = False) -> Path:
    """Run general or task distillation as configured; returns the output folder."""
    return general_distill(cfg, resume) if cfg.data is not None else task_distill(cfg, resume)


# ============================================================================ general distillation


def general_distill(cfg: DistillConfig, resume: bool = False) -> Path:
    check_model_weights(cfg.teacher, "--teacher")
    if cfg.student:
        check_model_weights(cfg.student, "--student")
    out = check_run_output(cfg.out, cfg.inputs(), cfg.overwrite, resume)
    data = open_data(cfg.data)
    tokenizer = data.tokenizer
    teacher_dir = Path(cfg.teacher)
    teacher = load_teacher(teacher_dir)
    check_teacher_vocab(teacher_dir, tokenizer, f"the data in {data.path}")
    if cfg.student:
        check_student_vocab(cfg.student, tokenizer, f"the data in {data.path}")
    info = setup_distributed(cfg.device)
    try:
        torch.manual_seed(cfg.seed)
        if cfg.student:
            student = load_student_mlm(cfg.student, cfg.dropout)
            student_cfg = student.config
        else:
            student_cfg = LvBertConfig.from_size(cfg.size, arch=cfg.arch, vocab_size=len(tokenizer),
                                                 pad_token_id=tokenizer.pad_token_id, hidden_dropout_prob=cfg.dropout,
                                                 attention_probs_dropout_prob=cfg.dropout)  # fmt: skip
        check_positions(data.seq_len, min(student_cfg.max_position_embeddings, teacher.model.config.max_position_embeddings))
        if not cfg.student:
            student = LvBertForMaskedLM(student_cfg)
        alignment = align(slot_pair_layers(student_cfg.arch), teacher.layers, cfg.mapping)
        widths, projection = student_projection(student_cfg, cfg.projection, info.is_main)
        loss = DistillLoss(alignment, widths, teacher.hidden_size, projection, cfg.temperature)
        model = DistillModel(student, loss, teacher, cfg.mlm_weight)
        if num_parameters(student.lvbert) > num_parameters(teacher.model):
            warnings.warn(f"the student ({num_parameters(student.lvbert):,} parameters) is larger than the teacher "
                          f"({num_parameters(teacher.model):,}); distillation usually shrinks a model", stacklevel=2)  # fmt: skip
        identity = {"kind": "distill-general", "arch": student_cfg.arch, "size": None if cfg.student else cfg.size,
                    "student": str(cfg.student) if cfg.student else None, "teacher": str(teacher_dir),
                    "mapping": cfg.mapping, "projection": projection, **data.identity()}  # fmt: skip
        resuming = prepare_run_dir(out, resume, identity)
        micro = _micro(cfg, info.world_size)
        lr = cfg.lr if cfg.lr is not None else 1e-4
        warmup = round(cfg.warmup * cfg.steps)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_run_config(out, {**asdict(cfg), "lr": lr, "processes": info.world_size}, identity)
            where = f"from {cfg.student}" if cfg.student else f"at {cfg.size}"
            print(f"distill (general): student {student_cfg.arch} {where} ({num_parameters(student.lvbert):,} "
                  f"parameters) from {teacher_dir} ({num_parameters(teacher.model):,}); {cfg.steps} steps x "
                  f"{cfg.batch_size}, lr {lr}; {alignment.describe()}")  # fmt: skip
        model.to(info.device)
        teacher.to(info.device)
        optimizer = build_optimizer(model, lr, weight_decay=cfg.weight_decay)
        scheduler = linear_schedule(optimizer, warmup, cfg.steps)
        masking = MaskingConfig(mode="bert")
        batches = PretrainBatches(data, micro, cfg.grad_accum, info.rank, info.world_size, masking, cfg.seed,
                                  max_positions=student_cfg.max_position_embeddings)  # fmt: skip
        if not cfg.mask:  # TinyBERT's general distillation reads unmasked text
            masked_batches = batches

            def batches(step, micro_i):  # noqa: F811
                b = masked_batches(step, micro_i)
                return {"input_ids": b["original_ids"], "attention_mask": b["attention_mask"],
                        "token_type_ids": b["token_type_ids"]}  # fmt: skip

        valid = fixed_mask_validation(data, cfg.eval_sequences, seed=cfg.seed, config=masking)

        def evaluate(m, step: int) -> dict:
            return evaluate_distill(m, valid, masked=cfg.mask)

        result = train_loop(model, distill_objective, batches, optimizer, scheduler, loop_config(cfg, out),
                            dist_info=info, evaluate=evaluate if info.is_main else None,
                            on_checkpoint=lambda folder: tokenizer.save_pretrained(str(folder)), resume=resuming)  # fmt: skip
        if info.is_main:
            student.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            atomic_write_json(out / "summary.json", {"stage": "general", "arch": student_cfg.arch, "step": result["step"],
                                                     "params": num_parameters(student.lvbert), "validation": result["eval"],
                                                     "alignment": {"hidden": alignment.hidden,
                                                                   "attention": alignment.attention}})  # fmt: skip
            fix_permissions(out)
            print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in result["eval"].items() if isinstance(v, float)))
        return out
    finally:
        cleanup(info)


def _micro(cfg, world: int) -> int:
    if cfg.batch_size % (world * cfg.grad_accum):
        raise LvBertError(f"--batch-size {cfg.batch_size} must be divisible by processes x --grad-accum = "
                          f"{world * cfg.grad_accum}")  # fmt: skip
    return cfg.batch_size // (world * cfg.grad_accum)


# ============================================================================ task distillation


def task_distill(cfg: DistillConfig, resume: bool = False) -> Path:
    """Intermediate-layer then prediction-layer distillation on a task; writes a fine-tuned model folder."""

    check_model_weights(cfg.student, "--student")
    check_model_weights(cfg.teacher, "--teacher")
    out = check_run_output(cfg.out, cfg.inputs(), cfg.overwrite, resume)
    student_config = load_model_config(cfg.student)
    tokenizer = load_model_tokenizer(cfg.student, student_config.vocab_size)
    teacher_dir = Path(cfg.teacher)
    teacher = load_teacher(teacher_dir, task_head=True)
    check_teacher_vocab(teacher_dir, tokenizer, f"the student in {cfg.student}")
    task = get_task(cfg.task, cfg.data_dir, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                    label_column=cfg.label_column)  # fmt: skip
    data_dir = Path(cfg.data_dir) if cfg.data_dir else (demo_data_dir(task.name) if task.name in DEMO_TASKS else None)
    if data_dir is None:
        raise LvBertError(f"task {task.name} needs --data-dir")
    t_labels = teacher.model.config.num_labels
    if t_labels != task.num_labels:
        raise LvBertError(f"the teacher has {t_labels} output(s) but task {task.name} needs {task.num_labels}; give a "
                          f"teacher fine-tuned on {task.name}")  # fmt: skip
    if task.is_regression != (t_labels == 1):
        raise LvBertError(f"task {task.name} and the teacher disagree on regression vs classification")
    max_len = resolve_max_seq_len(cfg.max_seq_len, min(student_config.max_position_embeddings,
                                                       teacher.model.config.max_position_embeddings))  # fmt: skip
    train, dev = encode_task(task, data_dir, tokenizer, max_len, task.both_orders)
    widths, projection = student_projection(student_config, cfg.projection)
    identity = {"kind": "distill-task", "task": task.name, "student": str(cfg.student), "teacher": str(teacher_dir),
                "mapping": cfg.mapping, "projection": projection}  # fmt: skip
    prepare_run_dir(out, resume, identity)  # refuses to overwrite a run, checks a resume's settings
    device = pick_device(cfg.device)
    pad = tokenizer.pad_token_id or 0
    lr = cfg.lr if cfg.lr is not None else 5e-5
    pred_lr = cfg.pred_lr if cfg.pred_lr is not None else lr
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out, {**asdict(cfg), "lr": lr, "pred_lr": pred_lr}, identity)

    torch.manual_seed(cfg.seed)
    student = load_classifier(cfg.student, task.labels, cfg.seed)
    alignment = align(slot_pair_layers(student.config.arch), teacher.layers, cfg.mapping)
    loss = DistillLoss(alignment, widths, teacher.hidden_size, projection, cfg.temperature)
    model = DistillModel(student, loss, teacher).to(device)
    teacher.to(device)
    print(f"distill ({task.name}): student {student.config.arch} ({num_parameters(student.lvbert):,} parameters) from "
          f"{teacher_dir} ({num_parameters(teacher.model):,}); {len(train)} train, {cfg.epochs} + {cfg.pred_epochs} epochs; "
          f"{alignment.describe()}")  # fmt: skip

    batches = IndexedBatches(train, cfg.batch_size, cfg.seed, pad)
    # phase 1: intermediate layers, constant learning rate (the official code's first run)
    phase1 = out / "intermediate"
    steps1 = batches.steps(cfg.epochs)
    optimizer = build_optimizer(model, lr, weight_decay=cfg.weight_decay)
    constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    loop1 = LoopConfig(out_dir=str(phase1), max_steps=steps1, clip_norm=cfg.clip_norm, bf16=cfg.bf16,
                       log_every=cfg.log_every, save_every=cfg.save_every, keep_last=cfg.keep_last, seed=cfg.seed,
                       progress=cfg.progress, tensorboard=False)  # fmt: skip
    train_loop(model, distill_objective, batches, optimizer, constant, loop1, resume=resume)  # its own checkpoints

    # phase 2: the prediction layer, warm-up + linear decay, dev scored every epoch, the best kept
    steps2 = batches.steps(cfg.pred_epochs)
    optimizer = build_optimizer(model.student, pred_lr, weight_decay=cfg.weight_decay)
    scheduler = linear_schedule(optimizer, round(cfg.warmup * steps2), steps2)
    history = []

    def measure(m) -> tuple[dict, dict]:
        results = evaluate_splits(m.student, task, dev, 128, pad, cfg.bf16)
        score = task.score(results)
        return {"score": score, "dev": results}, dev_logs(results, score)

    evaluate = BestEpoch(measure, lambda m: save_model_dir(m.student, tokenizer, out / "best"), batches.per_epoch,
                         history)  # fmt: skip

    loop2 = LoopConfig(out_dir=str(out / "prediction"), max_steps=steps2, clip_norm=cfg.clip_norm, bf16=cfg.bf16,
                       log_every=cfg.log_every, save_every=0, eval_every=batches.per_epoch, save_final=False,
                       seed=cfg.seed, progress=cfg.progress, tensorboard=False)  # fmt: skip
    t0 = time.perf_counter()
    train_loop(model, lambda m, b: distill_objective(m, b, prediction=True), IndexedBatches(train, cfg.batch_size,
               cfg.seed + 1, pad), optimizer, scheduler, loop2, evaluate=evaluate)  # fmt: skip
    top = evaluate.top()
    run = {"seed": cfg.seed, "best_step": top["step"], "best_epoch": top["epoch"], "score": top["score"],
           "dev": top["dev"], "history": history, "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    promote_best(out)
    results = {"task": task.to_dict(), "model": str(cfg.student), "teacher": str(teacher_dir), "data_dir": str(data_dir),
               "config": asdict(cfg), "num_train": len(train), "num_dev": {s: len(e) for s, e in dev.items()},
               "best_seed": cfg.seed, "best_step": top["step"], "summary": summarise([run]), "runs": [run]}  # fmt: skip
    atomic_write_json(out / "results.json", results)
    fix_permissions(out)
    print(f"{task.name}: best dev score {top['score']:.4f} at epoch {top['epoch']}")
    return out
