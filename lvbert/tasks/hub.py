"""GLUE and SQuAD from where Hugging Face users keep them: the hub (``nyu-mll/glue``,
``rajpurkar/squad``, ``rajpurkar/squad_v2``) through ``datasets``, another hub copy
(``--dataset NAME[:CONFIG]``, a hub name or a local folder in a hub repository's layout), or a
folder written by ``DatasetDict.save_to_disk``.

The rows are written once into lvbert's cache in the layouts the rest of lvbert reads (JSON lines
with the hub's column names for GLUE, the official JSON for SQuAD), so the task definitions,
metrics, fine-tuning and submission files are the same whichever way the data came:

    $LVBERT_HOME/hub/<task>/<fingerprint>/   train.jsonl, dev.jsonl, test.jsonl (GLUE; MNLI: dev_matched ...)
                                             train.json, dev.json (SQuAD)

Hub columns (``datasets.load_dataset("nyu-mll/glue", task)``): ``idx`` and ``label`` everywhere, the
texts in ``sentence`` (CoLA, SST-2), ``sentence1``/``sentence2`` (MRPC, STS-B, RTE, WNLI),
``question1``/``question2`` (QQP), ``premise``/``hypothesis`` (MNLI), ``question``/``sentence``
(QNLI). Labels are class ids whose names the dataset's ``ClassLabel`` gives; unlabelled test rows
carry ``-1``. Splits: ``train``, ``validation`` (MNLI ``validation_matched`` /
``validation_mismatched``), ``test`` (MNLI ``test_matched`` / ``test_mismatched``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.tasks.glue import GLUE_TASKS
from lvbert.tasks.task import Layout, Split, Task
from lvbert.utils import atomic_write_text, lvbert_home, staging_folder

HUB_GLUE = "nyu-mll/glue"
HUB_SQUAD = {"squad": "rajpurkar/squad", "squad2": "rajpurkar/squad_v2"}
GLUE_COLUMNS = {  # task -> (text column, pair column) on the hub
    "cola": ("sentence", None),
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}
HUB_SPLITS = {"validation": "dev", "validation_matched": "dev_matched", "validation_mismatched": "dev_mismatched"}
FORMAT = 1  # bump when the written layout changes, so older cache folders are rebuilt


def is_saved_dataset(folder: str | Path | None) -> bool:
    """True for a folder written by ``DatasetDict.save_to_disk`` (or ``Dataset.save_to_disk``)."""
    if folder is None:
        return False
    folder = Path(folder)
    return (folder / "dataset_dict.json").is_file() or (folder / "dataset_info.json").is_file() and (
        folder / "state.json").is_file()  # fmt: skip


def parse_dataset_spec(spec: str | None, task: str) -> tuple[str, str | None]:
    """``--dataset NAME[:CONFIG]`` (default: the task's hub dataset) -> (name or folder, config or None)."""
    if not spec:
        if task in GLUE_TASKS:
            return HUB_GLUE, task
        if task in HUB_SQUAD:
            return HUB_SQUAD[task], None
        raise LvBertError(f"task {task} has no hub dataset; give --data-dir")
    name, config = str(spec), None
    if ":" in name and not Path(name).exists():
        name, _, config = name.rpartition(":")
    if task in GLUE_TASKS and not config:
        config = task
    return name, config or None


def load_dataset_dict(name: str, config: str | None = None):
    """A ``DatasetDict`` from a hub name, a local folder in a hub repository's layout, or a
    ``save_to_disk`` folder; a one-line error when it cannot be had (no network, no such dataset)."""
    import datasets

    if is_saved_dataset(name):
        loaded = datasets.load_from_disk(str(name))
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
    try:
        return datasets.load_dataset(name, config)
    except Exception as e:  # datasets / huggingface_hub raise many types for "not reachable" and "not found"
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        where = f"{name}" + (f" ({config})" if config else "")
        raise LvBertError(f"cannot load the dataset {where} from the Hugging Face hub: {reason}; without network "
                          "access download the files and give them: --data-dir (the official layout or a "
                          "DatasetDict.save_to_disk folder), --train-file and --dev-file for SQuAD") from None  # fmt: skip


def _fingerprint(dd, *parts) -> str:
    h = hashlib.sha256(json.dumps([FORMAT, *parts], sort_keys=True).encode())
    for split in sorted(dd):
        h.update(f"{split}:{getattr(dd[split], '_fingerprint', '')}:{len(dd[split])}".encode())
    return h.hexdigest()[:16]


def _label_names(dataset) -> list[str] | None:
    feature = dataset.features.get("label")
    return list(feature.names) if hasattr(feature, "names") else None


def _check_columns(dataset, needed: list[str], where: str) -> None:
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise LvBertError(f"{where} has no column {missing[0]!r} (its columns: {', '.join(dataset.column_names)}); "
                          "give the hub's layout or --data-dir with the official files")  # fmt: skip


def glue_from_hub(task_name: str, dd, cache: Path | None = None, source: str = "") -> tuple[Task, Path]:
    """The GLUE task ``task_name`` over a hub ``DatasetDict``: (task with JSON-lines layouts, data folder)."""
    base = GLUE_TASKS[task_name]
    text, pair = GLUE_COLUMNS[task_name]
    splits = {HUB_SPLITS.get(s, s): s for s in dd}
    wanted_dev = [d for d in base.dev_splits if d in splits]
    if "train" not in splits or not wanted_dev:
        raise LvBertError(f"the dataset {source or task_name} has splits {', '.join(dd)}; {task_name} needs train and "
                          f"{' / '.join(h for h, o in HUB_SPLITS.items() if o in base.dev_splits) or 'validation'}")  # fmt: skip
    folder = (cache or lvbert_home() / "hub") / task_name / _fingerprint(dd, task_name, source)
    if not (folder / "done.json").is_file():
        with staging_folder(folder) as tmp:
            for ours, hub_split in splits.items():
                ds = dd[hub_split]
                _check_columns(ds, [c for c in (text, pair, "label") if c], f"split {hub_split} of {source or task_name}")
                names = _label_names(ds)
                lines = []
                for k, row in enumerate(ds):
                    label = row["label"]
                    if label is None or hub_split.startswith("test") or label < 0:
                        label = None  # an unlabelled test row (the hub writes -1)
                    elif base.labels is None:
                        label = str(float(label))
                    elif names and set(base.labels) <= set(names) and base.labels != ("0", "1"):
                        label = names[int(label)]  # NLI tasks: the class names, in lvbert's order
                    else:
                        label = str(int(label))
                    rec = {"idx": str(row.get("idx", k)), text: row[text], "label": label}
                    if pair:
                        rec[pair] = row[pair]
                    lines.append(json.dumps(rec, ensure_ascii=False))
                atomic_write_text(tmp / f"{ours}.jsonl", "\n".join(lines) + ("\n" if lines else ""))
            atomic_write_text(tmp / "done.json", json.dumps({"task": task_name, "source": source}) + "\n")
    labelled = Layout(text=text, pair=pair, label="label", index="idx", fmt="jsonl")
    unlabelled = replace(labelled, label=None)
    new_splits = {s: Split(f"{s}.jsonl", unlabelled if s in base.test_splits else labelled) for s in splits}
    task = replace(base, splits=new_splits, dev_splits=tuple(wanted_dev),
                   test_splits={s: f for s, f in base.test_splits.items() if s in splits})  # fmt: skip
    return task, folder


def squad_from_hub(dd, version: str, cache: Path | None = None, source: str = "") -> tuple[Path, Path]:
    """(train.json, dev.json) in the official SQuAD layout from a hub ``DatasetDict`` (``id``, ``title``,
    ``context``, ``question``, ``answers`` = {``text``: [...], ``answer_start``: [...]})."""
    if "train" not in dd or "validation" not in dd:
        raise LvBertError(f"the dataset {source} has splits {', '.join(dd)}; SQuAD needs train and validation")
    name = "squad2" if version == "2.0" else "squad"
    folder = (cache or lvbert_home() / "hub") / name / _fingerprint(dd, name, source)
    if not (folder / "done.json").is_file():
        with staging_folder(folder) as tmp:
            for ours, hub_split in (("train", "train"), ("dev", "validation")):
                ds = dd[hub_split]
                _check_columns(ds, ["id", "context", "question", "answers"], f"split {hub_split} of {source}")
                articles: dict[str, dict] = {}
                for row in ds:
                    title = row.get("title") or ""
                    paragraphs = articles.setdefault(title, {"title": title, "paragraphs": []})["paragraphs"]
                    if not paragraphs or paragraphs[-1]["context"] != row["context"]:
                        paragraphs.append({"context": row["context"], "qas": []})
                    answers = row["answers"] or {"text": [], "answer_start": []}
                    qa = {"id": str(row["id"]), "question": row["question"],
                          "answers": [{"text": t, "answer_start": int(s)}
                                      for t, s in zip(answers["text"], answers["answer_start"])]}  # fmt: skip
                    if version == "2.0":
                        qa["is_impossible"] = not qa["answers"]
                    paragraphs[-1]["qas"].append(qa)
                doc = {"version": version, "data": list(articles.values())}
                atomic_write_text(tmp / f"{ours}.json", json.dumps(doc, ensure_ascii=False))
            atomic_write_text(tmp / "done.json", json.dumps({"task": name, "source": source}) + "\n")
    return folder / "train.json", folder / "dev.json"


def hub_glue_task(task_name: str, dataset: str | None, data_dir) -> tuple[Task, Path] | None:
    """Where a GLUE task's data comes from: ``--dataset`` (a hub copy or hub-layout folder), a
    ``save_to_disk`` folder given as ``--data-dir``, or, with neither and no ``--data-dir``, the hub's
    ``nyu-mll/glue``; returns None when ``data_dir`` is the official layout (read as before)."""
    if task_name not in GLUE_TASKS or (data_dir is not None and not dataset and not is_saved_dataset(data_dir)):
        return None
    if dataset or data_dir is None:
        name, config = parse_dataset_spec(dataset, task_name)
        return glue_from_hub(task_name, load_dataset_dict(name, config), source=f"{name}:{config}")
    return glue_from_hub(task_name, load_dataset_dict(str(data_dir)), source=str(Path(data_dir).resolve()))


def hub_squad_files(task_name: str, dataset: str | None, train_file, dev_file) -> tuple:
    """SQuAD's (train, dev) files: as given, or from ``--dataset`` / the hub (``rajpurkar/squad``,
    ``rajpurkar/squad_v2``) when neither file is given; a ``save_to_disk`` folder may be given as
    ``--dataset`` too."""
    if not dataset and (train_file or dev_file):
        return train_file, dev_file
    version = "2.0" if task_name == "squad2" else "1.1"
    name, config = parse_dataset_spec(dataset, task_name)
    return squad_from_hub(load_dataset_dict(name, config), version, source=f"{name}:{config}")
