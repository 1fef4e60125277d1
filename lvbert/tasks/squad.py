"""Extractive question answering: SQuAD 1.1 and 2.0 files, sliding windows, post-processing, metrics.

- Reading the official JSON layout (``data -> paragraphs -> qas``; 2.0's ``is_impossible`` and
  ``plausible_answers``). An answer whose text is not at its ``answer_start`` is counted and
  skipped with one warning for training, as the official scripts do.
- Windows as ELECTRA: ``[CLS] question [SEP] context-window [SEP]``, at most 384 tokens, the
  question cut to 64, windows every 128 tokens of context (the doc stride); characters are
  aligned to tokens through the fast tokenizer's offsets. A training window that does not hold
  the answer is labelled with [CLS] (2.0) or dropped (1.1).
- Post-processing: the 20 best start and end positions of every window, spans of at most 30
  tokens inside the context, scored by start + end logit; for 2.0 the null score ([CLS] start +
  end) against the best span with a threshold chosen on dev.
- Metrics written here after the official evaluation scripts: exact match and F1 over
  normalised answers (lower case, no punctuation, no articles, single spaces), the best over
  the gold answers; for 2.0 also the HasAns / NoAns splits and the best threshold.

Plain Python apart from :func:`encode_windows` (a tokenizer) and the logits it post-processes.
"""

from __future__ import annotations

import collections
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from lvbert.errors import LvBertError

MAX_LEN, DOC_STRIDE, MAX_QUERY, N_BEST, MAX_ANSWER = 384, 128, 64, 20, 30


@dataclass
class QAExample:
    qid: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)  # (text, character start)
    is_impossible: bool = False


def read_squad(path: str | Path, version: str = "1.1") -> list[QAExample]:
    """Examples of a SQuAD JSON file; ``version`` 2.0 allows (and keeps) unanswerable questions.

    A field of the wrong type is a one-line error naming the question (id and position) and the field."""
    from lvbert.utils import read_text_file

    path = Path(path)
    if not path.is_file():
        raise LvBertError(f"SQuAD file {path} does not exist")
    text = read_text_file(path, "SQuAD file")
    if not text.strip():
        raise LvBertError(f"SQuAD file {path} is empty; expected SQuAD JSON (data/paragraphs/qas)")
    try:
        data = json.loads(text)
        articles = data["data"]
    except (ValueError, KeyError, TypeError):
        raise LvBertError(f"{path} is not a SQuAD JSON file (no 'data' list of articles)") from None
    out, impossible = [], 0
    try:
        for article in articles:
            for para in article["paragraphs"]:
                context = para["context"]
                for qa in para["qas"]:
                    where = f"{path}: question {len(out)} (id {qa.get('id')!r})"
                    imp = bool(qa.get("is_impossible", False))
                    impossible += imp
                    answers = [_answer(a, where) for a in _answer_list(qa.get("answers", []), where)]
                    out.append(QAExample(str(qa["id"]), qa["question"], context, answers, imp))
    except (KeyError, TypeError, AttributeError) as e:
        raise LvBertError(f"{path} is not in SQuAD's layout (missing {e}); expected data/paragraphs/qas") from None
    if version == "1.1" and impossible:
        raise LvBertError(f"{path} has {impossible} unanswerable questions (is_impossible): it is SQuAD 2.0; use --task squad2")
    if not out:
        raise LvBertError(f"{path} holds no questions")
    return out


def _answer_list(answers, where: str) -> list:
    if not isinstance(answers, list):
        raise LvBertError(f"{where}: 'answers' must be a list of {{'text', 'answer_start'}}, got a "
                          f"{type(answers).__name__}")  # fmt: skip
    return answers


def _answer(a, where: str) -> tuple[str, int]:
    """``(text, answer_start)`` of one answer; its fields checked."""
    if not isinstance(a, dict) or "text" not in a or "answer_start" not in a:
        raise LvBertError(f"{where}: an answer must be {{'text': ..., 'answer_start': ...}}, got {str(a)[:60]}")
    start = a["answer_start"]
    if isinstance(start, str) and start.strip().isdigit() or isinstance(start, float) and start.is_integer():
        start = int(start)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise LvBertError(f"{where}: 'answer_start' must be a character offset (an integer >= 0), got {start!r}")
    if not isinstance(a["text"], str):
        raise LvBertError(f"{where}: an answer's 'text' must be a string, got {a['text']!r}")
    return a["text"], start


# ----------------------------------------------------------------------------- windows


@dataclass
class Windows:
    """The windows of a list of examples: token ids, segments, the example of each, and the context
    offsets needed to map token positions back to characters."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    example: list[int]  # index into the examples
    offsets: list[list[tuple[int, int] | None]]  # per token: (char start, end) in the context, None outside it
    start_positions: list[int] | None = None
    end_positions: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def _cut_question(tokenizer, question: str, max_query: int) -> str:
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= max_query:
        return question
    return question[: enc["offset_mapping"][max_query - 1][1]]


def encode_windows(tokenizer, examples: list[QAExample], max_len: int = MAX_LEN, stride: int = DOC_STRIDE,
                   max_query: int = MAX_QUERY, train: bool = False, version: str = "1.1") -> tuple[Windows, int]:  # fmt: skip
    """Sliding windows over every context; with ``train`` the answer's token span (or [CLS]).

    Returns the windows and the number of training answers skipped because their text does not
    sit at their ``answer_start`` (the official scripts count and skip those too)."""
    questions = [_cut_question(tokenizer, ex.question, max_query) for ex in examples]
    enc = tokenizer(questions, [ex.context for ex in examples], truncation="only_second", max_length=max_len,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)  # fmt: skip
    w = Windows([], [], [], [], [] if train else None, [] if train else None)
    misaligned = 0
    bad_examples = set()
    for i, ids in enumerate(enc["input_ids"]):
        k = enc["overflow_to_sample_mapping"][i]
        seq = enc.sequence_ids(i)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], seq)]
        types = enc["token_type_ids"][i] if "token_type_ids" in enc else [0 if s != 1 else 1 for s in seq]
        ex = examples[k]
        start = end = 0
        if train:
            if ex.is_impossible or not ex.answers:
                if version == "1.1":
                    continue
            else:
                text, char_start = ex.answers[0]
                if ex.context[char_start : char_start + len(text)] != text:
                    if k not in bad_examples:
                        bad_examples.add(k)
                        misaligned += 1
                    continue
                char_end = char_start + len(text)
                tok = [j for j, o in enumerate(offsets) if o is not None and o[0] < char_end and o[1] > char_start]
                if tok and offsets[tok[0]][0] <= char_start and offsets[tok[-1]][1] >= char_end:
                    start, end = tok[0], tok[-1]
                elif version == "1.1":
                    continue  # the answer is not (wholly) in this window
        w.input_ids.append(ids)
        w.token_type_ids.append(types)
        w.example.append(k)
        w.offsets.append(offsets)
        if train:
            w.start_positions.append(start)
            w.end_positions.append(end)
    return w, misaligned


# ----------------------------------------------------------------------------- post-processing


def predict_answers(examples: list[QAExample], windows: Windows, start_logits, end_logits, n_best: int = N_BEST,
                    max_answer: int = MAX_ANSWER) -> tuple[dict, dict, dict]:  # fmt: skip
    """``(best text per qid, n-best lists per qid, null-score margin per qid)``.

    The margin is ``null score - best span score`` (2.0: predict "" when it exceeds the threshold)."""
    by_example = collections.defaultdict(list)
    for i, k in enumerate(windows.example):
        by_example[k].append(i)
    best, nbest, margin = {}, {}, {}
    for k, ex in enumerate(examples):
        spans, null = [], None
        for i in by_example.get(k, []):
            s, e, offs = start_logits[i], end_logits[i], windows.offsets[i]
            score_null = s[0] + e[0]
            null = score_null if null is None else min(null, score_null)
            s_top = sorted(range(len(offs)), key=lambda j: -s[j])[:n_best]
            e_top = sorted(range(len(offs)), key=lambda j: -e[j])[:n_best]
            for a in s_top:
                for b in e_top:
                    if offs[a] is None or offs[b] is None or b < a or b - a + 1 > max_answer:
                        continue
                    spans.append((s[a] + e[b], offs[a][0], offs[b][1], s[a], e[b]))
        spans.sort(key=lambda x: -x[0])
        seen, items = set(), []
        for score, c0, c1, sl, el in spans:
            text = ex.context[c0:c1]
            if text in seen:
                continue
            seen.add(text)
            items.append({"text": text, "score": float(score), "start_logit": float(sl), "end_logit": float(el)})
            if len(items) == n_best:
                break
        nbest[ex.qid] = items
        best[ex.qid] = items[0]["text"] if items else ""
        margin[ex.qid] = (null - items[0]["score"]) if (items and null is not None) else float("inf")
    return best, nbest, margin


# ----------------------------------------------------------------------------- metrics


def normalize_answer(s: str) -> str:
    """Lower case, punctuation and the articles a / an / the removed, whitespace collapsed (the official rule)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not p or not g:  # an empty answer: right only against an empty gold (2.0's no-answer)
        return float(p == g)
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def _golds(ex: QAExample) -> list[str]:
    golds = [t for t, _ in ex.answers if normalize_answer(t)]
    return golds or [""]  # unanswerable: the empty string is the gold answer


def squad_scores(examples: list[QAExample], predictions: dict[str, str]) -> dict:
    """EM and F1 in percent (the best over each question's gold answers); 2.0 splits by HasAns / NoAns."""
    em, f = {}, {}
    for ex in examples:
        pred = predictions.get(ex.qid, "")
        golds = _golds(ex)
        em[ex.qid] = max(exact_match(pred, g) for g in golds)
        f[ex.qid] = max(f1(pred, g) for g in golds)
    out = {"exact": 100 * sum(em.values()) / len(em), "f1": 100 * sum(f.values()) / len(f), "total": len(em)}
    has = [ex.qid for ex in examples if _golds(ex) != [""]]
    no = [ex.qid for ex in examples if _golds(ex) == [""]]
    if no:
        for name, ids in (("HasAns", has), ("NoAns", no)):
            if ids:
                out[f"{name}_exact"] = 100 * sum(em[q] for q in ids) / len(ids)
                out[f"{name}_f1"] = 100 * sum(f[q] for q in ids) / len(ids)
                out[f"{name}_total"] = len(ids)
    return out


def best_threshold(examples: list[QAExample], predictions: dict[str, str], margins: dict[str, float]) -> dict:
    """The null-score threshold that maximises F1 (and EM) on these examples, as the official v2 script.

    A question is answered "" when its margin (null score - best span score) exceeds the threshold."""
    by_qid = {ex.qid: ex for ex in examples}
    out = {}
    for metric, fn in (("exact", exact_match), ("f1", f1)):
        no_ans = {q: max(fn("", g) for g in _golds(by_qid[q])) for q in by_qid}
        with_ans = {q: max(fn(predictions.get(q, ""), g) for g in _golds(by_qid[q])) for q in by_qid}
        score = sum(no_ans.values())  # threshold below every margin: everything answered ""
        best, best_t = score, min(margins.values(), default=0.0) - 1e-6
        for q in sorted(by_qid, key=lambda q: margins.get(q, float("inf"))):
            score += with_ans[q] - no_ans[q]  # raising the threshold to q's margin answers q with its span
            if score > best:
                best, best_t = score, margins.get(q, float("inf"))
        out[f"best_{metric}"] = 100 * best / max(len(by_qid), 1)
        out[f"best_{metric}_thresh"] = best_t
    return out


def apply_threshold(predictions: dict[str, str], margins: dict[str, float], threshold: float) -> dict[str, str]:
    """2.0: the empty answer where the null score beats the best span by more than ``threshold``."""
    return {q: ("" if margins.get(q, float("inf")) > threshold else a) for q, a in predictions.items()}
