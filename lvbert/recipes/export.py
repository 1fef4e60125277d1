"""Recipe: export a fine-tuned (or quantized) classifier to ONNX (``lvbert export``).

``model.onnx`` goes into the model folder (or ``--out``), where ``lvbert predict --runtime onnx``
finds it. A model that is not quantized exports as fp32, or with ``--dynamic-int8`` as
onnxruntime's post-training dynamic int8 (the baseline a user would try first); a quantized model
(``lvbert quantize``) with 8-bit activations exports as int8 with its learned scales
(:mod:`lvbert.export.onnx`), which needs ``--task`` for a few calibration batches of its training
split. With ``--task``, the predictions of the ONNX model are compared with the torch model's on the
task's first dev split and the agreement printed (and written to ``export.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.export.onnx import ONNX_FILE, export_checked, require_deploy
from lvbert.model_dir import check_model_weights, load_finetuned, load_model_tokenizer
from lvbert.options import option
from lvbert.tasks import task_for_model
from lvbert.tasks.encoding import IndexedBatches, encode_task, resolve_max_seq_len
from lvbert.utils import atomic_write_json, check_out_dir, check_output_file

EXPORT_JSON = "export.json"


@dataclass
class ExportConfig:
    """Everything ``lvbert export`` takes."""

    model: str = option("a fine-tuned or quantized model folder", default=None)
    out: str | None = option("folder for model.onnx (default: the model folder)", default=None)
    dynamic_int8: bool = option("onnxruntime's post-training dynamic int8 (models that are not quantized)", default=False)
    portable: bool = option("standard ONNX operators only: an int8 model stays a QDQ graph other runtimes read too, "
                            "instead of onnxruntime's faster integer matmuls", default=False)  # fmt: skip
    task: str | None = option("the model's task: calibration batches (quantized models) and the agreement check",
                              default=None)  # fmt: skip
    data_dir: str | None = option("the task's folder (demo tasks default to the demo cache)", default=None)
    calib_batches: int = option("training batches for the int8 calibration", default=4)
    batch_size: int = option("calibration batch size", default=16)
    text_column: str | None = option("file tasks: column with the text", default=None)
    text_pair_column: str | None = option("file tasks: column with the second text", default=None)
    label_column: str | None = option("file tasks: column with the label", default=None)
    overwrite: bool = option("replace a model.onnx (and export.json) already in the output folder", default=False)

    def __post_init__(self) -> None:
        if not self.model:
            raise LvBertError("--model is required")
        if self.calib_batches < 1 or self.batch_size < 1:
            raise LvBertError("--calib-batches and --batch-size must be at least 1")


def export(cfg: ExportConfig) -> Path:
    """Write ``model.onnx`` as configured (module docstring); returns its path."""

    model_dir = Path(cfg.model)
    out = check_out_dir(cfg.out or model_dir)
    for name in (ONNX_FILE, EXPORT_JSON):  # before any work: an earlier export is replaced only on request
        check_output_file(out / name, overwrite=cfg.overwrite)
    require_deploy()
    check_model_weights(model_dir, "--model")
    model = load_finetuned(model_dir)
    spec = getattr(model.config, "quantization", None) or {}
    int8_static = bool(spec.get("act_bits"))
    if int8_static and not cfg.task:
        raise LvBertError(f"{model_dir} is quantized with 8-bit activations: its int8 export needs --task (and "
                          "--data-dir) for calibration batches")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    calib = dev_enc = None
    pad = 0
    if cfg.task:
        tokenizer = load_model_tokenizer(model_dir, model.config.vocab_size)
        pad = tokenizer.pad_token_id or 0
        task, data_dir = task_for_model(cfg.task, cfg.data_dir, model.config, model_dir, cfg.text_column, cfg.text_pair_column,
                                     cfg.label_column)
        max_len = resolve_max_seq_len(None, model.config.max_position_embeddings)
        train, dev = encode_task(task, data_dir, tokenizer, max_len)
        batches = IndexedBatches(train, cfg.batch_size, 0, pad)
        calib = [{k: v for k, v in batches(i).items() if k != "labels"} for i in range(cfg.calib_batches)]
        dev_enc = next(iter(dev.values()))
    res = export_checked(model, out, calib, dev_enc, pad, cfg.dynamic_int8, cfg.portable)
    res["kind"] = "dynamic-int8" if cfg.dynamic_int8 else ("int8 (learned scales)" if int8_static else "fp32")
    atomic_write_json(out / EXPORT_JSON, res)
    return out / ONNX_FILE
