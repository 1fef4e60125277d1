"""Corpora given by the user: one iterator of documents over many kinds of input.

A corpus *spec* is one item or a list of items, each of which is
  - a text file (``.txt`` or anything not ``.jsonl``): documents are blocks
    separated by blank lines (``doc_mode="blank-line"``) or single lines
    (``doc_mode="line"``);
  - a ``.jsonl`` file: one JSON object per line, the document in ``text_field``;
  - a folder: every non-hidden file below it, in sorted order, read as above;
    a folder written by ``datasets.Dataset.save_to_disk`` is read as a dataset;
  - a glob pattern (``data/*.txt``);
  - ``hf:NAME[:CONFIG][@SPLIT]``: ``datasets.load_dataset`` in streaming mode
    (needs the Hugging Face hub, i.e. network).

Files are read as UTF-8 in a streaming way; invalid bytes are replaced with
U+FFFD, counted, and reported once per file as a warning.
"""

from __future__ import annotations

import codecs
import glob
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from lvbert.errors import LvBertError

DOC_MODES = ("blank-line", "line")
# A document longer than this (characters) is cut into pieces, so that a file
# with no blank lines never has to be held in memory at once.
MAX_DOCUMENT_CHARS = 1 << 20

_bad_bytes = [0]  # running count of invalid UTF-8 bytes (see _count_and_replace)


def _count_and_replace(err: UnicodeDecodeError):
    _bad_bytes[0] += err.end - err.start
    return "\ufffd", err.end


codecs.register_error("lvbert-count-replace", _count_and_replace)


@dataclass
class CorpusStats:
    """Filled in while a corpus is read."""

    files: list[str] = field(default_factory=list)
    documents: int = 0
    chars: int = 0
    invalid_bytes: int = 0


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (
        path / "state.json"
    ).exists()


def _expand(item: str | os.PathLike) -> list[tuple[str, str]]:
    """One spec item -> list of (kind, location); kind in file/jsonl/saved/hub."""
    s = str(item)
    if s.startswith("hf:"):
        return [("hub", s[3:])]
    path = Path(s).expanduser()
    if path.is_dir():
        if _is_saved_dataset(path):
            return [("saved", str(path))]
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        return [_file_kind(p) for p in files]
    if path.is_file():
        return [_file_kind(path)]
    if any(c in s for c in "*?["):
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(s), recursive=True))
        matches = [p for p in matches if p.is_file()]
        if not matches:
            raise LvBertError(f"no file matches the corpus pattern {s!r}; check the pattern")
        return [_file_kind(p) for p in matches]
    raise LvBertError(
        f"corpus path {s!r} does not exist; give a file, folder or glob (or hf:NAME for a Hugging Face hub dataset)"
    )


def _file_kind(path: Path) -> tuple[str, str]:
    return ("jsonl" if path.suffix == ".jsonl" else "file", str(path))


def resolve_corpus(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[tuple[str, str]]:
    """Check a corpus spec and list its parts as ``(kind, location)``; raises LvBertError."""
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not items:
        raise LvBertError("no corpus given; pass one or more files, folders, globs or hf:NAME")
    parts = [part for item in items for part in _expand(item)]
    if not parts:
        raise LvBertError(f"the corpus {', '.join(map(str, items))} holds no files")
    return parts


def _split_long(doc: str) -> Iterator[str]:
    while len(doc) > MAX_DOCUMENT_CHARS:
        cut = doc.rfind("\n", 0, MAX_DOCUMENT_CHARS)
        cut = cut if cut > 0 else MAX_DOCUMENT_CHARS
        yield doc[:cut]
        doc = doc[cut:].lstrip("\n")
    if doc:
        yield doc


def check_text_file(path: str, sample_bytes: int = 1 << 16) -> None:
    """Refuse a file whose start is mostly not text: NUL bytes (executables, archives, UTF-16) or
    more than 30% bytes that are neither valid UTF-8 nor printable."""
    with open(path, "rb") as f:
        head = f.read(sample_bytes)
    if not head:
        return
    text = head.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") + sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    if b"\x00" in head or bad > 0.3 * len(text):
        raise LvBertError(f"{path} is not a text file (binary data in its first {len(head):,} bytes); give UTF-8 text, "
                          ".jsonl or a saved dataset")  # fmt: skip


def _iter_text_file(path: str, doc_mode: str) -> Iterator[str]:
    check_text_file(path)
    with open(path, encoding="utf-8", errors="lvbert-count-replace", newline=None) as f:
        if doc_mode == "line":
            for line in f:
                line = line.strip()
                if line:
                    yield line
            return
        lines: list[str] = []
        size = 0
        for line in f:
            line = line.strip()
            if line:
                lines.append(line)
                size += len(line) + 1
                if size >= MAX_DOCUMENT_CHARS:
                    yield "\n".join(lines)
                    lines, size = [], 0
            elif lines:
                yield "\n".join(lines)
                lines, size = [], 0
        if lines:
            yield "\n".join(lines)


def _iter_jsonl(path: str, text_field: str) -> Iterator[str]:
    check_text_file(path)
    with open(path, encoding="utf-8", errors="lvbert-count-replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise LvBertError(f"{path}:{lineno} is not valid JSON; each line of a .jsonl file must be one object") from None
            if not isinstance(record, dict) or text_field not in record:
                raise LvBertError(f"{path}:{lineno} has no field {text_field!r}; choose the field with --text-field")
            text = record[text_field]
            if isinstance(text, str) and text.strip():
                yield from _split_long(text.strip())


def _iter_dataset(ds, text_field: str, where: str) -> Iterator[str]:
    columns = getattr(ds, "column_names", None)
    if columns is not None and text_field not in columns:
        raise LvBertError(f"dataset {where} has no column {text_field!r} (columns: {columns}); choose it with --text-field")
    for record in ds:
        text = record.get(text_field)
        if isinstance(text, str) and text.strip():
            yield from _split_long(text.strip())


def _load_saved(path: str):
    import datasets

    ds = datasets.load_from_disk(path)
    if isinstance(ds, datasets.DatasetDict):
        if "train" in ds:
            return ds["train"]
        if len(ds) == 1:
            return next(iter(ds.values()))
        raise LvBertError(f"saved dataset {path} has splits {list(ds)} and none is 'train'; save the split you want")
    return ds


def _load_hub(name: str):
    import datasets

    split = "train"
    if "@" in name:
        name, split = name.rsplit("@", 1)
    config = None
    if ":" in name:
        name, config = name.split(":", 1)
    try:
        return datasets.load_dataset(name, config, split=split, streaming=True)
    except Exception as e:  # network, unknown name, ...: one line for the user
        raise LvBertError(f"could not load hub dataset {name!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                          "this needs network access, or give local files") from None


def iter_documents(
    spec: str | os.PathLike | Sequence[str | os.PathLike],
    doc_mode: str = "blank-line",
    text_field: str = "text",
    stats: CorpusStats | None = None,
) -> Iterator[str]:
    """Yield the documents of a corpus, in a fixed order, as stripped strings.

    Args:
        spec: a file, folder, glob, ``.jsonl``, saved dataset folder or ``hf:NAME`` (or a list of them).
        doc_mode: ``"blank-line"`` (documents separated by blank lines, lines kept with ``\\n``)
            or ``"line"`` (one document per line); only used for plain text files.
        text_field: the text field of ``.jsonl`` records and datasets.
        stats: filled in while reading (files, documents, characters, invalid bytes).
    """
    if doc_mode not in DOC_MODES:
        raise LvBertError(f"unknown document mode {doc_mode!r}; choose one of {', '.join(DOC_MODES)}")
    stats = stats if stats is not None else CorpusStats()
    for kind, where in resolve_corpus(spec):
        stats.files.append(where if kind in ("file", "jsonl", "saved") else f"hf:{where}")
        before = _bad_bytes[0]
        if kind == "file":
            docs: Iterable[str] = _iter_text_file(where, doc_mode)
        elif kind == "jsonl":
            docs = _iter_jsonl(where, text_field)
        elif kind == "saved":
            docs = _iter_dataset(_load_saved(where), text_field, where)
        else:
            docs = _iter_dataset(_load_hub(where), text_field, f"hf:{where}")
        for doc in docs:
            stats.documents += 1
            stats.chars += len(doc)
            yield doc
        bad = _bad_bytes[0] - before
        if bad:
            stats.invalid_bytes += bad
            warnings.warn(
                f"{where}: {bad} bytes of invalid UTF-8 replaced by U+FFFD; re-encode the file as UTF-8 to keep them",
                UnicodeWarning,
                stacklevel=2,
            )
