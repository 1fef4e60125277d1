"""A fine-tuned classifier run by the runtime a user serves with: ``torch`` (the folder's weights; a
quantized model fake-quantized), ``torchao`` (int8 dense layers) or ``onnx`` (the folder's
``model.onnx`` through onnxruntime); the predictions as submission-file lines."""

from __future__ import annotations

from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.model_dir import check_model_weights, load_finetuned, load_model_config, load_model_tokenizer
from lvbert.tasks import Task
from lvbert.tasks.encoding import encode, logits_to_predictions, predict_logits, resolve_max_seq_len
from lvbert.training.distributed import pick_device


def evaluate_onnx(onnx, task: Task, dev: dict, batch_size: int, pad_id: int) -> dict:
    """As :func:`lvbert.tasks.encoding.evaluate_splits` for an ``OnnxClassifier``: {split: {metric: value}}."""
    return {split: task.evaluate(logits_to_predictions(task, onnx.predict_logits(enc, batch_size, pad_id)), enc.labels)
            for split, enc in dev.items()}  # fmt: skip


def format_predictions(task: Task, preds: list) -> list[str]:
    if task.is_regression:
        return [f"{p:.3f}" for p in preds]
    return [task.labels[p] for p in preds]



class Predictor:
    """A fine-tuned model and its tokenizer, loaded once."""

    def __init__(self, model_dir: Path, max_seq_len: int | None, batch_size: int, bf16: bool, device: str = "auto",
                 runtime: str = "torch"):  # fmt: skip
        self.model_dir = model_dir
        self.config = load_model_config(model_dir)
        self.tokenizer = load_model_tokenizer(model_dir, self.config.vocab_size)
        self.max_seq_len = resolve_max_seq_len(max_seq_len, self.config.max_position_embeddings)
        self.batch_size, self.bf16 = batch_size, bf16
        if runtime != "onnx":  # the onnx runtime reads model.onnx only
            check_model_weights(model_dir, "--model")
        if runtime == "onnx":
            from lvbert.export.onnx import OnnxClassifier

            self.model, self.onnx = None, OnnxClassifier(model_dir)
        elif runtime == "torchao":
            from lvbert.export.torchao import torchao_int8

            self.model, self.onnx = torchao_int8(load_finetuned(model_dir)), None  # int8 kernels: CPU
        else:
            self.model, self.onnx = load_finetuned(model_dir).to(pick_device(device)), None  # quantized: fake-quant

    def lines(self, task: Task, examples, where: str) -> str:
        enc = encode(self.tokenizer, examples, self.max_seq_len, where)
        pad = self.tokenizer.pad_token_id or 0
        if self.onnx is not None:
            logits = self.onnx.predict_logits(enc, self.batch_size, pad)
            if logits.shape[-1] != self.config.num_labels:
                raise LvBertError(f"{self.model_dir}/model.onnx gives {logits.shape[-1]} outputs but the model in "
                                  f"{self.model_dir} has {self.config.num_labels}; it is another model's export: re-run "
                                  f"lvbert export --model {self.model_dir} --overwrite")  # fmt: skip
        else:
            logits = predict_logits(self.model, enc, self.batch_size, pad, self.bf16)
        preds = format_predictions(task, logits_to_predictions(task, logits))
        return "index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in zip(enc.index, preds))

