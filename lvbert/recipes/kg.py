"""Recipe: KG-BERT knowledge-graph completion with any lvbert encoder (Yao et al. 2019).

- ``task="triple"`` / ``"link"``: KG-BERT(a). ``[CLS] head [SEP] relation [SEP] tail [SEP]``
  (segments 0/1/0) classified true/false by the token-0 head; trained on the train triples
  and corrupted ones (head or tail replaced, filtered: 1 negative per positive for triple
  classification, 5 on one side for link prediction, the official code's counts).
- ``task="relation"``: KG-BERT(b). ``[CLS] head [SEP] tail [SEP]`` classified into the relations.

Evaluation (:func:`evaluate_kg`, scoring in :mod:`lvbert.tasks.kg`): triple-classification accuracy
(on the split's own labels when it has them, else against seeded, filtered negatives); link
prediction ranks the true head and tail among every entity, raw and filtered (the score is the
logit of "true", as the official code), MR, MRR, Hits@1/3/10; relation prediction ranks the gold
relation among all, raw and filtered. Inputs are assembled from entity and relation pieces
tokenised once, sorted by length and scored in large batches (bf16 optional).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import AutoModelForSequenceClassification

from lvbert.errors import LvBertError
from lvbert.model_dir import (
    load_classifier,
    load_model_config,
    load_model_tokenizer,
    quiet_transformers,
    save_model_dir,
)
from lvbert.objectives import classification_objective
from lvbert.options import option
from lvbert.tasks.encoding import IndexedBatches
from lvbert.tasks.kg import (
    KG_FILE,
    TIES,
    Inputs,
    KnowledgeGraph,
    clean_name,
    evaluate_model,
    format_results,
    graph_fingerprint,
    known_triples,
    load_graph,
    negatives,
    read_kg_meta,
    read_triples,
    score_inputs,
)
from lvbert.training.distributed import pick_device
from lvbert.training.loop import LoopConfig, train_loop
from lvbert.training.optim import build_optimizer, linear_schedule
from lvbert.training.run import finetune_lr, prepare_run_dir, write_run_config
from lvbert.training.seeds import BestEpoch, promote_best
from lvbert.utils import atomic_write_json, atomic_write_text, check_output_dir, check_output_file, fix_permissions

TASKS = ("triple", "link", "relation")
DEFAULT_EPOCHS = {"triple": 3, "link": 5, "relation": 20}  # KG-BERT's README
DEFAULT_NEGATIVES = {"triple": 1, "link": 5, "relation": 0}
FILTERS = ("all", "split")


@dataclass
class KgTrainConfig:
    model: str = option("a pre-trained lvbert model folder (any arch)", default=None)
    dataset: str = option("a demo graph (umls, kinships, nations) or a folder in KG-BERT's or the plain triples layout",
                          default=None)  # fmt: skip
    task: str = option("triple (classification), link (prediction) or relation (prediction, KG-BERT(b))", default="link")
    out: str = option("output folder: the KG model, kg.json, results.json", default=None)
    epochs: int | None = option("epochs (default: triple 3, link 5, relation 20, as KG-BERT)", default=None)
    negatives: int | None = option("corrupted triples per positive (default: triple 1, link 5)", default=None)
    negative_filter: str = option("corruptions are refused when they are true triples of: all (every split) or split "
                                  "(the same split only, the original code)", default="all")  # fmt: skip
    lr: float | None = option("peak learning rate (default 3e-4 for hidden <= 384, else 5e-5 as KG-BERT)", default=None)
    batch_size: int = option("training batch size", default=32)
    warmup: float = option("warm-up fraction of the steps", default=0.1)
    weight_decay: float = option("AdamW weight decay", default=0.01)
    max_seq_len: int | None = option("tokens per input (default: the graph's longest, at most 128)", default=None)
    long_text: bool = option("use entity2textlong.txt when the graph has it", default=False)
    eval_split: str = option("split scored after every epoch (triple classification) to keep the best epoch",
                             default="dev")  # fmt: skip
    test: bool = option("evaluate on the test split at the end", default=True)
    max_test: int | None = option("score only the first N test triples (large graphs; not the full protocol)",
                                  default=None)  # fmt: skip
    eval_batch_size: int = option("inputs per forward pass when scoring", default=1024)
    bf16: bool = option("bfloat16 autocast", default=False)
    seed: int = option("seed of the negatives, the data order and the head", default=0)
    device: str = option("auto, cpu, cuda", default="auto")
    progress: bool = option("progress bars", default=True)
    overwrite: bool = option("replace the contents of an existing non-empty --out folder", default=False)

    def __post_init__(self) -> None:
        for name in ("model", "dataset", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")
        _check_common(self)
        if self.lr is not None and not self.lr > 0:
            raise LvBertError(f"--lr must be positive, got {self.lr}")
        if self.batch_size < 1:
            raise LvBertError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0 <= self.warmup <= 1:
            raise LvBertError(f"--warmup must be a fraction between 0 and 1, got {self.warmup}")
        if self.max_seq_len is not None and self.max_seq_len < 8:
            raise LvBertError(f"--max-seq-len must be at least 8, got {self.max_seq_len}")
        if self.negative_filter not in FILTERS:
            raise LvBertError(f"--negative-filter must be all or split, got {self.negative_filter!r}")
        if self.epochs is not None and self.epochs < 1:
            raise LvBertError(f"--epochs must be at least 1, got {self.epochs}")
        if self.negatives is not None and self.negatives < (0 if self.task == "relation" else 1):
            raise LvBertError(f"--negatives must be at least 1 for task {self.task}, got {self.negatives}")


@dataclass
class KgEvalConfig:
    model: str = option("a KG model folder (lvbert kg train --out)", default=None)
    dataset: str = option("the graph it was trained on (a demo graph or a folder)", default=None)
    split: str = option("dev or test", default="test")
    max_test: int | None = option("score only the first N triples (not the full protocol)", default=None)
    eval_batch_size: int = option("inputs per forward pass", default=1024)
    ties: str = option("ranks of tied scores: realistic (the mean), optimistic (KG-BERT's code) or pessimistic",
                       default="realistic")  # fmt: skip
    bf16: bool = option("bfloat16 autocast", default=False)
    seed: int = option("seed of the negatives of triple classification (graphs without labels)", default=0)
    device: str = option("auto, cpu, cuda", default="auto")
    progress: bool = option("progress bar", default=True)
    json: bool = option("print one JSON object", default=False)

    def __post_init__(self) -> None:
        for name in ("model", "dataset"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")
        if self.split not in ("dev", "test", "train"):
            raise LvBertError(f"--split must be dev, test or train, got {self.split!r}")

        if self.ties not in TIES:
            raise LvBertError(f"--ties must be one of {', '.join(TIES)}, got {self.ties!r}")
        _check_common(self)


@dataclass
class KgScoreConfig:
    model: str = option("a KG model folder (lvbert kg train --out)", default=None)
    triples: str = option("a file of head<TAB>relation<TAB>tail lines to score", default=None)
    dataset: str | None = option("the graph whose entity and relation texts to use (default: the names, cleaned)",
                                 default=None)  # fmt: skip
    out: str | None = option("write the scores here (default: stdout)", default=None)
    eval_batch_size: int = option("inputs per forward pass", default=1024)
    device: str = option("auto, cpu, cuda", default="auto")
    overwrite: bool = option("replace an existing --out file", default=False)
    allow_unknown: bool = option("skip triples whose entity or relation --dataset lacks (a warning each) instead of failing",
                                 default=False)  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("model", "triples"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")
        _check_common(self)


def _check_common(cfg) -> None:
    if hasattr(cfg, "task") and cfg.task not in TASKS:
        raise LvBertError(f"--task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    if getattr(cfg, "max_test", None) is not None and cfg.max_test < 1:
        raise LvBertError(f"--max-test must be at least 1, got {cfg.max_test}")
    if cfg.eval_batch_size < 1:
        raise LvBertError("--eval-batch-size must be at least 1")


# ============================================================================ training


def train_kg(cfg: KgTrainConfig, resume: bool = False) -> dict:
    """Train a KG-BERT model as configured; writes ``cfg.out`` and returns the results dict.

    The run trains in ``cfg.out`` with a checkpoint after every epoch; ``resume`` continues a killed
    run exactly (weights, optimizer, data order, and the per-epoch dev scores that pick the best epoch)."""

    inputs = {"--model": cfg.model}
    if Path(cfg.dataset).expanduser().is_dir():
        inputs["--dataset"] = cfg.dataset
    out = check_output_dir(cfg.out, inputs=inputs, overwrite=cfg.overwrite and not resume, own_run=resume)
    model_config = load_model_config(cfg.model)
    tokenizer = load_model_tokenizer(cfg.model, model_config.vocab_size)
    graph = load_graph(cfg.dataset, cfg.long_text)
    graph.check_split("train")
    epochs = cfg.epochs or DEFAULT_EPOCHS[cfg.task]
    n_neg = cfg.negatives if cfg.negatives is not None else DEFAULT_NEGATIVES[cfg.task]
    inputs = Inputs(tokenizer, graph, cfg.max_seq_len, cfg.task)
    if inputs.max_len > model_config.max_position_embeddings:
        inputs.max_len = model_config.max_position_embeddings
    positives = graph.positives("train")
    if cfg.task == "relation":
        labels = tuple(graph.relations)
        rel_id = {r: i for i, r in enumerate(graph.relations)}
        train = inputs.encoded(positives, [rel_id[r] for _, r, _ in positives])
    else:
        labels = ("0", "1")
        filt = graph.true_triples if cfg.negative_filter == "all" else set(positives)
        negs = negatives(positives, graph.entities, n_neg, cfg.seed, filt, same_side=cfg.task == "link")
        train = inputs.encoded(positives + negs, [1] * len(positives) + [0] * len(negs))
    if inputs.cut:
        print(f"lvbert: warning: {inputs.cut} training inputs were longer than {inputs.max_len} tokens and were cut",
              file=sys.stderr)  # fmt: skip
    lr = cfg.lr if cfg.lr is not None else finetune_lr(model_config.hidden_size, 5e-5)
    print(f"kg train ({cfg.task}): {graph.describe()}; {len(train):,} training inputs of <= {inputs.max_len} tokens, "
          f"{epochs} epochs, lr {lr}")  # fmt: skip
    device = pick_device(cfg.device)
    model = load_classifier(cfg.model, labels, cfg.seed).to(device)
    batches = IndexedBatches(train, cfg.batch_size, cfg.seed, inputs.pad)
    steps = batches.steps(epochs)
    optimizer = build_optimizer(model, lr, cfg.weight_decay)
    scheduler = linear_schedule(optimizer, round(cfg.warmup * steps), steps)
    kg_meta = {"task": cfg.task, "dataset": str(cfg.dataset), "max_seq_len": inputs.max_len, "long_text": cfg.long_text,
               "labels": list(labels), "graph_fingerprint": graph_fingerprint(graph)}  # fmt: skip
    identity = {"kind": "kg", "task": cfg.task, "model": str(cfg.model), "graph": kg_meta["graph_fingerprint"],
                "seed": cfg.seed, "epochs": epochs, "negatives": n_neg, "batch_size": cfg.batch_size, "lr": lr}  # fmt: skip
    if resume and (out / KG_FILE).is_file():
        raise LvBertError(f"{out} holds a finished KG model; nothing to resume (evaluate it with lvbert kg eval)")
    prepare_run_dir(out, resume, identity)
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out, asdict(cfg), identity)
    evals_file = out / "evals.json"
    history = json.loads(evals_file.read_text(encoding="utf-8")) if resume and evals_file.exists() else []

    def measure(m) -> tuple[dict, dict]:
        r = evaluate_model(m, tokenizer, graph, kg_meta, cfg.eval_split, batch_size=cfg.eval_batch_size, bf16=cfg.bf16,
                           seed=cfg.seed, quick=True)  # fmt: skip
        score = r["accuracy"] if cfg.task != "relation" else r["filtered"]["mrr"]
        return {"score": score}, {"score": score}

    evaluate = BestEpoch(measure, lambda m: save_model_dir(m, tokenizer, out / "best"), batches.per_epoch, history,
                         record=lambda: atomic_write_json(evals_file, history))  # fmt: skip

    loop = LoopConfig(out_dir=str(out / "logs"), max_steps=steps, eval_every=batches.per_epoch,
                      save_every=batches.per_epoch, keep_last=1, save_final=False, seed=cfg.seed, progress=cfg.progress,
                      bf16=cfg.bf16, tensorboard=False, log_every=max(1, min(50, batches.per_epoch)))  # fmt: skip
    t0 = time.perf_counter()
    train_loop(model, classification_objective, batches, optimizer, scheduler, loop, evaluate=evaluate, resume=resume)
    train_seconds = time.perf_counter() - t0
    shutil.rmtree(out / "logs" / "checkpoints", ignore_errors=True)  # finished: nothing left to resume
    top = evaluate.top()
    best = {"score": top["score"], "step": top["step"]}
    promote_best(out)
    evals_file.unlink()
    results = {"config": asdict(cfg), "kg": kg_meta, "graph": graph.describe(), "train_inputs": len(train),
               "history": history, "best": best, "train_seconds": round(train_seconds, 1)}  # fmt: skip
    if cfg.test:
        best_model = load_classifier(out, labels, cfg.seed).to(device)
        results["test"] = evaluate_model(best_model, tokenizer, graph, kg_meta, "test", max_test=cfg.max_test,
                                         batch_size=cfg.eval_batch_size, bf16=cfg.bf16, seed=cfg.seed,
                                         progress=cfg.progress)  # fmt: skip
    atomic_write_json(out / "results.json", results)
    atomic_write_json(out / KG_FILE, kg_meta)  # last: a folder with kg.json is a finished KG model
    fix_permissions(out)
    if "test" in results:
        print(format_results(results["test"]))
    return results


# ============================================================================ evaluation


def evaluate_kg(cfg: KgEvalConfig) -> dict:
    """Evaluate a KG model folder on a split of its graph (module docstring)."""

    meta = read_kg_meta(cfg.model)
    config = load_model_config(cfg.model)
    tokenizer = load_model_tokenizer(cfg.model, config.vocab_size)
    graph = load_graph(cfg.dataset, meta.get("long_text", False))
    graph.check_split(cfg.split)
    if meta.get("graph_fingerprint") not in (None, graph_fingerprint(graph)):
        raise LvBertError(f"{cfg.model} was trained on the graph {meta['dataset']}, whose entities and relations differ "
                          f"from {cfg.dataset}'s; evaluate it with --dataset {meta['dataset']}")  # fmt: skip
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(cfg.model, local_files_only=True)
    model.to(pick_device(cfg.device))
    if meta["task"] == "relation" and list(meta["labels"]) != list(graph.relations):
        raise LvBertError(f"{cfg.model} was trained on other relations than {cfg.dataset}'s; evaluate on its own graph")
    return evaluate_model(model, tokenizer, graph, meta, cfg.split, max_test=cfg.max_test, batch_size=cfg.eval_batch_size,
                          bf16=cfg.bf16, seed=cfg.seed, ties=cfg.ties, progress=cfg.progress)  # fmt: skip


# ============================================================================ scoring user triples


def score_triples(cfg: KgScoreConfig) -> list[float]:
    """Probability of "true" (KG-BERT(a)) for every line of ``cfg.triples``; written to ``cfg.out`` or stdout."""

    meta = read_kg_meta(cfg.model)
    if meta["task"] == "relation":
        raise LvBertError(f"{cfg.model} predicts relations (KG-BERT(b)); lvbert kg score needs a triple or link model")
    path = Path(cfg.triples)
    if not path.is_file():
        raise LvBertError(f"--triples {path} does not exist")
    if cfg.out:
        check_output_file(cfg.out, inputs={"--triples": cfg.triples, "--model": cfg.model}, overwrite=cfg.overwrite)
    triples, _ = read_triples(path)
    if not triples:
        raise LvBertError(f"{path} holds no triples; give a file of head<TAB>relation<TAB>tail lines")
    if cfg.dataset:
        graph = load_graph(cfg.dataset, meta.get("long_text", False))
        triples = known_triples(triples, graph, path, cfg.dataset, cfg.allow_unknown)
        e_text, r_text = dict(graph.entity_text), dict(graph.relation_text)
    else:
        e_text = {x: clean_name(x) for h, _, t in triples for x in (h, t)}
        r_text = {r: clean_name(r) for _, r, _ in triples}
    graph = KnowledgeGraph("user", {"train": triples}, {}, e_text, r_text, sorted(e_text), sorted(r_text))
    config = load_model_config(cfg.model)
    tokenizer = load_model_tokenizer(cfg.model, config.vocab_size)
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(cfg.model, local_files_only=True)
    model.to(pick_device(cfg.device))
    inputs = Inputs(tokenizer, graph, meta["max_seq_len"], "triple")
    logits = score_inputs(model, inputs.encoded(triples), cfg.eval_batch_size, inputs.pad, column=None)
    probs = logits.softmax(-1)[:, 1].tolist()
    text = "".join(f"{h}\t{r}\t{t}\t{p:.6f}\t{lg:.4f}\n" for (h, r, t), p, lg in zip(triples, probs, logits[:, 1].tolist()))
    if cfg.out:
        atomic_write_text(cfg.out, text)
    else:
        sys.stdout.write(text)
    return probs


