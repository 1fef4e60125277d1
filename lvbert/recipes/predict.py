"""Recipe: predict a task's test split(s) with a fine-tuned model and write GLUE submission files.

Each file is ``index<TAB>prediction`` with a header row: class names for the
classification tasks (``0``/``1`` for CoLA, SST-2, MRPC, QQP and WNLI;
``entailment``/``not_entailment`` for QNLI and RTE; ``entailment``/``neutral``/
``contradiction`` for MNLI), floats for STS-B. File names are GLUE's: ``CoLA.tsv``,
``SST-2.tsv``, ``MRPC.tsv``, ``STS-B.tsv``, ``QQP.tsv``, ``MNLI-m.tsv``,
``MNLI-mm.tsv``, ``QNLI.tsv``, ``RTE.tsv``, ``WNLI.tsv`` (and ``AX.tsv`` from the
MNLI model when ``task="glue"`` finds ``diagnostic/diagnostic.tsv``). Other tasks
write ``<task>.tsv``. Every prediction is computed before the first file is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.export.runtime import Predictor
from lvbert.hardware import resolve_runtime
from lvbert.model_dir import load_model_config
from lvbert.options import option
from lvbert.tasks import (
    DEMO_TASKS,
    GLUE_TASKS,
    Task,
    check_model_labels,
    get_task,
    glue_tasks_in,
    model_labels,
    read_examples,
)
from lvbert.tasks.glue import DIAGNOSTIC, DIAGNOSTIC_DIR, DIAGNOSTIC_FILE
from lvbert.tasks.hub import hub_glue_task
from lvbert.training.distributed import check_device
from lvbert.utils import atomic_write_text, check_out_dir, check_output_file, warn

RUNTIMES = ("torch", "torchao", "onnx")


@dataclass
class PredictConfig:
    """Everything ``lvbert predict`` takes."""

    model: str = option("fine-tuned model folder (lvbert finetune --out); for --task glue the folder holding "
                        "<task>/ models", default=None)  # fmt: skip
    task: str = option("a GLUE task, glue, a demo task, or a file task's name with --text-column", default=None)
    data_dir: str | None = option("the task's folder (its test files), the GLUE root for --task glue; demo tasks "
                                  "default to the demo cache", default=None)  # fmt: skip
    out: str = option("folder for the submission files (other files in it are left alone)", default=None)
    batch_size: int = option("sequences per forward pass", default=128)
    max_seq_len: int | None = option("longer inputs are truncated with a warning (default 128, capped at the "
                                     "model's positions)", default=None)  # fmt: skip
    bf16: bool = option("bfloat16 autocast", default=False)
    device: str = option("auto (CUDA when available), cpu, cuda or cuda:N", default="auto")
    text_column: str | None = option("file tasks: column (or JSON key) with the text", default=None)
    text_pair_column: str | None = option("file tasks: column with the second text of a pair", default=None)
    dev_file: str | None = option("squad / squad2: the SQuAD JSON file to answer", default=None)
    dataset: str | None = option("GLUE from another hub dataset: NAME[:CONFIG] or a hub-layout folder (default "
                                 "nyu-mll/glue when no --data-dir is given)", default=None)  # fmt: skip
    runtime: str = option("torch (the model folder's weights; a quantized model runs fake-quantized), torchao "
                          "(int8 dense layers through torchao) or onnx (the folder's model.onnx through onnxruntime: "
                          "int8 for a quantized model); torchao and onnx need the deploy extra", default="torch")  # fmt: skip
    overwrite: bool = option("replace submission files of the same name already in --out", default=False)
    force_runtime: bool = option("use --runtime torchao even on a CPU without VNNI or AMX, where it is 16-25x slower "
                                 "than fp32 (without it: onnx, or torch when there is no model.onnx, with a note)",
                                 default=False)  # fmt: skip

    def __post_init__(self) -> None:
        if self.batch_size < 1 or (self.max_seq_len is not None and self.max_seq_len < 1):
            raise LvBertError("--batch-size and --max-seq-len must be at least 1")
        if self.runtime not in RUNTIMES:
            raise LvBertError(f"--runtime must be {', '.join(RUNTIMES)}, got {self.runtime!r}")
        check_device(self.device)


def run_predict(cfg: PredictConfig) -> list[Path]:
    """Write the submission files of ``cfg.task`` (see :func:`predict`)."""
    for name in ("model", "task", "out"):
        if not getattr(cfg, name):
            raise LvBertError(f"--{name} is required")
    onnx = any(Path(cfg.model).glob("**/model.onnx"))
    runtime = resolve_runtime(cfg.runtime, force=cfg.force_runtime, onnx=onnx) if not cfg.device.startswith("cuda") else cfg.runtime
    return predict(cfg.model, cfg.task, cfg.data_dir, cfg.out, batch_size=cfg.batch_size, max_seq_len=cfg.max_seq_len,
                   bf16=cfg.bf16, device=cfg.device, text_column=cfg.text_column,
                   text_pair_column=cfg.text_pair_column, runtime=runtime, overwrite=cfg.overwrite,
                   dataset=cfg.dataset)  # fmt: skip


def _task_files(pred: Predictor, task: Task, data_dir: Path) -> dict[str, str]:
    """{submission file name: contents} for every test split of ``task``."""
    return {
        name: pred.lines(task, task.read(data_dir, split), f"{task.name} {split}")
        for split, name in task.test_splits.items()
    }


def _check_outputs(out: Path, task: Task, data_dir: Path, overwrite: bool, extra: tuple[str, ...] = ()) -> None:
    """Refuse, before any prediction, a submission file of ``task`` that exists (unless ``overwrite``) or
    that is one of its test files."""

    if not task.test_splits:
        raise LvBertError(f"{data_dir}: no test file for task {task.name} (expected test.tsv/.csv/.jsonl)")
    inputs = {f"{task.name} {split}": task.path(data_dir, split) for split in task.test_splits}
    for name in (*task.test_splits.values(), *extra):
        check_output_file(out / name, inputs=inputs, overwrite=overwrite)


def predict(
    model_dir: str | Path,
    task: str,
    data_dir: str | Path | None,
    out: str | Path,
    batch_size: int = 128,
    max_seq_len: int | None = None,
    bf16: bool = False,
    device: str = "auto",
    text_column: str | None = None,
    text_pair_column: str | None = None,
    runtime: str = "torch",
    overwrite: bool = False,
    dataset: str | None = None,
) -> list[Path]:
    """Write submission files for ``task`` into the folder ``out``; returns their paths.

    Args:
        model_dir: a fine-tuned model (``lvbert finetune --out``); for ``task="glue"`` the
            folder holding one fine-tuned model per task (``<model_dir>/<task>``).
        task: a GLUE task name, ``glue``, a demo task, or a file-task name with ``text_column``.
        data_dir: the task's folder (its ``test`` file(s)), or the GLUE root for ``glue``.
        out: folder for the submission files (other files in it are left alone).
        runtime: ``torch``, ``torchao`` (int8 dense layers) or ``onnx`` (the folder's ``model.onnx`` through onnxruntime).
        overwrite: replace submission files already in ``out`` (else an error before any prediction).
        dataset: a GLUE task's data from a hub dataset (``NAME[:CONFIG]`` or a hub-layout folder); with neither
            it nor ``data_dir``, ``nyu-mll/glue`` (see :mod:`lvbert.tasks.hub`).
    """

    if batch_size < 1 or (max_seq_len is not None and max_seq_len < 1):
        raise LvBertError("--batch-size and --max-seq-len must be at least 1")
    check_device(device)
    model_dir, out = Path(model_dir), check_out_dir(out)
    files: dict[str, str] = {}
    key = task.strip().lower()
    if key == "glue":
        if data_dir is None:
            raise LvBertError("task glue needs --data-dir, the GLUE folder holding CoLA, SST-2, ...")
        tasks = glue_tasks_in(data_dir)
        found = [(t, folder) for t, folder in tasks if (model_dir / t.name / "config.json").is_file()]
        missing = [t.name for t, _ in tasks if not (model_dir / t.name / "config.json").is_file()]
        if not found:
            raise LvBertError(f"no fine-tuned task models (<task>/config.json) under {model_dir}")
        if missing:
            warn(f"no fine-tuned model under {model_dir} for {', '.join(missing)}; their files are not written")
        diagnostic = Path(data_dir) / DIAGNOSTIC_DIR / DIAGNOSTIC.file
        for t, folder in found:
            _check_outputs(out, t, folder, overwrite, (DIAGNOSTIC_FILE,) if t.name == "mnli" and diagnostic.is_file() else ())
        for t, folder in found:
            pred = Predictor(model_dir / t.name, max_seq_len, batch_size, bf16, device, runtime)
            check_model_labels(t, pred.config, pred.model_dir)
            files.update(_task_files(pred, t, folder))
            if t.name == "mnli" and diagnostic.is_file():
                files[DIAGNOSTIC_FILE] = pred.lines(t, read_examples(diagnostic, DIAGNOSTIC.layout, "diagnostic"), "diagnostic")
    else:
        if key in GLUE_TASKS:
            resolved = get_task(key)
            from_hub = hub_glue_task(key, dataset, data_dir)
            if from_hub is not None:
                resolved, data_dir = from_hub
        else:  # demo and file tasks take their labels from the fine-tuned model
            labels = model_labels(load_model_config(model_dir))
            opts = {} if key in DEMO_TASKS else {"text_column": text_column, "text_pair_column": text_pair_column,
                                                 "regression": labels is None}  # fmt: skip
            resolved = get_task(task, data_dir, labels=labels, need_train=False, **opts)
        if data_dir is None:
            if resolved.name not in DEMO_TASKS:
                raise LvBertError(f"task {resolved.name} needs --data-dir")
            from lvbert.tasks import demo_data_dir

            data_dir = demo_data_dir(resolved.name)
        _check_outputs(out, resolved, Path(data_dir), overwrite)
        pred = Predictor(model_dir, max_seq_len, batch_size, bf16, device, runtime)
        if key in GLUE_TASKS:
            check_model_labels(resolved, pred.config, model_dir)
        files.update(_task_files(pred, resolved, Path(data_dir)))
    written = []
    for name, text in files.items():
        atomic_write_text(out / name, text)
        written.append(out / name)
        print(f"wrote {out / name} ({text.count(chr(10)) - 1} predictions)")
    return written
