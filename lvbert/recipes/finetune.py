"""Recipe: fine-tune a pre-trained LV-BERT model on a GLUE, demo or file task (the official recipe by default).

Recipe (the official LV-BERT / ELECTRA fine-tuning): token-0 head with dropout 0.1, AdamW
with layer-wise LR decay 0.8 per pair of slots, LR 3e-4 for hidden size <= 384 (small,
medium) else 1e-4 (base), batch 32, 3 epochs (10 for RTE and STS-B), 10% linear warm-up
then linear decay, weight decay 0.01; MRPC, QQP and STS-B also train on the swapped
sentence order. The dev set is scored after every epoch and the best epoch is kept.

Flat stages: resolve the config, read and check every input (nothing is written before
that), then per seed train with the one loop, and finally move the staged output folder
into place. The components come from :mod:`lvbert.tasks` (reading, encoding, prediction)
and :mod:`lvbert.model_dir` (loading the model folder):

    OUT/config.json, model.safetensors, tokenizer files   best checkpoint over all seeds
    OUT/results.json                                      config, per-seed results, median/min/max

Resume: finished seeds are kept in the hidden folder ``.OUT.partial`` beside ``OUT`` (with the
best model so far), and the running seed checkpoints there after every epoch; ``--resume``
re-runs only the seeds that did not finish, the interrupted one from its last checkpoint, so the
result equals an uninterrupted run's. A resume with other settings is refused.

``task="glue"`` runs every GLUE task found under ``data_dir`` into ``OUT/<task>`` and writes
``OUT/results.json`` with one table.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.model_dir import load_classifier, load_model_config, load_model_tokenizer, save_model_dir
from lvbert.objectives import classification_objective
from lvbert.options import option
from lvbert.tasks import DEMO_TASKS, Task, demo_data_dir, get_task, glue_tasks_in
from lvbert.tasks.encoding import IndexedBatches, encode_task, evaluate_splits, resolve_max_seq_len
from lvbert.tasks.hub import hub_glue_task
from lvbert.tasks.metrics import summarise
from lvbert.training.distributed import check_device, pick_device
from lvbert.training.loop import train_loop
from lvbert.training.optim import build_optimizer, linear_schedule
from lvbert.training.run import finetune_lr
from lvbert.training.seeds import (
    BestEpoch,
    check_seeds_out,
    dev_logs,
    examples_seen,
    finish_stage,
    finished_run,
    run_seeds,
    seed_loop_config,
)
from lvbert.utils import atomic_write_json

# ============================================================================ configuration


@dataclass
class FinetuneConfig:
    """Everything ``lvbert finetune`` takes; ``None`` hyper-parameters are resolved per task and model by :meth:`resolve`."""

    model: str = option("model folder (Hugging Face files + tokenizer): a pre-trained or fine-tuned lvbert model",
                        default=None)  # fmt: skip
    task: str = option("a GLUE task (cola sst2 mrpc stsb qqp mnli qnli rte wnli), glue, a demo task (polarity "
                       "uncertainty bbc-topic), squad or squad2 (with --train-file, --dev-file), or your own name "
                       "with --text-column for CSV/TSV/JSONL files",
                       default=None)  # fmt: skip
    data_dir: str | None = option("the task's folder (e.g. glue/SST-2, or a DatasetDict.save_to_disk folder), the GLUE "
                                  "root for --task glue; demo tasks default to the demo cache, GLUE and SQuAD "
                                  "to the Hugging Face hub", default=None)  # fmt: skip
    dataset: str | None = option("GLUE / SQuAD from another hub dataset: NAME[:CONFIG] or a local folder in a hub "
                                 "repository's layout (default nyu-mll/glue, rajpurkar/squad, rajpurkar/squad_v2 "
                                 "when no --data-dir is given)", default=None)  # fmt: skip
    out: str = option("output folder: the best model, its tokenizer, results.json", default=None)
    lr: float | None = option("peak learning rate (default 3e-4 for hidden <= 384, else 1e-4)", default=None)
    layer_decay: float | None = option("LR factor per pair of slots going down (1 or none: off)", default=0.8)
    batch_size: int = option("training batch size", default=32)
    epochs: int | None = option("epochs (default: the task's, 3; 10 for RTE and STS-B)", default=None)
    warmup: float = option("warm-up fraction of the steps", default=0.1)
    weight_decay: float = option("AdamW weight decay", default=0.01)
    dropout: float | None = option("hidden and attention dropout (default: the model's config, 0.1 for lvbert's "
                                   "pre-trained models)", default=None)  # fmt: skip
    max_seq_len: int | None = option("longer inputs are truncated with a warning (default 128, capped at the "
                                     "model's positions)", default=None)  # fmt: skip
    seeds: int = option("runs with seeds --seed, --seed+1, ...; reports median, min, max", default=1)
    seed: int = option("first seed", default=0)
    bf16: bool = option("bfloat16 autocast for training and evaluation", default=False)
    both_orders: bool | None = option("also train on swapped sentence pairs (default: on for MRPC, QQP, STS-B)",
                                      default=None)  # fmt: skip
    eval_batch_size: int = option("evaluation batch size", default=128)
    max_steps: int | None = option("stop each run after this many steps (quick checks)", default=None)
    progress: bool = option("progress bar", default=True)
    device: str = option("auto (CUDA when available), cpu, cuda or cuda:N", default="auto")
    text_column: str | None = option("file tasks: column (or JSON key) with the text", default=None)
    text_pair_column: str | None = option("file tasks: column with the second text of a pair", default=None)
    label_column: str | None = option("file tasks: column with the label (default 'label')", default=None)
    labels: list[str] | None = option("file tasks: class names in id order (default: the train labels, sorted)",
                                      default=None)  # fmt: skip
    regression: bool = option("file tasks: the label is a real number", default=False)
    train_file: str | None = option("squad / squad2: the training SQuAD JSON file", default=None)
    dev_file: str | None = option("squad / squad2: the dev SQuAD JSON file", default=None)
    overwrite: bool = option("replace an existing --out (its old contents are removed)", default=False)

    def __post_init__(self) -> None:
        positive = {"batch_size": self.batch_size, "max_seq_len": self.max_seq_len or 1, "seeds": self.seeds,
                    "eval_batch_size": self.eval_batch_size}  # fmt: skip
        for name, value in positive.items():
            if int(value) < 1:
                raise LvBertError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.epochs is not None and self.epochs < 1:
            raise LvBertError(f"--epochs must be at least 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise LvBertError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.lr is not None and not self.lr > 0:
            raise LvBertError(f"--lr must be positive, got {self.lr}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise LvBertError(f"--layer-decay must be in (0, 1], got {self.layer_decay}")
        if self.layer_decay == 1:
            self.layer_decay = None  # a factor of 1 per pair is no decay
        if not 0 <= self.warmup < 1:
            raise LvBertError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.weight_decay < 0:
            raise LvBertError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise LvBertError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.labels is not None:
            self.labels = [str(x).strip() for x in self.labels]
        check_device(self.device)

    def check_required(self) -> None:
        for name in ("model", "task", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name.replace('_', '-')} is required")

    def hyper_parameters(self) -> dict:
        """The training settings (what ``results.json`` records as ``config``)."""
        skip = {"model", "task", "data_dir", "out", "text_column", "text_pair_column", "label_column", "labels",
                "regression", "train_file", "dev_file", "overwrite", "dataset"}  # fmt: skip
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}

    def resolve(self, task: Task, hidden_size: int, max_positions: int) -> "FinetuneConfig":
        """Fill the per-task and per-model defaults (a copy; ``self`` is unchanged)."""
        return dataclasses.replace(
            self,
            lr=self.lr if self.lr is not None else finetune_lr(hidden_size, 1e-4),
            epochs=self.epochs if self.epochs is not None else task.epochs,
            both_orders=task.both_orders if self.both_orders is None else self.both_orders,
            max_seq_len=resolve_max_seq_len(self.max_seq_len, max_positions),
        )


# ============================================================================ one seed


def _train_one_seed(task, model_dir, tokenizer, train, dev, cfg, seed, stage: Path, best: dict, history: list,
                    record) -> dict:  # fmt: skip
    """Fine-tune once (from the seed's last checkpoint in ``stage`` when there is one); saves the model
    into ``stage / "best"`` whenever it beats ``best["score"]`` and calls ``record()`` after every
    evaluation, so that ``history`` (this seed's evaluations, restored on resume) and ``best`` survive a kill."""
    pad_id = tokenizer.pad_token_id or 0
    batches = IndexedBatches(train, cfg.batch_size, seed, pad_id)
    steps_per_epoch = batches.per_epoch
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    model = load_classifier(model_dir, task.labels, seed, cfg.dropout)
    model.to(pick_device(cfg.device))  # the loop trains where the model is
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, layer_decay=cfg.layer_decay, num_slots=model.config.num_slots)
    scheduler = linear_schedule(optimizer, round(cfg.warmup * total), total)

    def measure(model) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        results = evaluate_splits(model, task, dev, cfg.eval_batch_size, pad_id, cfg.bf16)
        score = task.score(results)
        return {"score": score, "dev": results, "eval_seconds": round(time.perf_counter() - t0, 3)}, dev_logs(results, score)

    evaluate = BestEpoch(measure, lambda m: save_model_dir(m, tokenizer, stage / "best"), steps_per_epoch, history,
                         best, tags={"seed": seed}, record=record)  # fmt: skip

    t0 = time.perf_counter()
    try:
        train_loop(model, classification_objective, batches, optimizer, scheduler,
                   seed_loop_config(stage, seed, total, steps_per_epoch, cfg), evaluate=evaluate, resume=True)  # fmt: skip
    except FloatingPointError as e:  # a diverged run: the user can fix it (learning rate, fp32)
        raise LvBertError(f"{task.name}, seed {seed}: {e}") from None
    seconds = time.perf_counter() - t0 - sum(h["eval_seconds"] for h in history)
    top = evaluate.top()
    return {
        "seed": seed,
        "best_step": top["step"],
        "best_epoch": top["epoch"],
        "score": top["score"],
        "dev": top["dev"],
        "history": history,
        "steps": total,
        "train_examples_per_second": round(examples_seen(len(train), cfg.batch_size, total) / max(seconds, 1e-9), 2),
    }


# ============================================================================ seeds in a partial folder


# ============================================================================ one task


def finetune_task(model_dir, task: Task, data_dir, out, cfg: FinetuneConfig, model_config, tokenizer,
                  resume: bool = False) -> dict:  # fmt: skip
    """Fine-tune one task (``cfg.seeds`` runs) and write ``out``. Returns the results dict."""
    out, data_dir = Path(out), Path(data_dir)
    cfg = cfg.resolve(task, model_config.hidden_size, model_config.max_position_embeddings)
    train, dev = encode_task(task, data_dir, tokenizer, cfg.max_seq_len, cfg.both_orders)  # every input error surfaces here
    options = json.loads(json.dumps(dataclasses.asdict(cfg)))
    done = finished_run(out, options, resume, type(cfg))
    if done is not None:
        return done
    check_seeds_out(out, {"--model": model_dir, "--data-dir": data_dir}, cfg.overwrite, resume)  # the inputs are good
    print(f"finetune {task.name}: {len(train)} train, " + ", ".join(f"{len(e)} {s}" for s, e in dev.items())
          + f"; {cfg.hyper_parameters()}")  # fmt: skip

    def train_seed(seed, stage, best, history, record):
        return _train_one_seed(task, model_dir, tokenizer, train, dev, cfg, seed, stage, best, history, record)

    stage, runs, best = run_seeds(out, options, [cfg.seed + k for k in range(cfg.seeds)], resume, train_seed, type(cfg))
    results = {
        "task": task.to_dict(),
        "model": str(model_dir),
        "data_dir": str(data_dir),
        "config": cfg.hyper_parameters(),
        "options": options,
        "num_train": len(train),
        "num_dev": {s: len(e) for s, e in dev.items()},
        "best_seed": best["seed"],
        "best_step": best["step"],
        "summary": summarise(runs),
        "runs": runs,
    }
    finish_stage(stage, out, results)
    return results


# ============================================================================ tables


def format_table(results: list[dict]) -> str:
    """One row per task and dev metric: median over seeds and [min, max] when there are several seeds."""
    lines = [f"{'task':<10} {'metric':<26} {'median':>8} {'min':>8} {'max':>8} {'seeds':>5}"]
    for r in results:
        n = len(r["runs"])
        for key, s in r["summary"].items():
            if key == "score" and len(r["summary"]) == 2:  # one metric: the score repeats it
                continue
            spread = f"{100 * s['min']:>8.2f} {100 * s['max']:>8.2f}" if n > 1 else f"{'':>8} {'':>8}"
            lines.append(f"{r['task']['name']:<10} {key:<26} {100 * s['median']:>8.2f} {spread} {n:>5}")
    return "\n".join(lines)


# ============================================================================ entry points


def run_finetune(cfg: FinetuneConfig, resume: bool = False) -> dict:
    """Fine-tune as configured (see :class:`FinetuneConfig`); returns the results dict
    (for ``glue``: ``{"tasks": {name: results}}``) and prints a table."""
    cfg.check_required()
    model_config = load_model_config(cfg.model)
    tokenizer = load_model_tokenizer(cfg.model, model_config.vocab_size)
    out = Path(cfg.out)
    if cfg.task.strip().lower() == "glue":
        if cfg.data_dir is None:
            raise LvBertError("task glue needs --data-dir, the GLUE folder holding CoLA, SST-2, ...")
        found = glue_tasks_in(cfg.data_dir)
        for t, folder in found:  # check every task's files and labels before the first (long) run
            for split in ("train", *t.dev_splits):
                t.label_ids(t.read(folder, split), f"{t.name} {split}")
        check_seeds_out(out, {"--model": cfg.model, "--data-dir": cfg.data_dir}, cfg.overwrite, resume)  # the inputs are good
        all_results = {}
        for t, folder in found:
            if resume and (out / t.name / "results.json").is_file():
                all_results[t.name] = json.loads((out / t.name / "results.json").read_text(encoding="utf-8"))
                continue
            all_results[t.name] = finetune_task(cfg.model, t, folder, out / t.name, cfg, model_config, tokenizer, resume)
        table = format_table(list(all_results.values()))
        atomic_write_json(out / "results.json", {"tasks": all_results, "table": table.splitlines()})
        print(table)
        return {"tasks": all_results}
    resolved = get_task(cfg.task, cfg.data_dir, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                        label_column=cfg.label_column, labels=cfg.labels, regression=cfg.regression)  # fmt: skip
    data_dir = cfg.data_dir
    from_hub = hub_glue_task(resolved.name, cfg.dataset, data_dir)
    if from_hub is not None:
        resolved, data_dir = from_hub
    elif cfg.dataset:
        raise LvBertError(f"--dataset is for GLUE and SQuAD tasks, not {resolved.name}; give --data-dir")
    if data_dir is None:
        if resolved.name in DEMO_TASKS:
            data_dir = demo_data_dir(resolved.name)
        else:
            raise LvBertError(f"task {resolved.name} needs --data-dir (e.g. glue/{resolved.glue_dir})")
    results = finetune_task(cfg.model, resolved, data_dir, out, cfg, model_config, tokenizer, resume)
    print(format_table([results]))
    return results


def finetune(model_dir: str | Path, task: str, data_dir: str | Path | None, out: str | Path, resume: bool = False,
             **options) -> dict:  # fmt: skip
    """Fine-tune ``model_dir`` on ``task`` from Python: ``options`` are :class:`FinetuneConfig` fields.

    Args:
        model_dir: a pre-trained (or fine-tuned) lvbert model folder holding its tokenizer.
        task: ``cola sst2 mrpc stsb qqp mnli qnli rte wnli``, ``glue`` (every task folder
            under ``data_dir``), ``polarity uncertainty bbc-topic`` (demo cache when
            ``data_dir`` is None), or any name with ``text_column`` for CSV/TSV/JSONL files.
        data_dir: the task's folder (``glue/SST-2``), or the GLUE root for ``glue``.
        out: output folder: best checkpoint + tokenizer + ``results.json``.
    """
    cfg = FinetuneConfig(model=str(model_dir), task=task, data_dir=None if data_dir is None else str(data_dir),
                         out=str(out), **options)  # fmt: skip
    return run_finetune(cfg, resume=resume)
