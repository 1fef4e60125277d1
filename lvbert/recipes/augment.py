"""Recipe: task data augmentation, three methods (``lvbert augment --method mlm|cbert|random``),
composed from :mod:`lvbert.augment`:

- ``mlm``: TinyBERT's Algorithm 1 (unconditional contextual augmentation): N copies of every training
  example, each word (not a stop-word, with a letter) replaced with probability p by one of the K
  whole words a masked LM predicts at its place; labels are inherited;
- ``cbert``: conditional BERT (Wu et al. 2019): the MLM's token-type embeddings become label
  embeddings, it is fine-tuned on the labelled train set (resumable), then about 1/7 of each
  sentence's word pieces are masked and re-sampled conditioned on the label (or the flipped label
  with ``--flip-label``: style transfer);
- ``random``: an EDA-style floor without synonyms: random swaps and deletions of words.

Output: a task folder in the input's layout: the train file with the augmented rows
appended after the original ones (an index column gets ``-aug<k>`` suffixes), every other
file copied unchanged (dev and test are never augmented). Deterministic for a seed.
Defaults as the paper: K = 15, p = 0.4, N = 20.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from lvbert.augment import (
    MlmCandidates,
    augment_random,
    augment_texts,
    flipped,
    generate_cbert,
    make_conditional,
    train_cmlm,
)
from lvbert.errors import LvBertError
from lvbert.model_dir import load_mlm
from lvbert.options import option
from lvbert.tasks import DEMO_TASKS, demo_data_dir, get_task
from lvbert.tasks.task import data_rows, with_texts, write_rows
from lvbert.training.distributed import pick_device
from lvbert.training.run import finetune_lr, prepare_run_dir, write_run_config
from lvbert.utils import check_output_dir, staging_folder

METHODS = ("mlm", "cbert", "random")
DEFAULT_COPIES = {"mlm": 20, "cbert": 4, "random": 4}


@dataclass
class AugmentConfig:
    method: str = option("mlm (TinyBERT's, unconditional), cbert (label-conditional MLM) or random (swaps and "
                         "deletions)", default="mlm")  # fmt: skip
    model: str | None = option("masked-LM folder: an lvbert MLM model, an ELECTRA run folder (its generator) or a "
                               "Hugging Face BERT MLM checkpoint on disk (not needed by --method random)",
                               default=None)  # fmt: skip
    task: str = option("the task (as lvbert finetune takes it)", default=None)
    data_dir: str | None = option("the task's folder (demo tasks default to the demo cache)", default=None)
    out: str = option("output task folder (the input's layout, train file augmented)", default=None)
    copies: int | None = option("augmented copies per example (default: mlm 20 as TinyBERT, cbert 4, random 4)",
                                default=None)  # fmt: skip
    prob: float = option("mlm: probability of replacing a word (p); random: of deleting one", default=0.4)
    top_k: int = option("candidates per word (K)", default=15)
    seed: int = option("seed of the sampling", default=0)
    batch_size: int = option("masked sentences per MLM forward pass", default=64)
    max_seq_len: int = option("longer masked sentences are cut around the mask", default=128)
    # cbert
    cmlm: str | None = option("cbert: a conditional MLM saved by an earlier run (its <out>/cmlm); skips fine-tuning",
                              default=None)  # fmt: skip
    epochs: int = option("cbert: fine-tuning epochs of the conditional MLM", default=10)
    lr: float | None = option("cbert: fine-tuning learning rate (default 3e-4 for hidden <= 384, else 5e-5 as the "
                              "official code)", default=None)  # fmt: skip
    temperature: float = option("cbert: sampling temperature", default=1.0)
    mask_ratio: int = option("cbert: one masked piece per this many (the official sample_ratio: 7)", default=7)
    flip_label: bool = option("cbert: generate with the other label (style transfer); the rows get that label",
                              default=False)  # fmt: skip
    text_column: str | None = option("file tasks: column with the text", default=None)
    text_pair_column: str | None = option("file tasks: column with the second text", default=None)
    label_column: str | None = option("file tasks: column with the label", default=None)
    device: str = option("auto, cpu, cuda", default="auto")
    progress: bool = option("progress bar", default=True)
    overwrite: bool = option("replace the contents of an existing non-empty --out folder", default=False)

    def __post_init__(self) -> None:
        for name in ("task", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")
        if self.method not in METHODS:
            raise LvBertError(f"unknown --method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.method != "random" and not (self.model or self.cmlm):
            raise LvBertError(f"--method {self.method} needs --model, a masked-LM folder")
        if self.copies is None:
            self.copies = DEFAULT_COPIES[self.method]
        if self.copies < 1 or self.top_k < 1 or self.batch_size < 1 or self.epochs < 1 or self.mask_ratio < 1:
            raise LvBertError("--copies, --top-k, --batch-size, --epochs and --mask-ratio must be at least 1")
        if not 0 < self.prob <= 1:
            raise LvBertError(f"--prob must be in (0, 1], got {self.prob}")
        if not self.temperature > 0:
            raise LvBertError(f"--temperature must be positive, got {self.temperature}")
        if self.flip_label and self.method != "cbert":
            raise LvBertError("--flip-label is for --method cbert")
        if self.max_seq_len < 8:
            raise LvBertError(f"--max-seq-len must be at least 8, got {self.max_seq_len}")


# ============================================================================ the recipe


def augment(cfg: AugmentConfig, resume: bool = False) -> Path:
    """Write the augmented task folder (see the module docstring); returns it.

    ``resume``: continue the C-MLM fine-tuning (``--method cbert``) of a killed run from its last
    checkpoint, kept beside ``out`` in ``.<name>.cmlm-run`` until the folder is written."""

    task = get_task(cfg.task, cfg.data_dir, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                    label_column=cfg.label_column)  # fmt: skip
    data_dir = Path(cfg.data_dir) if cfg.data_dir else (demo_data_dir(task.name) if task.name in DEMO_TASKS else None)
    if data_dir is None or not data_dir.is_dir():
        raise LvBertError(f"task {task.name} needs --data-dir, the folder with its files")
    out = check_output_dir(cfg.out, inputs={"--data-dir": data_dir, "--model": cfg.model, "--cmlm": cfg.cmlm},
                           overwrite=cfg.overwrite and not resume, own_run=resume)  # fmt: skip
    if cfg.method == "cbert":
        if task.is_regression:
            raise LvBertError(f"task {task.name} is a regression task: conditional BERT conditions on a class label, "
                              "so it needs a classification task")  # fmt: skip
        if task.is_pair:
            raise LvBertError(f"task {task.name} has sentence pairs: conditional BERT augments single sentences")
    split = task.splits["train"]
    examples = task.read(data_dir, "train")
    label_ids = task.label_ids(examples, f"{task.name} train")  # a broken label set fails before any work
    header, rows = data_rows(data_dir / split.file, split.layout)
    if len(rows) != len(examples):
        raise LvBertError(f"{data_dir / split.file}: {len(rows)} rows but {len(examples)} examples; cannot align them")
    model = tokenizer = None
    if cfg.method != "random":
        model, tokenizer, kind = load_mlm(cfg.cmlm or cfg.model)
        model.to(pick_device(cfg.device))
    work = out.parent / f".{out.name}.cmlm-run"  # the C-MLM fine-tuning, resumable until the folder is written
    if cfg.method == "cbert" and cfg.cmlm is None:
        identity = {"kind": "augment-cbert", "task": task.name, "model": str(cfg.model), "seed": cfg.seed,
                    "epochs": cfg.epochs, "lr": cfg.lr, "max_seq_len": cfg.max_seq_len}  # fmt: skip
        if cfg.overwrite and not resume:
            shutil.rmtree(work, ignore_errors=True)
        prepare_run_dir(work, resume, identity)
        work.mkdir(parents=True, exist_ok=True)
        write_run_config(work, asdict(cfg), identity)
    elif resume:
        raise LvBertError("--resume continues the C-MLM fine-tuning of --method cbert (without --cmlm); run the "
                          "command again without --resume")  # fmt: skip
    new_labels = None
    with staging_folder(out) as tmp:
        if cfg.method == "mlm":
            cands = MlmCandidates(model, tokenizer, cfg.top_k, cfg.batch_size, cfg.max_seq_len)
            firsts = augment_texts([ex.text for ex in examples], cands, cfg.copies, cfg.prob, cfg.seed, cfg.progress)
            seconds = (augment_texts([ex.text_pair for ex in examples], cands, cfg.copies, cfg.prob, cfg.seed + 1,
                                     cfg.progress) if task.is_pair else None)  # fmt: skip
            what = f"{kind} MLM {cfg.model}, K {cfg.top_k}, p {cfg.prob}"
        elif cfg.method == "random":
            firsts = augment_random([ex.text for ex in examples], cfg.copies, cfg.prob, cfg.seed)
            seconds = (augment_random([ex.text_pair for ex in examples], cfg.copies, cfg.prob, cfg.seed + 1)
                       if task.is_pair else None)  # fmt: skip
            what = f"random swaps and deletions (p {cfg.prob})"
        else:
            n_labels = len(task.labels)
            if cfg.cmlm is None:
                make_conditional(model, n_labels)
                lr = cfg.lr if cfg.lr is not None else finetune_lr(model.config.hidden_size, 5e-5)
                model = train_cmlm(model, tokenizer, [ex.text for ex in examples], label_ids, tmp / "cmlm",
                                   epochs=cfg.epochs, lr=lr, seed=cfg.seed, max_len=cfg.max_seq_len,
                                   progress=cfg.progress, work=work, resume=resume)  # fmt: skip
            elif model.config.type_vocab_size < n_labels:
                raise LvBertError(f"--cmlm {cfg.cmlm} has {model.config.type_vocab_size} label embeddings, the task "
                                  f"{n_labels} labels")  # fmt: skip
            gen_labels = [flipped(y, n_labels) if cfg.flip_label else y for y in label_ids]
            firsts = generate_cbert(model, tokenizer, [ex.text for ex in examples], gen_labels, cfg.copies,
                                    mask_ratio=cfg.mask_ratio, temperature=cfg.temperature, seed=cfg.seed,
                                    batch_size=cfg.batch_size, max_len=cfg.max_seq_len,
                                    progress=cfg.progress)  # fmt: skip
            seconds = None
            if cfg.flip_label:
                new_labels = [task.labels[y] for y in gen_labels]
            what = (f"conditional MLM ({'fine-tuned from ' + str(cfg.model) if cfg.cmlm is None else cfg.cmlm}), "
                    f"1/{cfg.mask_ratio} masked, temperature {cfg.temperature}" + (", labels flipped" if cfg.flip_label else ""))  # fmt: skip
        new_rows = []
        for n, row in enumerate(rows):
            a = firsts[n]
            b = seconds[n] if seconds is not None else None
            count = len(a) if b is None else max(len(a), len(b))
            for k in range(count):
                text = a[k] if k < len(a) else examples[n].text
                pair = None if b is None else (b[k] if k < len(b) else examples[n].text_pair)
                label = new_labels[n] if new_labels is not None else None
                new_rows.append(with_texts(row, split.layout, header, text, pair, f"-aug{k}", label))
        for f in sorted(p for p in data_dir.rglob("*") if p.is_file()):
            dest = tmp / f.relative_to(data_dir)
            if f == data_dir / split.file or dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        write_rows(tmp / split.file, split.layout, header, rows + new_rows)
    print(f"{task.name}: {len(rows):,} train examples + {len(new_rows):,} augmented ({what}, N {cfg.copies}) "
          f"written to {out}")  # fmt: skip
    return out
