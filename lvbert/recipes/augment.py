"""Recipe: task data augmentation, three methods (``lvbert augment --method mlm|cbert|random``).

- ``mlm``: TinyBERT's Algorithm 1 (unconditional contextual augmentation), below;
- ``cbert``: conditional BERT (Wu et al. 2019, :func:`train_cmlm` and :func:`generate_cbert`): the
  MLM's token-type embeddings become label embeddings, it is fine-tuned on the labelled train
  set, then about 1/7 of each sentence's word pieces are masked and re-sampled conditioned on
  the label (or the flipped label with ``--flip-label``: style transfer);
- ``random``: an EDA-style floor without synonyms: random swaps and deletions of words.

``mlm`` in detail: for every training example, N copies are made. In each copy every word (that is not a
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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from lvbert.errors import LvBertError
from lvbert.options import option

METHODS = ("mlm", "cbert", "random")
DEFAULT_COPIES = {"mlm": 20, "cbert": 4, "random": 4}
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


# ============================================================================ random (a floor)


def augment_random(texts: list[str], copies: int, delete_prob: float, seed: int) -> list[list[str]]:
    """EDA-style copies without synonyms: about 10% of the words swapped pairwise, then each word
    deleted with probability ``delete_prob`` (at least one word kept); duplicates dropped."""
    out = []
    for n, text in enumerate(texts):
        rng = random.Random(f"{seed}/random/{n}")
        words = text.split()
        seen, versions = {text}, []
        for _ in range(copies):
            w = list(words)
            for _ in range(max(1, round(0.1 * len(w))) if len(w) > 1 else 0):
                i, j = rng.randrange(len(w)), rng.randrange(len(w))
                w[i], w[j] = w[j], w[i]
            kept = [x for x in w if rng.random() >= delete_prob]
            if w and not kept:
                kept = [rng.choice(w)]
            new = " ".join(kept)
            if new and new not in seen:
                seen.add(new)
                versions.append(new)
        out.append(versions)
    return out


# ============================================================================ cbert: the conditional MLM


def _token_type_embeddings(model):
    base = getattr(model, model.base_model_prefix, model)
    return base.embeddings


def make_conditional(model, num_labels: int) -> None:
    """Turn an MLM's segment embeddings into label embeddings: ``token_type_ids`` become label ids.

    Two labels reuse the two token-type rows; more labels get a fresh table of ``num_labels`` rows,
    initialised N(0, 0.02), as the official code does for SST-5 and TREC."""
    emb = _token_type_embeddings(model)
    old = emb.token_type_embeddings
    if num_labels > old.num_embeddings:
        new = nn.Embedding(num_labels, old.embedding_dim).to(old.weight.device)
        nn.init.normal_(new.weight, std=0.02)
        emb.token_type_embeddings = new
        model.config.type_vocab_size = num_labels


def train_cmlm(model, tokenizer, texts: list[str], label_ids: list[int], cfg: AugmentConfig, out: Path,
               work: Path | None = None, resume: bool = False):  # fmt: skip
    """Fine-tune the conditional MLM on the labelled sentences (BERT's masking, redrawn every epoch;
    the official code fixes each sentence's mask once and draws "random" tokens from the sentence,
    which this does not copy); the model is saved in ``out`` (reusable with ``--cmlm``).

    ``work``: the training run's folder (checkpoints after every epoch, so a killed run continues
    exactly with ``resume``); it becomes ``out/logs`` when training ends."""
    from lvbert.data.masking import MaskingConfig, MlmCollator
    from lvbert.model_dir import save_model_dir
    from lvbert.objectives import mlm_objective
    from lvbert.tasks.encoding import IndexedBatches, encode
    from lvbert.tasks.task import Example
    from lvbert.training.loop import LoopConfig, train_loop
    from lvbert.training.optim import build_optimizer, linear_schedule

    enc = encode(tokenizer, [Example(str(i), t) for i, t in enumerate(texts)], cfg.max_seq_len, "cbert fine-tuning")
    enc.token_type_ids = [[y] * len(ids) for ids, y in zip(enc.input_ids, label_ids)]  # the label at every position
    pad = tokenizer.pad_token_id or 0
    base = IndexedBatches(enc, 32, cfg.seed, pad)
    collator = MlmCollator(tokenizer, MaskingConfig(mode="bert"), seed=cfg.seed)

    def batches(step: int, micro: int = 0) -> dict:
        b = base(step, micro)
        collator.generator.manual_seed(cfg.seed * 1_000_003 + step)
        b["input_ids"], b["labels"] = collator.mask(b["input_ids"], b["attention_mask"])
        return b

    steps = base.steps(cfg.epochs)
    lr = cfg.lr if cfg.lr is not None else (3e-4 if model.config.hidden_size <= 384 else 5e-5)
    optimizer = build_optimizer(model, lr, 0.01)
    scheduler = linear_schedule(optimizer, round(0.1 * steps), steps)
    work = work or out / "logs"
    loop = LoopConfig(out_dir=str(work), max_steps=steps, save_every=base.per_epoch, keep_last=1, save_final=False,
                      seed=cfg.seed, progress=cfg.progress, tensorboard=False,
                      log_every=max(1, min(50, base.per_epoch)))  # fmt: skip
    train_loop(model, mlm_objective, batches, optimizer, scheduler, loop, resume=resume)
    shutil.rmtree(work / "checkpoints", ignore_errors=True)  # finished: nothing left to resume
    save_model_dir(model, tokenizer, out / "model")
    if work != out / "logs":
        out.mkdir(parents=True, exist_ok=True)
        shutil.move(str(work), str(out / "logs"))
    return model


def rebuild_text(text: str, offsets: list[tuple[int, int]], pieces: list[str], changed: set[int]) -> str:
    """The sentence with the pieces at ``changed`` positions replaced, everything else byte-for-byte.

    ``offsets`` are the tokenizer's character spans, ``pieces`` the new tokens (WordPiece: a ``##``
    piece continues the word before it, any other starts a word). A new word-start piece keeps the
    original gap before it, or gets a space when it replaced a ``##`` continuation; a new ``##`` piece
    is glued to what precedes it. Special tokens (empty spans) are skipped."""
    out, prev_end = [], None
    for p, (s, e) in enumerate(offsets):
        if s == e:  # [CLS], [SEP]
            continue
        gap = text[prev_end:s] if prev_end is not None else text[:s]
        if p in changed:
            piece = pieces[p]
            if piece.startswith("##"):
                gap, piece = "", piece[2:]
            elif gap == "" and prev_end is not None:
                gap = " "
            out.append(gap + piece)
        else:
            out.append(gap + text[s:e])
        prev_end = e
    return "".join(out) + (text[prev_end:] if prev_end is not None else text)


@torch.no_grad()
def generate_cbert(model, tokenizer, texts: list[str], labels: list[int], cfg: AugmentConfig) -> list[list[str]]:
    """``cfg.copies`` versions of each sentence: max(n // mask_ratio, 1) of its n word pieces masked
    (never [CLS] / [SEP]), each re-sampled from softmax(logits / temperature) with the label as
    token type; special tokens are never drawn. Only the re-sampled pieces change: the rest of the
    text is kept as written (:func:`rebuild_text`; a slow tokenizer without offsets falls back to
    ``decode``). Versions equal to the original or to an earlier version are dropped."""
    from tqdm.auto import tqdm

    from lvbert.tasks.encoding import Encoded, collate

    model.eval()
    device = next(model.parameters()).device
    fast = getattr(tokenizer, "is_fast", False)
    tok = tokenizer(texts, truncation=True, max_length=cfg.max_seq_len, return_offsets_mapping=fast, verbose=False)
    offsets = tok["offset_mapping"] if fast else None
    enc = Encoded(tok["input_ids"], [[y] * len(ids) for ids, y in zip(tok["input_ids"], labels)], None,
                  [str(i) for i in range(len(texts))])  # fmt: skip
    special = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    special[[i for i in tokenizer.all_special_ids if i is not None and i < len(special)]] = True
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    pad = tokenizer.pad_token_id or 0
    out: list[list[str]] = [[] for _ in texts]
    seen = [{t if fast else tokenizer.decode(ids[1:-1])} for t, ids in zip(texts, enc.input_ids)]
    bar = tqdm(total=len(texts) * cfg.copies, desc="cbert", unit="sentence", disable=not cfg.progress)
    for copy in range(cfg.copies):
        for start in range(0, len(texts), cfg.batch_size):
            rows = list(range(start, min(start + cfg.batch_size, len(texts))))
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + copy * 10_007 + start)
            b = collate(enc, rows, pad)
            ids = b["input_ids"]
            masked = torch.zeros_like(ids, dtype=torch.bool)
            for r, i in enumerate(rows):
                n = len(enc.input_ids[i]) - 2  # the pieces between [CLS] and [SEP]
                if n <= 0:
                    continue
                k = max(n // cfg.mask_ratio, 1)
                pos = torch.randperm(n, generator=gen)[:k] + 1
                masked[r, pos] = True
            inputs = ids.masked_fill(masked, tokenizer.mask_token_id)
            logits = model(input_ids=inputs.to(device), attention_mask=b["attention_mask"].to(device),
                           token_type_ids=b["token_type_ids"].to(device)).logits  # fmt: skip
            picked = logits[masked.to(device)].float().cpu() / cfg.temperature  # [M, V]
            picked[:, special[: picked.shape[1]]] = float("-inf")
            draws = torch.multinomial(torch.softmax(picked, -1), 1, generator=gen).squeeze(-1)
            new = ids.clone()
            new[masked] = draws
            for r, i in enumerate(rows):
                n = len(enc.input_ids[i])
                if fast:
                    changed = {p for p in masked[r, :n].nonzero().flatten().tolist() if new[r, p] != ids[r, p]}
                    pieces = [id_to_token.get(j, "") for j in new[r, :n].tolist()]
                    text = rebuild_text(texts[i], offsets[i], pieces, changed)
                else:
                    text = tokenizer.decode(new[r, 1 : n - 1].tolist())
                if text and text not in seen[i]:
                    seen[i].add(text)
                    out[i].append(text)
            bar.update(len(rows))
    bar.close()
    return out


def flipped(label_id: int, num_labels: int) -> int:
    """The "other" label of style transfer: 1 - y for two labels, the next one (cyclically) for more."""
    return 1 - label_id if num_labels == 2 else (label_id + 1) % num_labels


# ============================================================================ the recipe


def augment(cfg: AugmentConfig, resume: bool = False) -> Path:
    """Write the augmented task folder (see the module docstring); returns it.

    ``resume``: continue the C-MLM fine-tuning (``--method cbert``) of a killed run from its last
    checkpoint, kept beside ``out`` in ``.<name>.cmlm-run`` until the folder is written."""
    from lvbert.model_dir import load_mlm
    from lvbert.training.run import prepare_run_dir, write_run_config
    from lvbert.tasks import DEMO_TASKS, demo_data_dir, get_task
    from lvbert.tasks.task import data_rows, with_texts, write_rows
    from lvbert.training.distributed import pick_device
    from lvbert.utils import check_output_dir, staging_folder

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
                model = train_cmlm(model, tokenizer, [ex.text for ex in examples], label_ids, cfg, tmp / "cmlm", work,
                                   resume)  # fmt: skip
            elif model.config.type_vocab_size < n_labels:
                raise LvBertError(f"--cmlm {cfg.cmlm} has {model.config.type_vocab_size} label embeddings, the task "
                                  f"{n_labels} labels")  # fmt: skip
            gen_labels = [flipped(y, n_labels) if cfg.flip_label else y for y in label_ids]
            firsts = generate_cbert(model, tokenizer, [ex.text for ex in examples], gen_labels, cfg)
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
