"""Tasks from any CSV, TSV or JSONL files, and the demo tasks (``polarity``, ``uncertainty``, ``bbc-topic``).

A file task's data directory holds ``train``, ``dev`` (or ``validation``) and
optionally ``test`` files with the extension ``.tsv``, ``.csv`` or ``.jsonl``;
the columns holding the text, the optional second text and the label are named
by the user. Without an explicit label list the classes are the distinct labels
of the training file, sorted (numerically when they are all integers).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.tasks.task import Layout, Split, Task, read_examples

SPLIT_FILES = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}
FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}

DEMO_TASKS = ("polarity", "uncertainty", "bbc-topic")
# The demo tasks' classes as lvbert.data.demo writes them (bbc-topic's are the archive's topic folders,
# recorded in the demo's manifest.json)
DEMO_LABELS = {"polarity": ("neg", "pos"), "uncertainty": ("certain", "uncertain")}


def find_split_file(data_dir: Path, split: str) -> Path | None:
    """The first existing ``<stem><ext>`` for the split's stems and the known extensions."""
    for stem in SPLIT_FILES[split]:
        for ext in FORMATS:
            p = data_dir / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def _sorted_labels(values: set[str]) -> tuple[str, ...]:
    try:
        return tuple(sorted(values, key=int))
    except ValueError:
        return tuple(sorted(values))


def file_task(
    name: str,
    data_dir: str | Path,
    text_column: str,
    text_pair_column: str | None = None,
    label_column: str = "label",
    labels: tuple[str, ...] | list[str] | None = None,
    regression: bool = False,
    index_column: str | None = None,
    need_train: bool = True,
) -> Task:
    """A task over user files. ``labels`` fixes the class order; ``regression`` makes it one real output.

    ``need_train=False`` (prediction) allows a directory with only a test file,
    provided ``labels`` or ``regression`` says what the outputs are.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise LvBertError(f"data directory {data_dir} does not exist (task {name})")
    splits: dict[str, Split] = {}
    for split in SPLIT_FILES:
        path = find_split_file(data_dir, split)
        if path is None:
            continue
        layout = Layout(
            text=text_column,
            pair=text_pair_column,
            label=None if split == "test" else label_column,
            index=index_column,
            fmt=FORMATS[path.suffix],
        )
        splits[split] = Split(path.name, layout)
    required = ("train", "dev") if need_train else ("test",)
    for split in required:
        if split not in splits:
            stems = "/".join(SPLIT_FILES[split])
            raise LvBertError(f"{data_dir}: no {split} file ({stems} with extension {', '.join(FORMATS)}) for task {name}")
    if "train" not in splits:  # prediction only: the layouts below need a train entry for is_pair
        splits["train"] = replace(splits["test"], layout=replace(splits["test"].layout, label=label_column))
    if regression:
        labels = None
    elif labels is None:
        train = read_examples(data_dir / splits["train"].file, splits["train"].layout, what=f"{name} train")
        labels = _sorted_labels({ex.label for ex in train})
        if len(labels) < 2:
            raise LvBertError(f"{data_dir / splits['train'].file}: only one label value {labels[0]!r}; need two or more classes")
    else:
        labels = tuple(str(x) for x in labels)
        if len(labels) < 2:
            raise LvBertError(f"task {name}: give at least two labels, got {list(labels)}")
    metrics = ("pearson", "spearman") if labels is None else ("accuracy", "macro_f1")
    return Task(
        name=name,
        labels=labels,
        metrics=metrics,
        splits=splits,
        test_splits={"test": f"{name}.tsv"} if "test" in splits else {},
        description=f"files in {data_dir}",
    )


def demo_data_dir(name: str, cache: str | Path | None = None) -> Path:
    """``<cache>/demo/tasks/<name>``, the cache being ``$LVBERT_HOME`` or ``~/.cache/lvbert``."""
    try:
        from lvbert.data.demo import demo_dir
    except ImportError:  # the data package is optional here; the rule is the same
        root = Path(cache or os.environ.get("LVBERT_HOME") or Path.home() / ".cache" / "lvbert") / "demo"
    else:
        root = Path(demo_dir(cache))
    return root / "tasks" / name


def demo_task(name: str, data_dir: str | Path | None = None, labels=None, need_train: bool = True) -> Task:
    """A demo task: ``text<TAB>label`` files in the demo cache (or ``data_dir``)."""
    if name not in DEMO_TASKS:
        raise LvBertError(f"unknown demo task {name!r}; choose one of {', '.join(DEMO_TASKS)}")
    path = Path(data_dir) if data_dir is not None else demo_data_dir(name)
    if not path.is_dir():
        raise LvBertError(f"demo task files not found in {path}; prepare the demo data first ('lvbert data --help')")
    task = file_task(name, path, "text", None, "label", labels=labels or demo_labels(name, path), need_train=need_train)
    return replace(task, description=f"demo task {name}")


def demo_labels(name: str, path: Path) -> tuple[str, ...] | None:
    """A demo task's fixed classes: a label outside them in any split is an error, not a new class.
    bbc-topic's come from the demo's ``manifest.json`` (``<demo>/tasks/<name>`` lies two levels below it)."""

    try:
        manifest = json.loads((path.parent.parent / "manifest.json").read_text(encoding="utf-8"))
        return tuple(manifest["tasks"][name]["labels"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEMO_LABELS.get(name)
