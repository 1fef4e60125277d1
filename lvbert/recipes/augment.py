"""Recipe: task data augmentation for distillation (TinyBERT's Algorithm 1, ``--method mlm``).

For every training example, N copies are made. In each copy every word (that is not a
stop-word and has a letter) is replaced with probability p by a word drawn uniformly from
the K words a masked LM predicts at its place (the word replaced by one ``[MASK]``, the rest
of the sentence as context). TinyBERT takes the MLM's top-K for single-piece words and the
K nearest GloVe vectors for words of several pieces; GloVe is not available here, so every
word, whatever its number of pieces, takes the MLM's top-K whole words (pieces that are not
``##`` continuations) at its single ``[MASK]``. Labels are inherited. Copies equal to the
original or to an earlier copy are dropped. The candidates of a sentence are computed once,
batched across sentences; the copies then only sample.

Output: a task folder in the input's layout: the train file with the augmented rows
appended after the original ones (an index column gets ``-aug<k>`` suffixes), every other
file copied unchanged (dev and test are never augmented). Deterministic for a seed.
Defaults as the paper: K = 15, p = 0.4, N = 20.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from lvbert.errors import LvBertError
from lvbert.recipes.options import option

METHODS = ("mlm",)
# English function words left as they are (a short list of our own; TinyBERT skips NLTK's stop-words).
STOP_WORDS = frozenset(
    "a an the and or but if then so of to in on at by for with from as into onto over under about above below "
    "between through during before after up down out off again further once here there when where why how all "
    "any both each few more most other some such no nor not only own same than too very can will just should "
    "now i me my we our you your he him his she her it its they them their what which who whom this that these "
    "those am is are was were be been being have has had having do does did doing would could might must shall "
    "may 's 't s t".split()
)
_WORDS = re.compile(r"\w+(?:'\w+)?|[^\w\s]", re.UNICODE)


@dataclass
class AugmentConfig:
    method: str = option("mlm: TinyBERT's augmentation with a masked LM", default="mlm")
    model: str = option("masked-LM folder: an lvbert MLM model, an ELECTRA run folder (its generator) or a Hugging "
                        "Face BERT MLM checkpoint on disk (the teacher's MLM)", default=None)  # fmt: skip
    task: str = option("the task (as lvbert finetune takes it)", default=None)
    data_dir: str | None = option("the task's folder (demo tasks default to the demo cache)", default=None)
    out: str = option("output task folder (the input's layout, train file augmented)", default=None)
    copies: int = option("augmented copies per example (N; the paper: 20)", default=20)
    prob: float = option("probability of replacing a word (p)", default=0.4)
    top_k: int = option("candidates per word (K)", default=15)
    seed: int = option("seed of the sampling", default=0)
    batch_size: int = option("masked sentences per MLM forward pass", default=64)
    max_seq_len: int = option("longer masked sentences are cut around the mask", default=128)
    text_column: str | None = option("file tasks: column with the text", default=None)
    text_pair_column: str | None = option("file tasks: column with the second text", default=None)
    label_column: str | None = option("file tasks: column with the label", default=None)
    device: str = option("auto, cpu, cuda", default="auto")
    progress: bool = option("progress bar", default=True)

    def __post_init__(self) -> None:
        for name in ("model", "task", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")
        if self.method not in METHODS:
            raise LvBertError(f"unknown --method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.copies < 1 or self.top_k < 1 or self.batch_size < 1:
            raise LvBertError("--copies, --top-k and --batch-size must be at least 1")
        if not 0 < self.prob <= 1:
            raise LvBertError(f"--prob must be in (0, 1], got {self.prob}")
        if self.max_seq_len < 8:
            raise LvBertError(f"--max-seq-len must be at least 8, got {self.max_seq_len}")


def words_of(text: str) -> list[str]:
    return _WORDS.findall(text)


def replaceable(word: str) -> bool:
    return any(c.isalpha() for c in word) and word.lower() not in STOP_WORDS


class MlmCandidates:
    """Top-K whole-word predictions of a masked LM at one masked word of a sentence, batched."""

    def __init__(self, model, tokenizer, top_k: int, batch_size: int, max_len: int):
        self.model, self.tok, self.k, self.batch_size, self.max_len = model, tokenizer, top_k, batch_size, max_len
        vocab = tokenizer.get_vocab()
        special = set(tokenizer.all_special_ids)
        allowed = torch.zeros(len(tokenizer), dtype=torch.bool)
        for token, i in vocab.items():
            if i not in special and not token.startswith("##") and any(c.isalpha() for c in token) and i < len(allowed):
                allowed[i] = True
        self.allowed = allowed
        self.id_to_token = {i: t for t, i in vocab.items()}

    @torch.no_grad()
    def __call__(self, jobs: list[tuple[list[str], int]]) -> list[list[str]]:
        """For each (words, i): the K candidates for words[i] (never the word itself)."""
        out: list[list[str]] = []
        device = next(self.model.parameters()).device
        mask = self.tok.mask_token
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start : start + self.batch_size]
            texts = [" ".join(w[:i] + [mask] + w[i + 1 :]) for w, i in chunk]
            enc = self.tok(texts, truncation=True, max_length=self.max_len, padding=True, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            logits = self.model(**enc).logits  # [B, L, V]
            where = enc["input_ids"] == self.tok.mask_token_id
            for b, (w, i) in enumerate(chunk):
                pos = where[b].nonzero()
                if len(pos) == 0:  # the mask was cut off by truncation
                    out.append([])
                    continue
                scores = logits[b, pos[0, 0]].float().masked_fill(~self.allowed.to(device), float("-inf"))
                top = scores.topk(self.k + 1).indices.tolist()
                cands = [self.id_to_token[j] for j in top if self.id_to_token[j] != w[i].lower()][: self.k]
                out.append(cands)
        return out


def augment_texts(texts: list[str], candidates: MlmCandidates, copies: int, prob: float, seed: int,
                  progress: bool = False) -> list[list[str]]:  # fmt: skip
    """For each text, up to ``copies`` augmented versions (duplicates of the original or of each other dropped)."""
    from tqdm.auto import tqdm

    words = [words_of(t) for t in texts]
    jobs = [(w, i) for w in words for i, x in enumerate(w) if replaceable(x)]
    found: dict[tuple[int, int], list[str]] = {}
    keys = [(n, i) for n, w in enumerate(words) for i, x in enumerate(w) if replaceable(x)]
    bar = tqdm(total=len(jobs), desc="augment", unit="word", disable=not progress)
    step = candidates.batch_size * 8
    for start in range(0, len(jobs), step):
        for key, cands in zip(keys[start : start + step], candidates(jobs[start : start + step])):
            found[key] = cands
        bar.update(min(step, len(jobs) - start))
    bar.close()
    out = []
    for n, w in enumerate(words):
        rng = random.Random(f"{seed}/{n}")
        seen = {" ".join(w)}
        versions = []
        for _ in range(copies):
            new = [rng.choice(found[(n, i)]) if (n, i) in found and found[(n, i)] and rng.random() < prob else x
                   for i, x in enumerate(w)]  # fmt: skip
            text = " ".join(new)
            if text not in seen:
                seen.add(text)
                versions.append(text)
        out.append(versions)
    return out


def augment(cfg: AugmentConfig) -> Path:
    """Write the augmented task folder (see the module docstring); returns it."""
    from lvbert.model_dir import load_mlm
    from lvbert.tasks import DEMO_TASKS, demo_data_dir, get_task
    from lvbert.tasks.task import data_rows, with_texts, write_rows
    from lvbert.training.distributed import pick_device
    from lvbert.utils import check_out_dir, staging_folder

    task = get_task(cfg.task, cfg.data_dir, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                    label_column=cfg.label_column)  # fmt: skip
    data_dir = Path(cfg.data_dir) if cfg.data_dir else (demo_data_dir(task.name) if task.name in DEMO_TASKS else None)
    if data_dir is None or not data_dir.is_dir():
        raise LvBertError(f"task {task.name} needs --data-dir, the folder with its files")
    out = check_out_dir(cfg.out)
    if out.resolve() == data_dir.resolve():
        raise LvBertError("--out must be a new folder, not the task's own (its files are copied, never changed)")
    if out.is_dir() and any(out.iterdir()):
        raise LvBertError(f"--out {out} exists and is not empty; choose a new folder")
    model, tokenizer, kind = load_mlm(cfg.model)
    model.to(pick_device(cfg.device))
    split = task.splits["train"]
    examples = task.read(data_dir, "train")
    task.label_ids(examples, f"{task.name} train")  # a broken label set fails before any work
    header, rows = data_rows(data_dir / split.file, split.layout)
    if len(rows) != len(examples):
        raise LvBertError(f"{data_dir / split.file}: {len(rows)} rows but {len(examples)} examples; cannot align them")
    cands = MlmCandidates(model, tokenizer, cfg.top_k, cfg.batch_size, cfg.max_seq_len)
    firsts = augment_texts([ex.text for ex in examples], cands, cfg.copies, cfg.prob, cfg.seed, cfg.progress)
    seconds = (augment_texts([ex.text_pair for ex in examples], cands, cfg.copies, cfg.prob, cfg.seed + 1, cfg.progress)
               if task.is_pair else None)  # fmt: skip
    new_rows = []
    for n, row in enumerate(rows):
        a = firsts[n]
        b = seconds[n] if seconds is not None else None
        count = len(a) if b is None else max(len(a), len(b))
        for k in range(count):
            text = a[k] if k < len(a) else examples[n].text
            pair = None if b is None else (b[k] if k < len(b) else examples[n].text_pair)
            new_rows.append(with_texts(row, split.layout, header, text, pair, f"-aug{k}"))
    with staging_folder(out) as tmp:
        for f in sorted(p for p in data_dir.rglob("*") if p.is_file()):
            dest = tmp / f.relative_to(data_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if f == data_dir / split.file:
                continue
            shutil.copy2(f, dest)
        write_rows(tmp / split.file, split.layout, header, rows + new_rows)
    print(f"{task.name}: {len(rows):,} train examples + {len(new_rows):,} augmented ({kind} MLM {cfg.model}, "
          f"K {cfg.top_k}, p {cfg.prob}, N {cfg.copies}) written to {out}")  # fmt: skip
    return out
