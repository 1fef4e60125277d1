"""Recipe: KDLSQ quantization-aware training of a fine-tuned model (``lvbert quantize``).

The student is the fine-tuned model itself, fake-quantized (:mod:`lvbert.quantization`: weights
at ``--weight-bits``, activations at 8 bits or off); the teacher is the same model in full
precision (or ``--teacher``), frozen. Before training, the weight alphas are initialised from
the weights and the activation alphas from ``--calib-batches`` **training** batches
(``--init percentile|kl``). The loss, as KDLSQ (Jin et al. 2021), is TinyBERT's without
projections (the layers correspond one to one): soft cross-entropy to the teacher's logits +
the MSE of every hidden state (the embeddings' included) + the MSE of every A slot's
pre-softmax attention scores, plus ``--gold-weight`` times the cross-entropy to the labels
(KDLSQ's optional ground-truth term). ``--no-kd`` trains with the labels only (plain LSQ, the
baseline of the paper's claim). AdamW with three groups (weights 5e-5, weight alphas 1e-3, activation
alphas 3e-2, the KDLSQ code's), no warm-up, linear decay; the dev set is scored every epoch and
the best epoch is kept. Same loop, checkpoints, exact resume and bf16 as every lvbert run.

Output (``--out``): the quantized model folder (``config.json`` records the quantization;
``lvbert predict`` rebuilds the fake-quant model from it), ``quantized.safetensors`` (the
weights' integer codes packed ``--weight-bits`` bits each, with their alphas), ``results.json``
(dev scores of the full-precision model, of the quantized model before training, and per
epoch) and ``model.onnx`` (int8 with the learned scales, for ``lvbert predict --runtime onnx``;
with the deploy extra installed and 8-bit activations; fp32 activations export as fp32).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lvbert.data.tokenizer import check_teacher_vocab
from lvbert.errors import LvBertError
from lvbert.export.onnx import export_checked, require_deploy
from lvbert.model_dir import check_model_weights, load_finetuned, load_model_tokenizer, save_model_dir
from lvbert.objectives.distill import (
    DistillLoss,
    DistillModel,
    align,
    kdlsq_objective,
    load_teacher,
    num_parameters,
    slot_pair_layers,
)
from lvbert.options import check_non_negative, check_rates, option
from lvbert.quantization import (
    INIT_METHODS,
    QuantSpec,
    calibrate_activations,
    check_bits,
    init_weight_alphas,
    quantize_model,
    quantizers,
    save_packed,
)
from lvbert.tasks import task_for_model
from lvbert.tasks.encoding import IndexedBatches, encode_task, evaluate_splits, resolve_max_seq_len
from lvbert.tasks.metrics import summarise
from lvbert.training.distributed import pick_device
from lvbert.training.loop import LoopConfig, train_loop
from lvbert.training.optim import build_optimizer, linear_schedule
from lvbert.training.run import check_run_output, prepare_run_dir, write_run_config
from lvbert.training.seeds import BestEpoch, dev_logs, promote_best
from lvbert.utils import atomic_write_json, fix_permissions

PACKED_FILE = "quantized.safetensors"


@dataclass
class QuantizeConfig:
    """Everything ``lvbert quantize`` takes."""

    model: str = option("a fine-tuned lvbert model folder (lvbert finetune --out): the model to quantize", default=None)
    task: str = option("the task it was fine-tuned on (as lvbert finetune takes it)", default=None)
    out: str = option("output folder: the quantized model, its packed weights, results.json", default=None)
    data_dir: str | None = option("the task's folder (demo tasks default to the demo cache)", default=None)
    teacher: str | None = option("the full-precision teacher (default: --model itself)", default=None)
    weight_bits: int = option("bits of the quantized weights, 2 to 8", default=8)
    act_bits: int = option("bits of the quantized activations: 8, or 0 for full-precision activations", default=8)
    kd: bool = option("distil from the teacher (KDLSQ); --no-kd trains on the labels only (plain LSQ)", default=True)
    gold_weight: float = option("with --kd: weight of the cross-entropy to the labels (KDLSQ's optional term)",
                                default=0.0)  # fmt: skip
    hidden_weight: float = option("with --kd: weight of the hidden-state MSE", default=1.0)
    attention_weight: float = option("with --kd: weight of the attention-score MSE", default=1.0)
    init: str = option("alpha initialisation: percentile or kl (TensorRT's entropy calibration)", default="percentile")
    weight_percentile: float = option("percentile init: weights clipped at this percentile of |w| tails (the KDLSQ "
                                      "code: 97.5)", default=97.5)  # fmt: skip
    act_percentile: float = option("percentile init: activations clipped at this percentile", default=99.99)
    calib_batches: int = option("training batches observed to initialise the activation alphas", default=4)
    grad_scale: bool = option("LSQ's gradient scale 1/sqrt(N*Q) on the alphas (off: the KDLSQ code's own learning "
                              "rates instead)", default=False)  # fmt: skip
    epochs: int = option("training epochs", default=3)
    batch_size: int = option("training batch size", default=16)
    lr: float = option("learning rate of the weights", default=5e-5)
    weight_alpha_lr: float = option("learning rate of the weight alphas", default=1e-3)
    act_alpha_lr: float = option("learning rate of the activation alphas", default=3e-2)
    weight_decay: float = option("AdamW weight decay of the weights (not LayerNorm and biases)", default=0.01)
    max_seq_len: int | None = option("longer inputs are truncated (default 128)", default=None)
    clip_norm: float = option("gradient-norm clipping (0: off; the alphas' summed gradients would dominate it)",
                              default=0.0)  # fmt: skip
    bf16: bool = option("bfloat16 autocast for the teacher and the student's matmuls", default=False)
    seed: int = option("seed of initialisation, data order and dropout", default=0)
    save_every: int = option("steps between checkpoints (0: only at the end)", default=0)
    keep_last: int = option("checkpoints kept", default=2)
    log_every: int = option("steps between metric lines", default=10)
    text_column: str | None = option("file tasks: column with the text", default=None)
    text_pair_column: str | None = option("file tasks: column with the second text", default=None)
    label_column: str | None = option("file tasks: column with the label", default=None)
    export: bool = option("also write model.onnx (int8 with 8-bit activations) for lvbert predict --runtime onnx, "
                          "when the deploy extra is installed", default=True)  # fmt: skip
    device: str = option("auto, cpu, cuda or cuda:N", default="auto")
    progress: bool = option("progress bar", default=True)
    overwrite: bool = option("replace an existing --out folder (its old contents are removed first)", default=False)

    def __post_init__(self) -> None:
        for name in ("model", "task", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")
        check_bits(self.weight_bits, self.act_bits or None)
        if self.init not in INIT_METHODS:
            raise LvBertError(f"--init must be {' or '.join(INIT_METHODS)}, got {self.init!r}")
        for name in ("epochs", "batch_size", "calib_batches", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise LvBertError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("weight_percentile", "act_percentile"):
            if not 50 < getattr(self, name) <= 100:
                raise LvBertError(f"--{name.replace('_', '-')} must be in (50, 100], got {getattr(self, name)}")
        if min(self.gold_weight, self.hidden_weight, self.attention_weight) < 0:
            raise LvBertError("--gold-weight, --hidden-weight and --attention-weight must be >= 0")
        check_rates(self, "lr", "weight_alpha_lr", "act_alpha_lr")
        check_non_negative(self, "weight_decay", "clip_norm", "save_every")

    def inputs(self) -> dict:
        """The paths this run reads: its --out may be none of them."""
        return {"--model": self.model, "--teacher": self.teacher, "--data-dir": self.data_dir}


def _export(model, out: Path, calib: list[dict], dev: dict, pad: int) -> dict:
    """``model.onnx`` and its agreement with the fake-quant model on the first dev split (or why not)."""

    try:
        require_deploy()
    except LvBertError as e:
        print(f"no ONNX export: {e}")
        return {"skipped": str(e)}
    return export_checked(model, out, [{k: v.cpu() for k, v in b.items()} for b in calib], next(iter(dev.values())), pad)


def quantize(cfg: QuantizeConfig, resume: bool = False) -> Path:
    """Quantization-aware training as configured (module docstring); returns the output folder."""

    check_model_weights(cfg.model, "--model")
    if cfg.teacher:
        check_model_weights(cfg.teacher, "--teacher")
    out = check_run_output(cfg.out, cfg.inputs(), cfg.overwrite, resume)
    model_dir = Path(cfg.model)
    student = load_finetuned(model_dir)
    if getattr(student.config, "quantization", None):
        raise LvBertError(f"{model_dir} is already quantized; give the full-precision fine-tuned model")
    tokenizer = load_model_tokenizer(model_dir, student.config.vocab_size)
    task, data_dir = task_for_model(cfg.task, cfg.data_dir, student.config, model_dir, cfg.text_column, cfg.text_pair_column,
                                     cfg.label_column)
    teacher_dir = Path(cfg.teacher or cfg.model)
    teacher = load_teacher(teacher_dir, task_head=True) if cfg.kd else None
    if teacher is not None:
        check_teacher_vocab(teacher_dir, tokenizer, f"the model in {model_dir}")
        if teacher.model.config.num_labels != student.config.num_labels:
            raise LvBertError(f"the teacher in {teacher_dir} has {teacher.model.config.num_labels} outputs, the model "
                              f"{student.config.num_labels}")  # fmt: skip
    max_len = resolve_max_seq_len(cfg.max_seq_len, student.config.max_position_embeddings)
    train, dev = encode_task(task, data_dir, tokenizer, max_len, task.both_orders)
    spec = QuantSpec(cfg.weight_bits, cfg.act_bits or None, cfg.grad_scale)
    identity = {"kind": "quantize", "task": task.name, "model": str(model_dir), "spec": spec.to_dict(), "kd": cfg.kd}
    prepare_run_dir(out, resume, identity)
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out, asdict(cfg), identity)
    device = pick_device(cfg.device)
    pad = tokenizer.pad_token_id or 0

    fp32_dev = evaluate_splits(student.to(device), task, dev, 128, pad)
    torch.manual_seed(cfg.seed)
    quantize_model(student, spec)
    init_weight_alphas(student, cfg.init, cfg.weight_percentile)
    batches = IndexedBatches(train, cfg.batch_size, cfg.seed, pad)
    calib = [{k: v.to(device) for k, v in batches(i).items() if k != "labels"} for i in range(cfg.calib_batches)]
    if spec.act_bits:
        calibrate_activations(student, calib, cfg.init, cfg.act_percentile)
    ptq_dev = evaluate_splits(student, task, dev, 128, pad)
    loss = None
    if teacher is not None:
        alignment = align(slot_pair_layers(student.config.arch), teacher.layers)
        loss = DistillLoss(alignment, student.config.hidden_size, teacher.hidden_size,
                           "none" if student.config.hidden_size == teacher.hidden_size else "shared")  # fmt: skip
        loss.weights.update(hidden=cfg.hidden_weight, attention=cfg.attention_weight)
        teacher.to(device)
    model = DistillModel(student, loss if loss is not None else torch.nn.Identity(), teacher).to(device)
    n_w = sum(1 for _ in quantizers(student, "weight"))
    n_a = sum(1 for _ in quantizers(student, "act"))
    print(f"quantize ({task.name}): {student.config.arch}, {num_parameters(student.lvbert):,} parameters; weights "
          f"{spec.weight_bits} bits ({n_w} tensors), activations {spec.act_bits or 'fp32'} ({n_a} quantizers); "
          f"{'KD from ' + str(teacher_dir) if cfg.kd else 'labels only (no KD)'}; {len(train)} train, {cfg.epochs} "
          f"epochs; dev score fp32 {task.score({**fp32_dev}):.4f}, quantized before training {task.score(ptq_dev):.4f}")  # fmt: skip

    steps = batches.steps(cfg.epochs)
    alphas_w = [q.alpha for _, q in quantizers(student, "weight")]
    alphas_a = [q.alpha for _, q in quantizers(student, "act")]
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, eps=1e-8, extra_groups=[
        {"params": alphas_w, "lr": cfg.weight_alpha_lr, "weight_decay": 2e-5},
        {"params": alphas_a, "lr": cfg.act_alpha_lr, "weight_decay": 1e-4}])  # fmt: skip
    scheduler = linear_schedule(optimizer, 0, steps)
    evals_file = out / "evals.json"
    history = json.loads(evals_file.read_text()) if resume and evals_file.exists() else []

    def measure(m) -> tuple[dict, dict]:
        results = evaluate_splits(m.student, task, dev, 128, pad, cfg.bf16)
        score = task.score(results)
        return {"score": score, "dev": results}, dev_logs(results, score)

    evaluate = BestEpoch(measure, lambda m: save_model_dir(m.student, tokenizer, out / "best"), batches.per_epoch,
                         history, record=lambda: atomic_write_json(evals_file, history))  # fmt: skip

    loop = LoopConfig(out_dir=str(out / "train"), max_steps=steps, clip_norm=cfg.clip_norm, bf16=cfg.bf16,
                      log_every=cfg.log_every, save_every=cfg.save_every, keep_last=cfg.keep_last,
                      eval_every=batches.per_epoch, seed=cfg.seed, progress=cfg.progress, tensorboard=False,
                      save_final=False)  # fmt: skip  # the best epoch is kept by evaluate()
    t0 = time.perf_counter()
    train_loop(model, kdlsq_objective(cfg.kd, cfg.gold_weight, task.is_regression), batches, optimizer, scheduler, loop,
               evaluate=evaluate, resume=resume)  # fmt: skip
    shutil.rmtree(out / "train" / "checkpoints", ignore_errors=True)  # finished: nothing left to resume
    top = evaluate.top()
    best = load_finetuned(out / "best")
    promote_best(out)
    sizes = save_packed(best, out / PACKED_FILE)
    sizes["fp32_file_bytes"] = (model_dir / "model.safetensors").stat().st_size
    run = {"seed": cfg.seed, "best_step": top["step"], "best_epoch": top["epoch"], "score": top["score"],
           "dev": top["dev"], "history": history, "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    results = {"task": task.to_dict(), "model": str(model_dir), "teacher": str(teacher_dir) if cfg.kd else None,
               "data_dir": str(data_dir), "config": asdict(cfg), "quantization": spec.to_dict(),
               "num_train": len(train), "fp32_dev": fp32_dev, "fp32_score": task.score(fp32_dev),
               "before_training_dev": ptq_dev, "before_training_score": task.score(ptq_dev), "sizes": sizes,
               "best_seed": cfg.seed, "best_step": top["step"], "summary": summarise([run]), "runs": [run]}  # fmt: skip
    results["onnx"] = _export(best, out, calib, dev, pad) if cfg.export else {"skipped": "--no-export"}
    atomic_write_json(out / "results.json", results)
    fix_permissions(out)
    print(f"{task.name}: dev score {top['score']:.4f} (fp32 {results['fp32_score']:.4f}) at epoch {top['epoch']}; "
          f"{spec.weight_bits}-bit weights packed in {out / PACKED_FILE} ({sizes['file_bytes']:,} bytes; KDLSQ's "
          f"compression ratio {sizes['kdlsq_ratio']}x)")  # fmt: skip
    return out
