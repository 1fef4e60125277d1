"""A deploy folder, which serves a fine-tuned classifier without lvbert, and serving latency measured for real.

``write_deploy_folder`` copies a model folder's ``model.onnx`` next to what a server needs to use it:
``tokenizer.json`` (Hugging Face tokenizers), ``labels.json`` (the labels in output order, the maximum
length, the padding id), the model's ``config.json`` and a ``README.md`` whose Python example uses
only onnxruntime, tokenizers and numpy. ``lvbert predict --runtime onnx`` reads the folder too.

``serving_latency`` times a model the way it is served: one request of ``batch`` sequences of
``seq_len`` tokens at a fixed number of threads, the median of ``repeats`` runs after a warm-up."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import torch

from lvbert.errors import LvBertError
from lvbert.tasks import Task
from lvbert.utils import atomic_write_json, atomic_write_text, staging_folder

DEPLOY_FILES = ("model.onnx", "tokenizer.json", "labels.json", "config.json", "README.md")

EXAMPLE = '''import json

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

meta = json.load(open("labels.json"))
tok = Tokenizer.from_file("tokenizer.json")
tok.enable_truncation(meta["max_seq_len"])
tok.enable_padding(pad_id=meta["pad_id"])
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
enc = tok.encode_batch(TEXTS)
feed = {name: np.array([getattr(e, attr) for e in enc], dtype=np.int64)
        for name, attr in (("input_ids", "ids"), ("attention_mask", "attention_mask"), ("token_type_ids", "type_ids"))}
logits = session.run(None, feed)[0]
print([meta["labels"][i] for i in logits.argmax(-1)])
'''


def example_code(texts: list) -> str:
    """The README's example with ``texts`` (strings, or (text, pair) tuples for a pair task) as its input."""
    return EXAMPLE.replace("TEXTS", repr(list(texts)))


def write_deploy_folder(model_dir: Path, dest: Path, task: Task, max_seq_len: int, pad_id: int, examples: list,
                        summary: str = "") -> Path:  # fmt: skip
    """``dest`` with :data:`DEPLOY_FILES` from ``model_dir`` (which holds ``model.onnx``, its tokenizer and
    config), written atomically; ``examples`` are the README example's inputs; ``summary`` a line about the
    model (size, accuracy, speed) for the README. Returns ``dest``."""
    model_dir, dest = Path(model_dir), Path(dest)
    for name in ("model.onnx", "tokenizer.json", "config.json"):
        if not (model_dir / name).is_file():
            raise LvBertError(f"{model_dir} has no {name}; it cannot be deployed (export it first: lvbert export)")
    if task.is_regression:
        raise LvBertError(f"task {task.name} is a regression; the deploy folder serves classifiers")
    with staging_folder(dest) as tmp:
        for name in ("model.onnx", "tokenizer.json", "config.json"):
            shutil.copyfile(model_dir / name, tmp / name)
        for name in ("tokenizer_config.json", "special_tokens_map.json"):  # lvbert predict reads the tokenizer back
            if (model_dir / name).is_file():
                shutil.copyfile(model_dir / name, tmp / name)
        atomic_write_json(tmp / "labels.json", {"task": task.name, "labels": list(task.labels),
                                                "max_seq_len": max_seq_len, "pad_id": pad_id,
                                                "pair": task.is_pair})  # fmt: skip
        pair = ("\nA pair task: pass `(text, text_pair)` tuples to `encode_batch`.\n" if task.is_pair else "")
        atomic_write_text(tmp / "README.md", f"""# {task.name}: an int8 ONNX classifier

{summary}

Runs with onnxruntime and tokenizers only (`pip install onnxruntime tokenizers numpy`), from this folder:

```python
{example_code(examples).rstrip()}
```
{pair}
Files: `model.onnx` (int8 weights and activations), `tokenizer.json`, `labels.json` (labels in output
order, maximum length, padding id), `config.json` (the lvbert model configuration). With lvbert installed,
`lvbert predict --model . --task {task.name} --runtime onnx --data-dir DIR --out OUT` reads this folder too.
""")
    return dest


def serving_latency(run, batch: dict, repeats: int = 20, warmup: int = 3) -> dict:
    """Median, fastest and slowest wall time in ms of ``run(batch)`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        run(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3),
            "max_ms": round(max(times), 3), "repeats": repeats}  # fmt: skip


def latency_batch(batch_size: int, seq_len: int, vocab_size: int, seed: int = 0) -> dict:
    """A request of ``batch_size`` full-length sequences of random tokens (ids 5.. to skip special tokens)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}


def torch_runner(model):
    """``run(batch)`` of a torch classifier in eval mode without gradients."""
    model = model.eval()

    def run(batch: dict):
        with torch.inference_mode():
            return model(**batch).logits

    return run
