"""``lvbert data prepare``: tokenize a corpus and pack it into fixed-length sequences.

Packing follows ELECTRA's recipe (its build_pretraining_dataset): the sentences of a
document are gathered until they fill a sequence, then split into two
segments ``[CLS] A [SEP] B [SEP]`` (10% of the time one segment only, 5% of
the time a shorter random target length). Two differences from ELECTRA's
script, both so that no text is lost: the tokens that overflow a sequence are
carried into the next one of the same document instead of being cut off, and
a short tail is padded with ``[PAD]`` (id 0 for our tokenizer).

Layout of the output folder (read it with :mod:`lvbert.data.packed`)::

    manifest.json                      what, from where, counts, tokenizer fingerprint
    train_input_ids.npy                [N_train, seq_len] uint16 (int32 for vocabularies > 65535)
    train_token_type_ids.npy           [N_train, seq_len] uint8 (0 for [CLS] A [SEP], 1 for B [SEP])
    valid_input_ids.npy, valid_token_type_ids.npy
    tokenizer/                         a copy of the tokenizer

Determinism: each document gets its own random stream, seeded from
``(seed, document index)``, and worker results are written in input order,
so the same input and seed give byte-identical files for any ``num_proc``.
The corpus is streamed (a bounded number of chunks in flight), and the folder
is built under a temporary name and renamed at the end.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import random
import re
import struct
import warnings
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from lvbert.data.corpus import CorpusStats, iter_documents, resolve_corpus
from lvbert.data.tokenizer import load_tokenizer, vocab_fingerprint
from lvbert.errors import LvBertError
from lvbert.utils import atomic_write_json, check_out_dir, staging_folder

FORMAT = "lvbert-packed-v1"
SPLITS = ("train", "valid")
CHUNK_DOCUMENTS = 256  # documents per unit of work; fixed, so output does not depend on num_proc
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_NPY_HEADER_BYTES = 128


def check_seq_len(seq_len: int, max_positions: int | None) -> None:
    """Raise LvBertError when sequences would not fit the model's position embeddings."""
    if seq_len < 8:
        raise LvBertError(f"--seq-len {seq_len} is too short; use at least 8 (LV-BERT uses 128)")
    if max_positions is not None and seq_len > max_positions:
        raise LvBertError(
            f"--seq-len {seq_len} is longer than the model's {max_positions} positions; "
            f"use --seq-len {max_positions} or less (or a model with more positions)"
        )


# ---------------------------------------------------------------- packing (pure functions)

def _split_sentences(doc: str) -> list[str]:
    sentences = []
    for line in doc.split("\n"):
        sentences.extend(s for s in _SENTENCE_END.split(line) if s.strip())
    return sentences


def _doc_is_valid(seed: int, index: int, valid_fraction: float) -> bool:
    h = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64 < valid_fraction


def _target_length(rng: random.Random, seq_len: int) -> int:
    # ELECTRA: 5% of the sequences get a random shorter length, like fine-tuning inputs
    return rng.randint(5, seq_len) if rng.random() < 0.05 else seq_len


def _segments(sentences: list[list[int]], target: int, rng: random.Random) -> tuple[list[int], list[int], list[int]]:
    """Split gathered sentences into segments A and B that fit ``target``; return (A, B, overflow)."""
    a_target = 10**9 if rng.random() < 0.1 else (target - 3) // 2  # 10%: one segment, as in classification
    a_len, in_b = 0, False
    for s in sentences:
        # a sentence joins A while A is empty or has room (or, when it would overflow A, half of the time)
        if not in_b and (a_len == 0 or a_len + len(s) < a_target or (a_len < a_target and rng.random() < 0.5)):
            a_len += len(s)
        else:
            in_b = True
    tokens = [t for s in sentences for t in s]
    room = target - 3 if a_len < len(tokens) else target - 2
    if a_len < len(tokens) and a_len >= room:  # A alone fills the sequence: one segment
        room = target - 2
        a_len = room
    a_len = min(a_len, room)
    return tokens[:a_len], tokens[a_len:room], tokens[room:]


def pack_document(sentences: list[list[int]], seq_len: int, rng: random.Random) -> list[tuple[list[int], list[int]]]:
    """Pack one document's tokenized sentences into ``(A, B)`` segment pairs (B may be empty)."""
    examples = []
    target = _target_length(rng, seq_len)
    current: list[list[int]] = []
    length = 0
    for s in sentences:
        if not s:
            continue
        current.append(s)
        length += len(s)
        while length >= target - 3:
            a, b, overflow = _segments(current, target, rng)
            examples.append((a, b))
            current, length = ([overflow], len(overflow)) if overflow else ([], 0)
            target = _target_length(rng, seq_len)
    while current:  # the document's tail: a shorter, padded sequence
        a, b, overflow = _segments(current, target, rng)
        examples.append((a, b))
        current = [overflow] if overflow else []
    return examples


def _rows(examples, seq_len: int, cls: int, sep: int, pad: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(examples), seq_len), pad, dtype=dtype)
    types = np.zeros((len(examples), seq_len), dtype=np.uint8)
    for i, (a, b) in enumerate(examples):
        row = [cls, *a, sep, *b, sep] if b else [cls, *a, sep]
        ids[i, : len(row)] = row
        if b:
            types[i, len(a) + 2 : len(row)] = 1
    return ids, types


_STATE: dict = {}


def _init_worker(tokenizer_json: str, settings: dict) -> None:
    _STATE["tok"] = Tokenizer.from_str(tokenizer_json)
    _STATE.update(settings)


def _pack_chunk(first_index: int, docs: list[str]) -> dict:
    """Tokenize and pack a chunk of documents (runs in a worker)."""
    tok, seq_len, seed = _STATE["tok"], _STATE["seq_len"], _STATE["seed"]
    per_doc = [_split_sentences(d) for d in docs]
    flat = [s for sents in per_doc for s in sents]
    encoded = tok.encode_batch(flat, add_special_tokens=False) if flat else []
    out = {s: [] for s in SPLITS}
    counts = {s: {"documents": 0, "tokens": 0} for s in SPLITS}
    last_train_rows = None
    k = 0
    for j, sents in enumerate(per_doc):
        index = first_index + j
        ids = [e.ids for e in encoded[k : k + len(sents)]]
        k += len(sents)
        examples = pack_document(ids, seq_len, random.Random(f"{seed}:{index}"))
        split = "valid" if _doc_is_valid(seed, index, _STATE["valid_fraction"]) else "train"
        out[split].extend(examples)
        counts[split]["documents"] += 1
        counts[split]["tokens"] += sum(len(x) for x in ids)
        if split == "train":
            last_train_rows = len(examples)
    result = {"counts": counts, "last_train_rows": last_train_rows}
    for split in SPLITS:
        result[split] = _rows(out[split], seq_len, _STATE["cls"], _STATE["sep"], _STATE["pad"], _STATE["dtype"])
    return result


# ---------------------------------------------------------------- output files

def _npy_header(dtype, shape) -> bytes:
    """A version-1 .npy header padded to a fixed size, so it can be written last."""
    text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (np.dtype(dtype).str, tuple(shape))
    size = _NPY_HEADER_BYTES - 10
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", size) + (text.ljust(size - 1) + "\n").encode("latin1")


class _NpyAppender:
    """Append rows to a .npy file whose row count is only known at the end."""

    def __init__(self, path: Path, dtype, width: int):
        self.path, self.dtype, self.width, self.rows = path, np.dtype(dtype), width, 0
        self.f = open(path, "wb")
        self.f.write(b"\0" * _NPY_HEADER_BYTES)

    def append(self, array: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(array, dtype=self.dtype).tobytes())
        self.rows += len(array)

    def pop_rows(self, n: int) -> np.ndarray:
        """Remove and return the last ``n`` rows."""
        row_bytes = self.width * self.dtype.itemsize
        end = _NPY_HEADER_BYTES + self.rows * row_bytes
        self.f.flush()
        with open(self.path, "rb") as r:
            r.seek(end - n * row_bytes)
            data = np.frombuffer(r.read(n * row_bytes), dtype=self.dtype).reshape(n, self.width)
        self.f.truncate(end - n * row_bytes)
        self.f.seek(end - n * row_bytes)
        self.rows -= n
        return data

    def close(self) -> None:
        self.f.seek(0)
        self.f.write(_npy_header(self.dtype, (self.rows, self.width)))
        self.f.close()


# ---------------------------------------------------------------- the recipe

def prepare_data(
    corpus: str | os.PathLike | Sequence[str | os.PathLike],
    tokenizer: str | os.PathLike,
    out: str | os.PathLike,
    seq_len: int = 128,
    *,
    valid_fraction: float = 0.02,
    seed: int = 0,
    num_proc: int = 1,
    doc_mode: str = "blank-line",
    text_field: str = "text",
    max_positions: int | None = 512,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Tokenize ``corpus`` with ``tokenizer`` and write packed sequences to ``out``.

    Args:
        corpus: anything :func:`lvbert.data.corpus.iter_documents` reads.
        tokenizer: a local tokenizer folder (see :func:`lvbert.data.tokenizer.load_tokenizer`).
        out: output folder; must not exist unless ``overwrite`` (which replaces prepared data only).
        seq_len: sequence length, [CLS] and [SEP]s included.
        valid_fraction: share of documents held out for validation (whole documents;
            at least one document when there are two or more and the fraction is > 0).
        seed: seeds the packing and the split.
        num_proc: worker processes for tokenizing and packing.
        max_positions: the model's position embeddings; ``seq_len`` must not exceed it.
    Returns the output folder.
    """

    check_seq_len(seq_len, max_positions)
    if not 0.0 <= valid_fraction <= 0.5:
        raise LvBertError(f"--valid-fraction {valid_fraction} must be between 0 and 0.5")
    if num_proc < 1:
        raise LvBertError(f"--num-proc {num_proc} must be at least 1")
    out = check_out_dir(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise LvBertError(f"output folder {out} exists and is not empty; choose another --out or pass --overwrite")
        if not (out / "manifest.json").is_file():
            raise LvBertError(f"--out {out} holds something other than prepared data (no manifest.json); "
                              "refusing to replace it: choose a new folder")  # fmt: skip
    resolve_corpus(corpus)  # fail on a missing path before any work
    tok = load_tokenizer(tokenizer)
    special = {"cls": tok.cls_token_id, "sep": tok.sep_token_id, "pad": tok.pad_token_id}
    vocab_size = len(tok)
    dtype = np.uint16 if vocab_size <= 2**16 else np.int32
    settings = dict(special, seq_len=seq_len, seed=seed, valid_fraction=valid_fraction, dtype=dtype)
    tokenizer_json = tok.backend_tokenizer.to_str()

    with staging_folder(out) as tmp:
        stats = CorpusStats()
        writers = {
            s: (_NpyAppender(tmp / f"{s}_input_ids.npy", dtype, seq_len), _NpyAppender(tmp / f"{s}_token_type_ids.npy", np.uint8, seq_len))
            for s in SPLITS
        }
        counts = {s: {"documents": 0, "tokens": 0} for s in SPLITS}
        last_train_rows = None
        pool = None
        try:
            docs = iter_documents(corpus, doc_mode, text_field, stats)
            chunks = ((i * CHUNK_DOCUMENTS, chunk) for i, chunk in enumerate(iter(lambda: list(islice(docs, CHUNK_DOCUMENTS)), [])))
            bar = tqdm(desc="prepare", unit="doc", disable=not progress)

            def consume(result: dict) -> None:
                nonlocal last_train_rows
                for s in SPLITS:
                    ids, types = result[s]
                    writers[s][0].append(ids)
                    writers[s][1].append(types)
                    for key in counts[s]:
                        counts[s][key] += result["counts"][s][key]
                if result["last_train_rows"] is not None:
                    last_train_rows = result["last_train_rows"]
                bar.update(sum(result["counts"][s]["documents"] for s in SPLITS))
                bar.set_postfix(sequences=writers["train"][0].rows + writers["valid"][0].rows)

            if num_proc == 1:
                _init_worker(tokenizer_json, settings)
                for first, chunk in chunks:
                    consume(_pack_chunk(first, chunk))
            else:
                # a bounded window of chunks in flight keeps memory flat on any corpus size
                pool = mp.get_context("spawn").Pool(num_proc, initializer=_init_worker, initargs=(tokenizer_json, settings))
                window: deque = deque()
                for first, chunk in chunks:
                    window.append(pool.apply_async(_pack_chunk, (first, chunk)))
                    if len(window) >= 2 * num_proc:
                        consume(window.popleft().get())
                while window:
                    consume(window.popleft().get())
            bar.close()

            total_tokens = counts["train"]["tokens"] + counts["valid"]["tokens"]
            if stats.documents == 0:
                raise LvBertError(f"the corpus {', '.join(stats.files)} is empty; give files with text")
            if total_tokens < seq_len - 3:
                raise LvBertError(
                    f"the corpus has only {total_tokens} tokens, less than one sequence of {seq_len}; "
                    "give more text or a smaller --seq-len"
                )
            # a validation split by document, even on a tiny corpus: move the last training document
            if valid_fraction > 0 and writers["valid"][0].rows == 0:
                if counts["train"]["documents"] >= 2 and last_train_rows:
                    for w_train, w_valid in zip(writers["train"], writers["valid"]):
                        w_valid.append(w_train.pop_rows(last_train_rows))
                    counts["valid"]["documents"] += 1
                    counts["train"]["documents"] -= 1
                    counts["valid"]["tokens"] = int(np.count_nonzero(
                        _read_tail_tokens(writers["valid"][0], special)))
                    counts["train"]["tokens"] -= counts["valid"]["tokens"]
                else:
                    warnings.warn("the corpus has a single document, so the validation split is empty; give more documents", stacklevel=2)
            for pair in writers.values():
                for w in pair:
                    w.close()

            tok.save_pretrained(tmp / "tokenizer")
            manifest = {
                "format": FORMAT,
                "seq_len": seq_len,
                "seed": seed,
                "valid_fraction": valid_fraction,
                "packing": "electra: [CLS] A [SEP] B [SEP], overflow carried over, padded tail",
                "doc_mode": doc_mode,
                "text_field": text_field,
                "dtype": np.dtype(dtype).name,
                "tokenizer": {
                    "fingerprint": vocab_fingerprint(tok),
                    "vocab_size": vocab_size,
                    "pad_token_id": tok.pad_token_id,
                    "cls_token_id": tok.cls_token_id,
                    "sep_token_id": tok.sep_token_id,
                    "mask_token_id": tok.mask_token_id,
                    "unk_token_id": tok.unk_token_id,
                    "source": str(Path(tokenizer).expanduser().resolve()),
                    "copy": "tokenizer",
                },
                "splits": {
                    s: {
                        "sequences": writers[s][0].rows,
                        "documents": counts[s]["documents"],
                        "tokens": counts[s]["tokens"],
                        "input_ids": f"{s}_input_ids.npy",
                        "token_type_ids": f"{s}_token_type_ids.npy",
                    }
                    for s in SPLITS
                },
                "sources": {
                    "files": [f if f.startswith("hf:") else str(Path(f).resolve()) for f in stats.files],
                    "documents": stats.documents,
                    "chars": stats.chars,
                    "invalid_utf8_bytes": stats.invalid_bytes,
                },
            }
            atomic_write_json(tmp / "manifest.json", manifest)
        except BaseException:
            for pair in writers.values():
                for w in pair:
                    if not w.f.closed:
                        w.f.close()
            raise
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    return out


def _read_tail_tokens(writer: _NpyAppender, special: dict) -> np.ndarray:
    """Boolean mask of the real (non-special) tokens currently in ``writer``."""
    writer.f.flush()
    row_bytes = writer.width * writer.dtype.itemsize
    with open(writer.path, "rb") as r:
        r.seek(_NPY_HEADER_BYTES)
        ids = np.frombuffer(r.read(writer.rows * row_bytes), dtype=writer.dtype)
    return ~np.isin(ids, [special["cls"], special["sep"], special["pad"]])
