"""What a fine-tuning task is: its splits and file layouts, label set, metrics and defaults.

A :class:`Task` is plain data (no torch): the recipes read examples through it,
turn labels into class ids through it and score predictions through it. File
layouts are declared, not coded: a :class:`Layout` names the columns (or, for
header-less files such as CoLA's, the positions) that hold each field.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.tasks import metrics as M
from lvbert.utils import atomic_write_text, read_text_file

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # some GLUE rows (QNLI) are long


@dataclass(frozen=True)
class Example:
    """One row of a split file."""

    index: str  # the file's id column (written back in submission files), else the 0-based row number
    text: str
    text_pair: str | None = None  # second sentence for pair tasks
    label: str | None = None  # label text as written in the file; None in unlabelled test files
    line: int | None = field(default=None, compare=False)  # the line of the file it was read from


@dataclass(frozen=True)
class Layout:
    """Where the fields of one split file live.

    With ``header=True`` fields are column names from the first row; without a
    header they are 0-based column positions. ``fmt`` is ``tsv`` (tab separated,
    no quoting: the GLUE convention), ``csv`` (comma separated, standard quoting)
    or ``jsonl`` (one JSON object per line; fields are keys).
    """

    text: str | int
    pair: str | int | None = None
    label: str | int | None = None  # None: the file carries no labels (test files)
    index: str | int | None = None  # None: the row number is the index
    header: bool = True
    fmt: str = "tsv"
    skip_malformed: bool = False  # skip rows with too few columns (QQP's train file has a few) instead of failing


@dataclass(frozen=True)
class Split:
    file: str  # file name inside the task's data directory
    layout: Layout


@dataclass(frozen=True)
class Task:
    """A fine-tuning task.

    ``labels`` are the class names in class-id order (the model's ``id2label``);
    ``None`` means regression with one real-valued output. ``metrics`` are names
    from :data:`lvbert.tasks.metrics.METRICS`; the task's score (used to pick the
    best epoch) is their mean on the first dev split, as the GLUE score averages a
    task's metrics.
    """

    name: str
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    splits: dict[str, Split]  # split name -> file and layout; must hold "train"
    dev_splits: tuple[str, ...] = ("dev",)
    test_splits: dict[str, str] = field(default_factory=dict)  # test split -> submission file name
    epochs: int = 3  # the official fine-tuning recipe
    both_orders: bool = False  # also train on (pair, text): the official recipe for MRPC, QQP and STS-B
    glue_dir: str | None = None  # sub-folder name in a GLUE download (CoLA, SST-2, ...)
    description: str = ""

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        return self.splits["train"].layout.pair is not None

    def path(self, data_dir: str | Path, split: str) -> Path:
        return Path(data_dir) / self.splits[split].file

    def read(self, data_dir: str | Path, split: str) -> list[Example]:
        """Read one split; user errors (missing file or column, empty split) raise :class:`LvBertError`."""
        if split not in self.splits:
            raise LvBertError(f"task {self.name} has no split {split!r}; it has {', '.join(self.splits)}")
        path = self.path(data_dir, split)
        examples = read_examples(path, self.splits[split].layout, what=f"{self.name} {split}")
        if self.labels is not None:  # a label outside the task's classes is an error, never a new class
            for ex in examples:
                if ex.label is not None and ex.label not in self.labels:
                    line = f":{ex.line}" if ex.line else ""
                    raise LvBertError(f"{path}{line}: label {ex.label!r} of example {ex.index} is not in the label set "
                                      f"{list(self.labels)} of task {self.name}")  # fmt: skip
        return examples

    def label_ids(self, examples: list[Example], where: str = "") -> list:
        """Class ids (classification) or floats (regression) of labelled examples; checks the label set."""
        out = []
        to_id = None if self.labels is None else {name: i for i, name in enumerate(self.labels)}
        for k, ex in enumerate(examples):
            if ex.label is None:
                raise LvBertError(f"{where or self.name}: example {ex.index} has no label")
            if to_id is None:
                try:
                    out.append(float(ex.label))
                except ValueError:
                    raise LvBertError(
                        f"{where or self.name}: label {ex.label!r} of example {ex.index} is not a number "
                        f"(task {self.name} is a regression task)"
                    ) from None
            elif ex.label in to_id:
                out.append(to_id[ex.label])
            else:
                raise LvBertError(
                    f"{where or self.name}: label {ex.label!r} of example {ex.index} is not in the label set "
                    f"{list(self.labels)} of task {self.name}"
                )
        return out

    def evaluate(self, preds: list, labels: list) -> dict[str, float]:
        """Metrics of predictions (class ids or floats) against labels from :meth:`label_ids`."""
        return M.compute(self.metrics, preds, labels)

    def score(self, results: dict[str, dict[str, float]]) -> float:
        """One number per evaluation: the mean of the task's metrics on its first dev split."""
        first = results[self.dev_splits[0]]
        return sum(first[m] for m in self.metrics) / len(self.metrics)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "labels": None if self.labels is None else list(self.labels),
            "metrics": list(self.metrics),
            "dev_splits": list(self.dev_splits),
            "test_splits": dict(self.test_splits),
            "epochs": self.epochs,
            "both_orders": self.both_orders,
        }


# ----------------------------------------------------------------------------- reading


def _rows(path: Path, layout: Layout):
    """Yield (line number, row) where row is a list (tsv/csv) or a dict (jsonl).

    Read through :func:`lvbert.utils.read_text_file` (every command reads task files this one way): a
    binary file or a byte that is not UTF-8 is a one-line error naming the file and line; a BOM
    (MRPC's files start with one) is dropped."""

    text = read_text_file(path, "task file")
    with io.StringIO(text, newline="") as f:
        if layout.fmt == "jsonl":
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LvBertError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise LvBertError(f"{path}:{n}: expected a JSON object per line")
                yield n, row
        elif layout.fmt in ("tsv", "csv"):
            if layout.fmt == "tsv":
                reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            else:
                reader = csv.reader(f)
            for n, row in enumerate(reader, 1):
                if row:
                    yield n, row
        else:
            raise ValueError(f"unknown file format {layout.fmt!r}")


def _str(value) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def read_examples(path: str | Path, layout: Layout, what: str = "") -> list[Example]:
    """Read a split file into examples. Missing files, missing columns, short rows and empty splits raise."""
    path = Path(path)
    what = f" ({what})" if what else ""
    if not path.is_file():
        raise LvBertError(f"missing file {path}{what}")
    fields = {"text": layout.text, "pair": layout.pair, "label": layout.label, "index": layout.index}
    fields = {k: v for k, v in fields.items() if v is not None}
    rows = _rows(path, layout)
    pos: dict[str, int | str] = {}
    if layout.fmt == "jsonl":
        pos = dict(fields)
    elif layout.header:
        first = next(rows, None)
        if first is None:
            raise LvBertError(f"{path} is empty{what}: expected a header row and examples")
        header = [c.strip() for c in first[1]]
        missing = [c for c in fields.values() if c not in header]
        if missing:
            raise LvBertError(
                f"{path}: missing column(s) {', '.join(map(repr, missing))}{what}; the header has {header}"
            )
        pos = {k: header.index(c) for k, c in fields.items()}
    else:
        pos = dict(fields)
    need = max(pos.values()) + 1 if layout.fmt != "jsonl" else 0
    out: list[Example] = []
    skipped = 0
    for n, row in rows:
        if layout.fmt == "jsonl":
            absent = [c for c in pos.values() if c not in row]
            if absent:
                raise LvBertError(f"{path}:{n}: missing key(s) {', '.join(map(repr, absent))}{what}")
            get = {k: _str(row[c]) for k, c in pos.items()}
        else:
            if len(row) < need:
                if layout.skip_malformed:
                    skipped += 1
                    continue
                raise LvBertError(f"{path}:{n}: {len(row)} column(s), expected at least {need}{what}")
            get = {k: row[i] for k, i in pos.items()}
        label = get.get("label")
        out.append(
            Example(
                index=get.get("index", str(len(out))).strip(),
                text=get["text"],
                text_pair=get.get("pair"),
                label=None if label is None else label.strip(),
                line=n,
            )
        )
    if skipped:
        print(f"lvbert: warning: {path}: skipped {skipped} malformed row(s) with fewer than {need} columns", file=sys.stderr)
    if not out:
        raise LvBertError(f"{path} has no examples{what}")
    return out


# ----------------------------------------------------------------------------- writing (augmented copies)


def data_rows(path: str | Path, layout: Layout) -> tuple[list | None, list]:
    """``(header, rows)`` of a split file, ``rows`` aligned with :func:`read_examples` (the same rows
    skipped): lists for tsv/csv, dicts for jsonl; ``header`` is the first row of a file that has one."""
    rows = _rows(Path(path), layout)
    header = None
    if layout.fmt != "jsonl" and layout.header:
        first = next(rows, None)
        header = first[1] if first is not None else None
    fields = [f for f in (layout.text, layout.pair, layout.label, layout.index) if f is not None]
    if layout.fmt == "jsonl":
        return None, [row for _, row in rows]
    pos = [header.index(f) if header is not None else f for f in fields] if fields else [0]
    need = max(pos) + 1
    return header, [row for _, row in rows if not (len(row) < need and layout.skip_malformed)]


def write_rows(path: str | Path, layout: Layout, header: list | None, rows: list) -> None:
    """Write rows in the split file's own format (tsv without quoting, csv, or jsonl), atomically."""

    buf = io.StringIO()
    if layout.fmt == "jsonl":
        for row in rows:
            buf.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif layout.fmt == "csv":
        w = csv.writer(buf, lineterminator="\n")
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    else:
        for row in ([header] if header is not None else []) + rows:
            buf.write("\t".join(str(c).replace("\t", " ").replace("\n", " ") for c in row) + "\n")
    atomic_write_text(path, buf.getvalue())


def with_texts(row, layout: Layout, header: list | None, text: str, pair: str | None, suffix: str,
               label: str | None = None):  # fmt: skip
    """A copy of ``row`` with its text (and pair, and label) replaced and its index column, if any, suffixed."""

    def pos(field):
        return field if layout.fmt == "jsonl" or header is None else header.index(field)

    new = dict(row) if isinstance(row, dict) else list(row)
    new[pos(layout.text)] = text
    if pair is not None and layout.pair is not None:
        new[pos(layout.pair)] = pair
    if label is not None and layout.label is not None:
        new[pos(layout.label)] = label
    if layout.index is not None:
        new[pos(layout.index)] = f"{new[pos(layout.index)]}{suffix}"
    return new
