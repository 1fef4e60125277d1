"""Task inputs as tensors: encoding (one text, a pair, a triple of texts), collation, batched prediction.

Every task recipe (fine-tuning, prediction, and later distillation, augmentation and knowledge
graphs) encodes with these, so truncation, segments and padding mean the same thing everywhere:

- one text: ``[CLS] text [SEP]``, segment 0;
- a pair: ``[CLS] text [SEP] pair [SEP]``, segments 0 then 1 (BERT's sentence pairs);
- a triple: ``[CLS] head [SEP] relation [SEP] tail [SEP]``, segments 0 / 1 / 0 (KG-BERT's triples,
  Yao et al. 2019: the relation is the B segment, the two entities the A segment).

Inputs longer than the limit are truncated (longest part first) and counted in one warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from lvbert.tasks.task import Example, Task
from lvbert.utils import warn


@dataclass
class Encoded:
    """Token ids of one split, ready for batching."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list | None  # class ids or floats; None for unlabelled test splits
    index: list[str]

    def __len__(self) -> int:
        return len(self.input_ids)


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


def encode_triples(tokenizer, triples: list[tuple[str, str, str]], max_len: int, where: str = "triples",
                   index: list[str] | None = None) -> Encoded:  # fmt: skip
    """``[CLS] head [SEP] relation [SEP] tail [SEP]`` with segments 0 / 1 / 0 (KG-BERT's input).

    When a triple is longer than ``max_len``, the longest of its three texts loses its last word
    piece until it fits (KG-BERT's truncation); one warning counts the triples cut.
    """
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    parts = [tokenizer([t[k] for t in triples], add_special_tokens=False, verbose=False)["input_ids"] for k in range(3)]
    ids, types, cut = [], [], 0
    budget = max_len - 4  # [CLS] and three [SEP]
    if budget < 3:
        raise ValueError(f"max_len {max_len} leaves no room for a triple (at least 7 tokens)")
    for h, r, t in zip(*parts):
        h, r, t = list(h), list(r), list(t)
        if len(h) + len(r) + len(t) > budget:
            cut += 1
            while len(h) + len(r) + len(t) > budget:
                longest = max((h, r, t), key=len)
                longest.pop()
        ids.append([cls, *h, sep, *r, sep, *t, sep])
        types.append([0] * (len(h) + 2) + [1] * (len(r) + 1) + [0] * (len(t) + 1))
    if cut:
        warn(f"{where}: {cut} of {len(triples)} triples are longer than {max_len} tokens and were truncated")
    return Encoded(ids, types, None, index if index is not None else [str(i) for i in range(len(triples))])


def pad_rows(input_ids: list[list[int]], token_type_ids: list[list[int]], rows: list[int], pad_id: int) -> dict:
    """The given rows padded to the longest of them: input_ids, token_type_ids, attention_mask [B, T]."""
    width = max(len(input_ids[i]) for i in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, i in enumerate(rows):
        n = len(input_ids[i])
        ids[b, :n] = torch.tensor(input_ids[i])
        types[b, :n] = torch.tensor(token_type_ids[i])
        mask[b, :n] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def collate(enc: Encoded, rows: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the given rows to the longest of them: input_ids, token_type_ids, attention_mask [B, T] (+ labels [B])."""
    batch = pad_rows(enc.input_ids, enc.token_type_ids, rows, pad_id)
    if enc.labels is not None:
        values = [enc.labels[i] for i in rows]
        batch["labels"] = torch.tensor(values, dtype=torch.float if isinstance(values[0], float) else torch.long)
    return batch


def concat(a: Encoded, b: Encoded) -> Encoded:
    return Encoded(a.input_ids + b.input_ids, a.token_type_ids + b.token_type_ids,
                   None if a.labels is None else a.labels + b.labels, a.index + b.index)  # fmt: skip


def batched_outputs(model, lengths: list[int], collate_rows, batch_size: int, bf16: bool = False,
                    progress: bool = False, desc: str = "predict"):  # fmt: skip
    """The one batched inference path (classification, triples, SQuAD windows): rows in batches of
    similar length (less padding), ``collate_rows(rows) -> dict of tensors`` makes each batch, and
    ``(rows, model output)`` is yielded per batch so the caller puts results back in input order.
    The model is left in eval mode; ``labels`` are never passed."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    bar = tqdm(total=len(order), desc=desc, unit="input", disable=not progress, dynamic_ncols=True)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate_rows(rows).items() if k != "labels"}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(**batch)
            yield rows, out
            bar.update(len(rows))
    bar.close()


def predict_logits(model, enc: Encoded, batch_size: int, pad_id: int, bf16: bool = False) -> torch.Tensor:
    """Logits [N, num_labels] (float32, CPU) in the split's order; the model is left in eval mode."""
    out = torch.empty(len(enc.input_ids), model.config.num_labels)
    lengths = [len(ids) for ids in enc.input_ids]
    for rows, res in batched_outputs(model, lengths, lambda rows: collate(enc, rows, pad_id), batch_size, bf16):
        out[rows] = res.logits.float().cpu()
    return out


def logits_to_predictions(task: Task, logits: torch.Tensor) -> list:
    """Class ids (argmax) or real values (regression)."""
    return logits[:, 0].tolist() if task.is_regression else logits.argmax(-1).tolist()


def evaluate_splits(model, task: Task, dev: dict[str, Encoded], batch_size: int, pad_id: int, bf16: bool = False) -> dict:
    """{split: {metric: value}} over the task's dev splits."""
    results = {}
    for split, enc in dev.items():
        preds = logits_to_predictions(task, predict_logits(model, enc, batch_size, pad_id, bf16))
        results[split] = task.evaluate(preds, enc.labels)
    return results


def encode_task(task: Task, data_dir, tokenizer, max_seq_len: int, both_orders: bool = False) -> tuple[Encoded, dict]:
    """Read, check and encode the train split (also swapped, for pair tasks with ``both_orders``) and the dev splits."""
    train_ex = task.read(data_dir, "train")
    train = encode(tokenizer, train_ex, max_seq_len, f"{task.name} train")
    train.labels = task.label_ids(train_ex, f"{task.name} train")
    if both_orders and task.is_pair:
        swapped = encode(tokenizer, train_ex, max_seq_len, f"{task.name} train (swapped)", swap=True)
        swapped.labels = train.labels
        train = concat(train, swapped)
    dev = {}
    for split in task.dev_splits:
        ex = task.read(data_dir, split)
        dev[split] = encode(tokenizer, ex, max_seq_len, f"{task.name} {split}")
        dev[split].labels = task.label_ids(ex, f"{task.name} {split}")
    return train, dev


class IndexedBatches:
    """Training batches as a function ``(step, micro) -> batch``: the permutation of epoch e comes
    from ``(seed, e)``, so a resumed run sees exactly the batches of an uninterrupted one."""

    def __init__(self, enc: Encoded, batch_size: int, seed: int, pad_id: int, grad_accum: int = 1):
        self.enc, self.batch_size, self.seed, self.pad_id, self.grad_accum = enc, batch_size, seed, pad_id, grad_accum
        self.per_epoch = max(1, math.ceil(len(enc) / batch_size))
        self._np = np
        self._epoch, self._perm = -1, None

    def steps(self, epochs: int) -> int:
        return math.ceil(epochs * self.per_epoch / self.grad_accum)

    def __call__(self, step: int, micro: int = 0) -> dict:
        index = step * self.grad_accum + micro
        epoch, pos = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            self._perm = self._np.random.default_rng([self.seed, epoch]).permutation(len(self.enc))
            self._epoch = epoch
        rows = self._perm[pos * self.batch_size : (pos + 1) * self.batch_size].tolist()
        return collate(self.enc, rows, self.pad_id)


class PieceCache:
    """Word pieces of every entity and relation text, tokenised once; triples and pairs assembled
    from them (the same ids and segments as :func:`encode_triples`, without tokenising again).

    Link prediction scores every entity for every test triple: assembling from cached pieces
    makes building those inputs cost almost nothing next to the forward passes."""

    def __init__(self, tokenizer, texts: dict[str, str]):
        keys = list(texts)
        pieces = tokenizer([texts[k] for k in keys], add_special_tokens=False, verbose=False)["input_ids"]
        self.pieces = dict(zip(keys, pieces))
        self.cls, self.sep = tokenizer.cls_token_id, tokenizer.sep_token_id

    def triple(self, h: str, r: str, t: str, max_len: int) -> tuple[list[int], list[int], bool]:
        """``([CLS] h [SEP] r [SEP] t [SEP], segments 0/1/0, cut)``, the longest part cut first."""
        a, b, c = list(self.pieces[h]), list(self.pieces[r]), list(self.pieces[t])
        cut = False
        while len(a) + len(b) + len(c) > max_len - 4:
            max((a, b, c), key=len).pop()
            cut = True
        ids = [self.cls, *a, self.sep, *b, self.sep, *c, self.sep]
        return ids, [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * (len(c) + 1), cut

    def pair(self, h: str, t: str, max_len: int) -> tuple[list[int], list[int], bool]:
        """``([CLS] h [SEP] t [SEP], segments 0/1, cut)`` (KG-BERT(b)'s input)."""
        a, c = list(self.pieces[h]), list(self.pieces[t])
        cut = False
        while len(a) + len(c) > max_len - 3:
            max((a, c), key=len).pop()
            cut = True
        return [self.cls, *a, self.sep, *c, self.sep], [0] * (len(a) + 2) + [1] * (len(c) + 1), cut


def resolve_max_seq_len(requested: int | None, max_positions: int) -> int:
    """128 (or ``requested``) capped at the model's positions; a warning when ``requested`` is too long."""
    if requested is None:
        return min(128, max_positions)
    if requested > max_positions:
        warn(f"--max-seq-len {requested} exceeds the model's {max_positions} positions; using {max_positions}")
        return max_positions
    return requested
