"""Fine-tuning tasks: the nine GLUE tasks, the demo tasks, and tasks over any CSV/TSV/JSONL files.

``get_task(name, data_dir)`` is the one entry point. Names follow the Hugging
Face GLUE names (``cola sst2 mrpc stsb qqp mnli qnli rte wnli``); ``glue``
means every GLUE task found under a GLUE download (see :func:`glue_tasks_in`);
``polarity``, ``uncertainty`` and ``bbc-topic`` are the demo tasks; any other
name with ``text_column`` set is a file task.
"""

from __future__ import annotations

from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.tasks.files import DEMO_TASKS, demo_data_dir, demo_task, file_task
from lvbert.tasks.glue import GLUE_TASKS
from lvbert.tasks.task import Example, Layout, Split, Task, read_examples

TASK_NAMES = (*GLUE_TASKS, "glue", *DEMO_TASKS)

__all__ = [
    "DEMO_TASKS",
    "GLUE_TASKS",
    "TASK_NAMES",
    "Example",
    "Layout",
    "Split",
    "Task",
    "demo_data_dir",
    "get_task",
    "glue_tasks_in",
    "read_examples",
]


def get_task(
    name: str,
    data_dir: str | Path | None = None,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    labels: tuple[str, ...] | list[str] | None = None,
    regression: bool = False,
    need_train: bool = True,
) -> Task:
    """Resolve a task name (see the module docstring). Column options are only for file tasks."""
    key = name.strip().lower()
    column_opts = text_column or text_pair_column or label_column or regression
    if key in GLUE_TASKS or key in DEMO_TASKS:
        if column_opts:
            raise LvBertError(f"--text-column/--text-pair-column/--label-column/--regression are for file tasks, not {key}")
        if key in DEMO_TASKS:
            return demo_task(key, data_dir, labels=labels, need_train=need_train)
        return GLUE_TASKS[key]
    if key == "glue":
        raise LvBertError("'glue' names several tasks; resolve it with glue_tasks_in(data_dir)")
    if not text_column:
        raise LvBertError(
            f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}, "
            "or name your own task and give --text-column (and --label-column) for CSV/TSV/JSONL files"
        )
    if data_dir is None:
        raise LvBertError(f"task {name}: give --data-dir, the folder with train/dev/test files")
    return file_task(
        name,
        data_dir,
        text_column,
        text_pair_column,
        label_column or "label",
        labels=labels,
        regression=regression,
        need_train=need_train,
    )


def glue_tasks_in(data_dir: str | Path) -> list[tuple[Task, Path]]:
    """Every GLUE task whose folder (``CoLA``, ``SST-2``, ...) exists under ``data_dir``, in GLUE order."""
    root = Path(data_dir)
    if not root.is_dir():
        raise LvBertError(f"GLUE directory {root} does not exist")
    found = [(t, root / t.glue_dir) for t in GLUE_TASKS.values() if (root / t.glue_dir).is_dir()]
    if not found:
        folders = ", ".join(t.glue_dir for t in GLUE_TASKS.values())
        raise LvBertError(f"no GLUE task folders ({folders}) under {root}")
    return found


def model_labels(config) -> tuple[str, ...] | None:
    if config.num_labels == 1 or config.problem_type == "regression":
        return None
    return tuple(str(config.id2label[i]) for i in range(config.num_labels))


def check_model_labels(task: Task, config, model_dir: Path) -> None:
    """A GLUE model must have been fine-tuned for this task's outputs."""
    got = model_labels(config)
    if got != task.labels:
        what = "one regression output" if got is None else f"labels {list(got)}"
        want = "one regression output" if task.labels is None else f"labels {list(task.labels)}"
        raise LvBertError(f"the model in {model_dir} has {what} but task {task.name} needs {want}; "
                          f"give a model fine-tuned on {task.name}")  # fmt: skip


def task_for_model(name: str, data_dir, config, model_dir: Path, text_column: str | None = None,
                   text_pair_column: str | None = None, label_column: str | None = None) -> tuple[Task, Path]:
    """The task ``name`` (with ``data_dir`` and the file-task columns) checked against a fine-tuned
    model's head (its ``config``), and its folder (demo tasks default to the demo cache)."""
    task = get_task(name, data_dir, text_column=text_column, text_pair_column=text_pair_column,
                    label_column=label_column)  # fmt: skip
    check_model_labels(task, config, model_dir)
    data_dir = Path(data_dir) if data_dir else (demo_data_dir(task.name) if task.name in DEMO_TASKS else None)
    if data_dir is None:
        raise LvBertError(f"task {task.name} needs --data-dir")
    return task, data_dir
