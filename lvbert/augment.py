"""Task data augmentation components: TinyBERT's MLM augmentation, conditional BERT and an EDA-style
random floor. Plain arguments (the command line lives in :mod:`lvbert.recipes.augment`).

- :class:`MlmCandidates` and :func:`augment_texts`: TinyBERT's Algorithm 1 (unconditional contextual
  augmentation). In each copy every word (that is not a stop-word and has a letter) is replaced with
  probability p by a word drawn uniformly from the K whole words a masked LM predicts at its single
  ``[MASK]`` (TinyBERT's GloVe neighbours for words of several pieces are not available here);
  the candidates of a sentence are computed once, batched across sentences; the copies then only sample;
- :func:`make_conditional`, :func:`train_cmlm`, :func:`generate_cbert`: conditional BERT (Wu et al.
  2019): the MLM's token-type embeddings become label embeddings, it is fine-tuned on the labelled
  sentences, then about 1/7 of each sentence's word pieces are masked and re-sampled given the label;
- :func:`augment_random`: random swaps and deletions of words.

Copies equal to the original or to an earlier copy are dropped; everything is deterministic for a seed.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from lvbert.data.masking import MaskingConfig, MlmCollator
from lvbert.model_dir import save_model_dir
from lvbert.objectives import mlm_objective
from lvbert.tasks.encoding import Encoded, IndexedBatches, collate, encode
from lvbert.tasks.task import Example
from lvbert.training.loop import LoopConfig, train_loop
from lvbert.training.optim import build_optimizer, linear_schedule

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


def train_cmlm(model, tokenizer, texts: list[str], label_ids: list[int], out: Path, *, epochs: int, lr: float,
               seed: int = 0, max_len: int = 128, progress: bool = False, work: Path | None = None,
               resume: bool = False):  # fmt: skip
    """Fine-tune the conditional MLM on the labelled sentences (BERT's masking, redrawn every epoch;
    the official code fixes each sentence's mask once and draws "random" tokens from the sentence,
    which this does not copy), ``epochs`` epochs at peak ``lr``; the model is saved in ``out / "model"``.

    ``work``: the training run's folder (checkpoints after every epoch, so a killed run continues
    exactly with ``resume``); it becomes ``out/logs`` when training ends."""

    enc = encode(tokenizer, [Example(str(i), t) for i, t in enumerate(texts)], max_len, "cbert fine-tuning")
    enc.token_type_ids = [[y] * len(ids) for ids, y in zip(enc.input_ids, label_ids)]  # the label at every position
    pad = tokenizer.pad_token_id or 0
    base = IndexedBatches(enc, 32, seed, pad)
    collator = MlmCollator(tokenizer, MaskingConfig(mode="bert"), seed=seed)

    def batches(step: int, micro: int = 0) -> dict:
        b = base(step, micro)
        collator.generator.manual_seed(seed * 1_000_003 + step)
        b["input_ids"], b["labels"] = collator.mask(b["input_ids"], b["attention_mask"])
        return b

    steps = base.steps(epochs)
    optimizer = build_optimizer(model, lr, 0.01)
    scheduler = linear_schedule(optimizer, round(0.1 * steps), steps)
    work = work or out / "logs"
    loop = LoopConfig(out_dir=str(work), max_steps=steps, save_every=base.per_epoch, keep_last=1, save_final=False,
                      seed=seed, progress=progress, tensorboard=False,
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
def generate_cbert(model, tokenizer, texts: list[str], labels: list[int], copies: int, *, mask_ratio: int = 7,
                   temperature: float = 1.0, seed: int = 0, batch_size: int = 64, max_len: int = 128,
                   progress: bool = False) -> list[list[str]]:  # fmt: skip
    """``copies`` versions of each sentence: max(n // mask_ratio, 1) of its n word pieces masked
    (never [CLS] / [SEP]), each re-sampled from softmax(logits / temperature) with the label as
    token type; special tokens are never drawn. Only the re-sampled pieces change: the rest of the
    text is kept as written (:func:`rebuild_text`; a slow tokenizer without offsets falls back to
    ``decode``). Versions equal to the original or to an earlier version are dropped."""

    model.eval()
    device = next(model.parameters()).device
    fast = getattr(tokenizer, "is_fast", False)
    tok = tokenizer(texts, truncation=True, max_length=max_len, return_offsets_mapping=fast, verbose=False)
    offsets = tok["offset_mapping"] if fast else None
    enc = Encoded(tok["input_ids"], [[y] * len(ids) for ids, y in zip(tok["input_ids"], labels)], None,
                  [str(i) for i in range(len(texts))])  # fmt: skip
    special = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    special[[i for i in tokenizer.all_special_ids if i is not None and i < len(special)]] = True
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    pad = tokenizer.pad_token_id or 0
    out: list[list[str]] = [[] for _ in texts]
    seen = [{t if fast else tokenizer.decode(ids[1:-1])} for t, ids in zip(texts, enc.input_ids)]
    bar = tqdm(total=len(texts) * copies, desc="cbert", unit="sentence", disable=not progress)
    for copy in range(copies):
        for start in range(0, len(texts), batch_size):
            rows = list(range(start, min(start + batch_size, len(texts))))
            gen = torch.Generator().manual_seed(seed * 1_000_003 + copy * 10_007 + start)
            b = collate(enc, rows, pad)
            ids = b["input_ids"]
            masked = torch.zeros_like(ids, dtype=torch.bool)
            for r, i in enumerate(rows):
                n = len(enc.input_ids[i]) - 2  # the pieces between [CLS] and [SEP]
                if n <= 0:
                    continue
                k = max(n // mask_ratio, 1)
                pos = torch.randperm(n, generator=gen)[:k] + 1
                masked[r, pos] = True
            inputs = ids.masked_fill(masked, tokenizer.mask_token_id)
            logits = model(input_ids=inputs.to(device), attention_mask=b["attention_mask"].to(device),
                           token_type_ids=b["token_type_ids"].to(device)).logits  # fmt: skip
            picked = logits[masked.to(device)].float().cpu() / temperature  # [M, V]
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
