"""Fine-tune a pre-trained LV-BERT model on a GLUE, demo or file task (the official recipe by default).

Recipe (REFERENCE.md section 8): token-0 head with dropout 0.1, AdamW with
layer-wise LR decay 0.8 per pair of slots, LR 3e-4 for hidden size <= 384 (small,
medium) else 1e-4 (base), batch 32, 3 epochs (10 for RTE and STS-B), 10% linear
warm-up then linear decay, weight decay 0.01; MRPC, QQP and STS-B also train on
the swapped sentence order. The dev set is scored after every epoch and the
best epoch's model is kept.

Flat stages: resolve the config, read and check every input (nothing is
written before that), then per seed train with the one loop, and finally move
the staged output directory into place:

    OUT/config.json, model.safetensors, tokenizer files   best checkpoint over all seeds
    OUT/results.json                                      config, per-seed results, median/min/max

``task="glue"`` runs every GLUE task found under ``data_dir`` into ``OUT/<task>``
and writes ``OUT/results.json`` with one table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lvbert.errors import LvBertError
from lvbert.objectives import classification_objective
from lvbert.tasks import DEMO_TASKS, Example, Task, demo_data_dir, get_task, glue_tasks_in
from lvbert.training.distributed import pick_device
from lvbert.training.loop import LoopConfig, train_loop
from lvbert.training.optim import build_optimizer, linear_schedule
from lvbert.utils import atomic_write_json

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")


def warn(message: str) -> None:
    print(f"lvbert: warning: {message}", file=sys.stderr)


# ============================================================================ configuration


@dataclass
class FinetuneConfig:
    """Fine-tuning hyper-parameters; ``None`` fields are resolved per task and model by :meth:`resolve`."""

    lr: float | None = None  # None: 3e-4 for hidden size <= 384 (small, medium), else 1e-4 (base)
    layer_decay: float | None = 0.8  # LR factor per pair of slots going down; None: no decay
    batch_size: int = 32
    epochs: int | None = None  # None: the task's default (3; 10 for RTE and STS-B)
    warmup: float = 0.1  # fraction of the steps with linear warm-up
    weight_decay: float = 0.01
    max_seq_len: int | None = None  # longer inputs are truncated (with a warning); None: 128 capped at the model's positions
    seeds: int = 1  # runs with seeds seed, seed+1, ...; the report gives median, min and max
    seed: int = 0
    bf16: bool = False  # bfloat16 autocast for training and evaluation
    both_orders: bool | None = None  # also train on swapped sentence pairs; None: the task's default
    eval_batch_size: int = 128
    max_steps: int | None = None  # cap on optimizer steps per run (quick checks); None: epochs decide
    progress: bool = True
    device: str = "auto"  # auto (CUDA when available), cpu, cuda

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
        if not 0 <= self.warmup < 1:
            raise LvBertError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.weight_decay < 0:
            raise LvBertError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        check_device(self.device)

    def resolve(self, task: Task, hidden_size: int, max_positions: int) -> "FinetuneConfig":
        """Fill the per-task and per-model defaults (a copy; ``self`` is unchanged)."""
        max_seq_len = resolve_max_seq_len(self.max_seq_len, max_positions)
        return dataclasses.replace(
            self,
            lr=self.lr if self.lr is not None else (3e-4 if hidden_size <= 384 else 1e-4),
            epochs=self.epochs if self.epochs is not None else task.epochs,
            both_orders=task.both_orders if self.both_orders is None else self.both_orders,
            max_seq_len=max_seq_len,
        )


def check_device(name: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise LvBertError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LvBertError(f"--device {name}: CUDA is not available on this machine")


def resolve_max_seq_len(requested: int | None, max_positions: int) -> int:
    """128 (or ``requested``) capped at the model's positions; a warning when ``requested`` is too long."""
    if requested is None:
        return min(128, max_positions)
    if requested > max_positions:
        warn(f"--max-seq-len {requested} exceeds the model's {max_positions} positions; using {max_positions}")
        return max_positions
    return requested


# ============================================================================ model and tokenizer


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' loading chatter (we report what matters ourselves)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_model_config(model_dir: str | Path):
    """The model directory's config; it must be an lvbert model."""
    import lvbert  # noqa: F401  (registers the Auto classes)
    from transformers import AutoConfig

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise LvBertError(f"{model_dir} is not a model directory (no config.json); give a pre-trained or fine-tuned lvbert model")
    with quiet_transformers():
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    if config.model_type != "lvbert":
        raise LvBertError(f"{model_dir} holds a {config.model_type!r} model; fine-tuning needs an lvbert model")
    if getattr(config, "allowed_types", None) is not None or "LvBertSupernet" in (config.architectures or []):
        raise LvBertError(
            f"{model_dir} is a supernet (every slot holds several layer types), not one model; take an arch out of it "
            f"first: lvbert supernet extract --supernet {model_dir} --arch ARCH --out DIR"
        )
    return config


def load_tokenizer(model_dir: str | Path, vocab_size: int):
    """The tokenizer saved next to the model; its vocabulary must fit the model's."""
    from lvbert.data.tokenizer import check_tokenizer_matches
    from lvbert.data.tokenizer import load_tokenizer as load_tokenizer_dir

    model_dir = Path(model_dir)
    if not any((model_dir / f).is_file() for f in TOKENIZER_FILES):
        raise LvBertError(
            f"{model_dir} has no tokenizer ({' / '.join(TOKENIZER_FILES)}); save the tokenizer next to the model"
        )
    with quiet_transformers():
        tokenizer = load_tokenizer_dir(model_dir)
    check_tokenizer_matches(tokenizer, vocab_size)
    return tokenizer


def load_classifier(model_dir: str | Path, task: Task, seed: int, labels: tuple[str, ...] | None = None):
    """The model with a sequence-classification head for ``task``; the new head is initialised from ``seed``."""
    from transformers import AutoModelForSequenceClassification

    labels = labels if labels is not None else task.labels
    kwargs = {"num_labels": 1, "problem_type": "regression"}
    if labels is not None:
        kwargs = {
            "num_labels": len(labels),
            "problem_type": "single_label_classification",
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
        }
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)  # the head's initialisation, without touching the caller's RNG
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True, ignore_mismatched_sizes=True, output_loading_info=True, **kwargs
        )
    backbone_missing = [k for k in info.get("missing_keys", []) if not k.startswith("classifier.")]
    if backbone_missing:  # training them from random would silently waste the run
        raise LvBertError(f"{model_dir} lacks {len(backbone_missing)} backbone weight(s) (e.g. {backbone_missing[0]}); "
                          "give a pre-trained lvbert model folder")  # fmt: skip
    return model


# ============================================================================ data


@dataclass
class Encoded:
    """Token ids of one split, ready for batching."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list | None  # class ids or floats; None for unlabelled test splits
    index: list[str]


def encode(tokenizer, examples: list[Example], max_len: int, where: str, swap: bool = False) -> Encoded:
    """Tokenise ``[CLS] text [SEP] (pair [SEP])``; inputs longer than ``max_len`` are truncated with a warning.

    ``swap`` encodes (pair, text) instead of (text, pair).
    """
    first = [ex.text for ex in examples]
    second = [ex.text_pair for ex in examples] if examples[0].text_pair is not None else None
    if swap and second is not None:
        first, second = second, first
    full = tokenizer(first, second, truncation=False, verbose=False)
    ids, types = full["input_ids"], full.get("token_type_ids")
    if types is None:
        types = [[0] * len(x) for x in ids]
    long = [i for i, x in enumerate(ids) if len(x) > max_len]
    if long:
        warn(f"{where}: {len(long)} of {len(ids)} inputs are longer than {max_len} tokens and were truncated "
             f"(longest {max(len(ids[i]) for i in long)})")  # fmt: skip
        cut = tokenizer([first[i] for i in long], None if second is None else [second[i] for i in long],
                        truncation=True, max_length=max_len)  # fmt: skip
        cut_types = cut.get("token_type_ids") or [[0] * len(x) for x in cut["input_ids"]]
        for j, i in enumerate(long):
            ids[i], types[i] = cut["input_ids"][j], cut_types[j]
    return Encoded(ids, types, None, [ex.index for ex in examples])


def collate(enc: Encoded, rows: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the given rows to the longest of them: input_ids, token_type_ids, attention_mask [B, T] (+ labels [B])."""
    width = max(len(enc.input_ids[i]) for i in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, i in enumerate(rows):
        n = len(enc.input_ids[i])
        ids[b, :n] = torch.tensor(enc.input_ids[i])
        types[b, :n] = torch.tensor(enc.token_type_ids[i])
        mask[b, :n] = 1
    batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
    if enc.labels is not None:
        values = [enc.labels[i] for i in rows]
        batch["labels"] = torch.tensor(values, dtype=torch.float if isinstance(values[0], float) else torch.long)
    return batch


def train_batches(enc: Encoded, batch_size: int, epochs: int, seed: int, pad_id: int):
    """Shuffled batches for ``epochs`` epochs (the last batch of an epoch may be smaller)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(enc.input_ids)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).tolist()
        for start in range(0, n, batch_size):
            yield collate(enc, order[start : start + batch_size], pad_id)


def concat(a: Encoded, b: Encoded) -> Encoded:
    return Encoded(a.input_ids + b.input_ids, a.token_type_ids + b.token_type_ids,
                   None if a.labels is None else a.labels + b.labels, a.index + b.index)  # fmt: skip


# ============================================================================ objective and evaluation


@torch.no_grad()
def predict_logits(model, enc: Encoded, batch_size: int, pad_id: int, bf16: bool = False) -> torch.Tensor:
    """Logits [N, num_labels] (float32, CPU) in the split's order; the model is left in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    # Batches of similar length waste less padding; results are put back in file order.
    order = sorted(range(len(enc.input_ids)), key=lambda i: len(enc.input_ids[i]))
    out = torch.empty(len(order), model.config.num_labels)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate(enc, rows, pad_id).items() if k != "labels"}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**batch).logits
        out[rows] = logits.float().cpu()
    return out


def logits_to_predictions(task: Task, logits: torch.Tensor) -> list:
    """Class ids (argmax) or real values (regression)."""
    return logits[:, 0].tolist() if task.is_regression else logits.argmax(-1).tolist()


def evaluate_splits(model, task: Task, dev: dict[str, Encoded], cfg: FinetuneConfig, pad_id: int) -> dict:
    """{split: {metric: value}} over the task's dev splits."""
    results = {}
    for split, enc in dev.items():
        preds = logits_to_predictions(task, predict_logits(model, enc, cfg.eval_batch_size, pad_id, cfg.bf16))
        results[split] = task.evaluate(preds, enc.labels)
    return results


# ============================================================================ one task


def read_task_data(task: Task, data_dir: Path, tokenizer, cfg: FinetuneConfig) -> tuple[Encoded, dict[str, Encoded]]:
    """Read, check and encode the train split (both orders if asked) and the dev splits."""
    train_ex = task.read(data_dir, "train")
    train = encode(tokenizer, train_ex, cfg.max_seq_len, f"{task.name} train")
    train.labels = task.label_ids(train_ex, f"{task.name} train")
    if cfg.both_orders and task.is_pair:
        swapped = encode(tokenizer, train_ex, cfg.max_seq_len, f"{task.name} train (swapped)", swap=True)
        swapped.labels = train.labels
        train = concat(train, swapped)
    dev = {}
    for split in task.dev_splits:
        ex = task.read(data_dir, split)
        dev[split] = encode(tokenizer, ex, cfg.max_seq_len, f"{task.name} {split}")
        dev[split].labels = task.label_ids(ex, f"{task.name} {split}")
    return train, dev


def save_model(model, tokenizer, dest: Path) -> None:
    """Save model + tokenizer into ``dest`` via a temporary sibling folder and a rename."""
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp"))
    try:
        with quiet_transformers():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _train_one_seed(task, model_dir, tokenizer, train, dev, cfg, seed, stage: Path, best: dict) -> dict:
    """Fine-tune once; saves the model into ``stage / "best"`` whenever it beats ``best["score"]``."""
    pad_id = tokenizer.pad_token_id or 0
    steps_per_epoch = math.ceil(len(train.input_ids) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    model = load_classifier(model_dir, task, seed)
    model.to(pick_device(cfg.device))  # the loop trains where the model is
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, layer_decay=cfg.layer_decay, num_slots=model.config.num_slots)
    scheduler = linear_schedule(optimizer, round(cfg.warmup * total), total)
    history: list[dict] = []

    def evaluate(model, step: int) -> dict:
        t0 = time.perf_counter()
        results = evaluate_splits(model, task, dev, cfg, pad_id)
        score = task.score(results)
        if best.get("score") is None or score > best["score"]:
            best.update(score=score, seed=seed, step=step)
            save_model(model, tokenizer, stage / "best")
        history.append({"step": step, "epoch": round(step / steps_per_epoch, 3), "score": score, "dev": results,
                        "eval_seconds": round(time.perf_counter() - t0, 3)})  # fmt: skip
        return {f"{s}/{m}": v for s, r in results.items() for m, v in r.items()} | {"score": score}

    log_dir = stage / "logs" / f"seed{seed}"
    loop_cfg = LoopConfig(
        out_dir=str(log_dir),
        max_steps=total,
        bf16=cfg.bf16,
        eval_every=steps_per_epoch,
        save_every=0,
        keep_last=1,
        save_final=False,  # the best epoch is kept by evaluate(); no resumable checkpoint needed
        seed=seed,
        progress=cfg.progress,
        log_every=max(1, min(50, steps_per_epoch)),
        tensorboard=False,
    )
    batches = train_batches(train, cfg.batch_size, cfg.epochs, seed, pad_id)
    t0 = time.perf_counter()
    try:
        train_loop(model, classification_objective, batches, optimizer, scheduler, loop_cfg, evaluate=evaluate)
    except FloatingPointError as e:  # a diverged run: the user can fix it (learning rate, fp32)
        raise LvBertError(f"{task.name}, seed {seed}: {e}") from None
    seconds = time.perf_counter() - t0 - sum(h["eval_seconds"] for h in history)
    top = max(history, key=lambda h: h["score"])
    return {
        "seed": seed,
        "best_step": top["step"],
        "best_epoch": top["epoch"],
        "score": top["score"],
        "dev": top["dev"],
        "history": history,
        "steps": total,
        "train_examples_per_second": round(_examples_seen(len(train.input_ids), cfg.batch_size, total) / max(seconds, 1e-9), 2),
    }


def _examples_seen(n: int, batch_size: int, steps: int) -> int:
    """Training examples in the first ``steps`` batches of :func:`train_batches`."""
    per_epoch = math.ceil(n / batch_size)
    return steps // per_epoch * n + min(steps % per_epoch * batch_size, n)


def summarise(runs: list[dict]) -> dict:
    """{"split/metric": {"median", "min", "max"}} over the runs' best dev results (plus "score")."""
    keys = [f"{s}/{m}" for s, r in runs[0]["dev"].items() for m in r] + ["score"]

    def value(run, key):
        if key == "score":
            return run["score"]
        s, m = key.split("/")
        return run["dev"][s][m]

    out = {}
    for key in keys:
        vals = [value(r, key) for r in runs]
        out[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


def _replace_dir(stage: Path, out: Path) -> None:
    """Move the finished staging folder to ``out`` (an older result there is replaced)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(old)
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise LvBertError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "results.json").is_file():
        raise LvBertError(f"--out {out} is a non-empty directory without an earlier results.json; choose a new folder")


def finetune_task(model_dir, task: Task, data_dir, out, cfg: FinetuneConfig, model_config, tokenizer) -> dict:
    """Fine-tune one task (``cfg.seeds`` runs) and write ``out``. Returns the results dict."""
    out, data_dir = Path(out), Path(data_dir)
    _check_out(out)
    cfg = cfg.resolve(task, model_config.hidden_size, model_config.max_position_embeddings)
    train, dev = read_task_data(task, data_dir, tokenizer, cfg)  # every input error surfaces here
    print(f"finetune {task.name}: {len(train.input_ids)} train, "
          + ", ".join(f"{len(e.input_ids)} {s}" for s, e in dev.items())
          + f"; {dataclasses.asdict(cfg)}")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp"))
    try:
        best: dict = {}
        runs = [
            _train_one_seed(task, model_dir, tokenizer, train, dev, cfg, cfg.seed + k, stage, best)
            for k in range(cfg.seeds)
        ]
        results = {
            "task": task.to_dict(),
            "model": str(model_dir),
            "data_dir": str(data_dir),
            "config": dataclasses.asdict(cfg),
            "num_train": len(train.input_ids),
            "num_dev": {s: len(e.input_ids) for s, e in dev.items()},
            "best_seed": best["seed"],
            "best_step": best["step"],
            "summary": summarise(runs),
            "runs": runs,
        }
        for f in (stage / "best").iterdir():  # the best checkpoint at the top of OUT
            f.rename(stage / f.name)
        (stage / "best").rmdir()
        atomic_write_json(stage / "results.json", results)
        _replace_dir(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
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


# ============================================================================ entry point


def finetune(
    model_dir: str | Path,
    task: str,
    data_dir: str | Path | None,
    out: str | Path,
    lr: float | None = None,
    layer_decay: float | None = 0.8,
    batch_size: int = 32,
    epochs: int | None = None,
    warmup: float = 0.1,
    weight_decay: float = 0.01,
    max_seq_len: int | None = None,
    seeds: int = 1,
    seed: int = 0,
    bf16: bool = False,
    both_orders: bool | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    device: str = "auto",
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    labels: list[str] | None = None,
    regression: bool = False,
) -> dict:
    """Fine-tune ``model_dir`` on ``task`` (a GLUE name, ``glue``, a demo task or a file task).

    Args:
        model_dir: a pre-trained (or fine-tuned) lvbert model folder holding its tokenizer.
        task: ``cola sst2 mrpc stsb qqp mnli qnli rte wnli``, ``glue`` (every task folder
            under ``data_dir``), ``polarity uncertainty bbc-topic`` (demo cache when
            ``data_dir`` is None), or any name with ``text_column`` for CSV/TSV/JSONL files.
        data_dir: the task's folder (``glue/SST-2``), or the GLUE root for ``glue``.
        out: output folder: best checkpoint + tokenizer + ``results.json``.
        The other arguments are :class:`FinetuneConfig` fields and the file-task columns.

    Returns the results dict (for ``glue``: ``{"tasks": {name: results}}``); prints a table.
    """
    cfg = FinetuneConfig(lr=lr, layer_decay=layer_decay, batch_size=batch_size, epochs=epochs, warmup=warmup,
                         weight_decay=weight_decay, max_seq_len=max_seq_len, seeds=seeds, seed=seed, bf16=bf16,
                         both_orders=both_orders, max_steps=max_steps, progress=progress, device=device)  # fmt: skip
    model_config = load_model_config(model_dir)
    tokenizer = load_tokenizer(model_dir, model_config.vocab_size)
    out = Path(out)
    if task.strip().lower() == "glue":
        if data_dir is None:
            raise LvBertError("task glue needs --data-dir, the GLUE folder holding CoLA, SST-2, ...")
        _check_out(out)
        found = glue_tasks_in(data_dir)
        for t, folder in found:  # check every task's files and labels before the first (long) run
            for split in ("train", *t.dev_splits):
                t.label_ids(t.read(folder, split), f"{t.name} {split}")
        all_results = {}
        for t, folder in found:
            all_results[t.name] = finetune_task(model_dir, t, folder, out / t.name, cfg, model_config, tokenizer)
        table = format_table(list(all_results.values()))
        atomic_write_json(out / "results.json", {"tasks": all_results, "table": table.splitlines()})
        print(table)
        return {"tasks": all_results}
    resolved = get_task(task, data_dir, text_column=text_column, text_pair_column=text_pair_column,
                        label_column=label_column, labels=labels, regression=regression)  # fmt: skip
    if data_dir is None:
        if resolved.name in DEMO_TASKS:
            data_dir = demo_data_dir(resolved.name)
        else:
            raise LvBertError(f"task {resolved.name} needs --data-dir (e.g. glue/{resolved.glue_dir})")
    results = finetune_task(model_dir, resolved, data_dir, out, cfg, model_config, tokenizer)
    print(format_table([results]))
    return results
