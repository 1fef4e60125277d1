"""Extractive question answering with a model: batches of SQuAD windows, their start/end logits
(length-sorted batches), the dev scores of a model, and :class:`QuestionAnswerer`, a pipeline for
one question. The plain-Python side (files, windows, post-processing, metrics) is
:mod:`lvbert.tasks.squad`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering

from lvbert.errors import LvBertError
from lvbert.model_dir import load_model_config, load_model_tokenizer, quiet_transformers
from lvbert.tasks.encoding import batched_outputs, pad_rows
from lvbert.tasks.squad import QAExample, apply_threshold, best_threshold, encode_windows, predict_answers, squad_scores
from lvbert.training.distributed import pick_device

QA_FILE = "qa.json"  # the SQuAD settings saved beside a fine-tuned model (version, lengths, threshold)


class WindowBatches:
    """Training batches of windows as a function ``(step, micro)``, epoch permutations from ``(seed, epoch)``."""

    def __init__(self, windows, batch_size: int, seed: int, pad: int):
        self.w, self.batch_size, self.seed, self.pad = windows, batch_size, seed, pad
        self.per_epoch = max(1, math.ceil(len(windows) / batch_size))
        self._np, self._epoch, self._perm = np, -1, None

    def __call__(self, step: int, micro: int = 0) -> dict:
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._perm = self._np.random.default_rng([self.seed, epoch]).permutation(len(self.w))
            self._epoch = epoch
        rows = self._perm[pos * self.batch_size : (pos + 1) * self.batch_size].tolist()
        return collate_windows(self.w, rows, self.pad, labels=True)



def collate_windows(w, rows: list[int], pad: int, labels: bool = False) -> dict:
    batch = pad_rows(w.input_ids, w.token_type_ids, rows, pad)
    if labels:
        batch["start_positions"] = torch.tensor([w.start_positions[i] for i in rows])
        batch["end_positions"] = torch.tensor([w.end_positions[i] for i in rows])
    return batch



@torch.no_grad()
def window_logits(model, w, batch_size: int, pad: int, bf16: bool = False) -> tuple[list, list]:
    """Start and end logits of every window (lists of per-token floats), in window order."""
    starts, ends = [None] * len(w), [None] * len(w)
    lengths = [len(ids) for ids in w.input_ids]
    for rows, out in batched_outputs(model, lengths, lambda rows: collate_windows(w, rows, pad), batch_size, bf16):
        s, e = out.start_logits.float().cpu().tolist(), out.end_logits.float().cpu().tolist()
        for j, i in enumerate(rows):
            starts[i], ends[i] = s[j][: lengths[i]], e[j][: lengths[i]]
    return starts, ends



def score_dev(model, examples, windows, version: str, pad: int, batch_size: int, bf16: bool,
              threshold: float | None = None) -> dict:  # fmt: skip
    """EM / F1 (and for 2.0 the best threshold and the scores at it, or at ``threshold``)."""

    s, e = window_logits(model, windows, batch_size, pad, bf16)
    best, nbest, margins = predict_answers(examples, windows, s, e)
    if version == "1.1":
        return {"scores": squad_scores(examples, best), "predictions": best, "nbest": nbest, "margins": margins}
    found = best_threshold(examples, best, margins)
    t = found["best_f1_thresh"] if threshold is None else threshold
    preds = apply_threshold(best, margins, t)
    return {"scores": {**squad_scores(examples, preds), **found, "threshold": t}, "predictions": preds, "nbest": nbest,
            "margins": margins}  # fmt: skip



class QuestionAnswerer:
    """``QuestionAnswerer("runs/squad")(question=..., context=...)`` -> ``{"answer", "start", "end", "score"}``.

    transformers 5 removed its ``question-answering`` pipeline (a KeyError pointing to
    text-generation), so this stands in for it: the same windows and post-processing as
    ``lvbert predict``; for a SQuAD 2.0 model ``answer`` is "" when the null score wins."""

    def __init__(self, model_dir, device: str = "auto"):
        model_dir = Path(model_dir)
        if not (model_dir / QA_FILE).is_file():
            raise LvBertError(f"{model_dir} is not a SQuAD model (no {QA_FILE})")
        self.qa = json.loads((model_dir / QA_FILE).read_text(encoding="utf-8"))
        config = load_model_config(model_dir)
        self.tokenizer = load_model_tokenizer(model_dir, config.vocab_size)
        with quiet_transformers():
            self.model = AutoModelForQuestionAnswering.from_pretrained(model_dir, local_files_only=True)
        self.model.to(pick_device(device)).eval()

    def __call__(self, question: str, context: str) -> dict:
        ex = QAExample("q", question, context)
        w, _ = encode_windows(self.tokenizer, [ex], self.qa["max_len"], self.qa["doc_stride"], self.qa["max_query"])
        s, e = window_logits(self.model, w, 64, self.tokenizer.pad_token_id or 0)
        best, nbest, margins = predict_answers([ex], w, s, e)
        top = nbest["q"][0] if nbest["q"] else {"text": "", "score": float("-inf")}
        threshold = self.qa.get("threshold")
        if self.qa["version"] == "2.0" and threshold is not None and margins["q"] > threshold:
            return {"answer": "", "start": 0, "end": 0, "score": float(margins["q"])}
        start = context.find(top["text"]) if top["text"] else 0
        return {"answer": top["text"], "start": start, "end": start + len(top["text"]), "score": top["score"]}

