"""Knowledge graphs for KG-BERT (Yao et al. 2019): reading, entity and relation text, negative
sampling, the rank-based metrics of link and relation prediction, and scoring with a trained model.

Layouts read (a folder):

- KG-BERT's: ``train.tsv``, ``dev.tsv``, ``test.tsv`` (``head<TAB>relation<TAB>tail``, and for
  triple classification a fourth column of ``1`` / ``-1`` labels, as WN11 and FB13 ship), with
  ``entity2text.txt``, optional ``entity2textlong.txt`` and ``relation2text.txt``
  (``id<TAB>text``) and optional ``entities.txt`` / ``relations.txt``;
- OpenKE / pykeen's plain triples: ``train.tsv``, ``valid.tsv`` (or ``dev.tsv``), ``test.tsv``.

Entity and relation text: the description files when there are, else the names cleaned
(``acquired_abnormality`` -> "acquired abnormality", ``/music/artist/origin`` -> "music artist
origin"). Files are read as UTF-8.

Inference of a trained KG-BERT model (torch imported there only): :class:`Inputs` (token ids from
pieces tokenised once), :func:`score_inputs` (batched by length, bf16 optional),
:func:`evaluate_model` (accuracy, link and relation ranks) and :func:`format_results`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lvbert.errors import LvBertError
from lvbert.utils import read_text_file, warn

if TYPE_CHECKING:
    import torch

Triple = tuple[str, str, str]
SPLIT_FILES = {"train": ("train.tsv",), "dev": ("dev.tsv", "valid.tsv"), "test": ("test.tsv",)}
DEMO_GRAPHS = ("umls", "kinships", "nations")
KG_FILE = "kg.json"  # in a KG model folder: what kg train recorded


def clean_name(name: str) -> str:
    """A readable text for an id: path separators, underscores and dots become spaces."""
    text = re.sub(r"[/_.]+", " ", name).strip()
    return re.sub(r"\s+", " ", text) or name


@dataclass
class KnowledgeGraph:
    """The triples of each split, the entity and relation texts, and (triple classification) labels."""

    name: str
    splits: dict[str, list[Triple]]
    labels: dict[str, list[int]]  # split -> 1 / 0 per triple, for splits that carry labels (WN11 / FB13 layout)
    entity_text: dict[str, str]
    relation_text: dict[str, str]
    entities: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # split -> the file it was read from

    def check_split(self, split: str) -> None:
        """A one-line error when ``split`` has no triples (nothing to train on or to evaluate)."""
        if not self.splits.get(split):
            raise LvBertError(f"{self.files.get(split, self.name + ' ' + split)} holds no triples; give a file of "
                              "head<TAB>relation<TAB>tail lines")  # fmt: skip

    @property
    def true_triples(self) -> set[Triple]:
        """Every positive triple of every split (the filter of the filtered setting)."""
        out = set()
        for split, triples in self.splits.items():
            lab = self.labels.get(split)
            out.update(t for i, t in enumerate(triples) if lab is None or lab[i] == 1)
        return out

    def positives(self, split: str) -> list[Triple]:
        lab = self.labels.get(split)
        return [t for i, t in enumerate(self.splits[split]) if lab is None or lab[i] == 1]

    def describe(self) -> str:
        sizes = ", ".join(f"{s} {len(t):,}" for s, t in self.splits.items())
        return f"{self.name}: {len(self.entities):,} entities, {len(self.relations):,} relations; {sizes}"


def _read_pairs(path: Path) -> dict[str, str]:
    out = {}
    for n, line in enumerate(read_text_file(path, "text file").splitlines(), 1):
        if not line.strip():
            continue
        key, _, text = line.partition("\t")
        if not text.strip():
            raise LvBertError(f"{path}:{n}: expected 'id<TAB>text'")
        out[key.strip()] = text.strip()
    return out


def read_triples(path: Path) -> tuple[list[Triple], list[int] | None]:
    """The triples of a ``head<TAB>relation<TAB>tail[<TAB>label]`` file and its labels (1 / 0) if it has them."""

    triples, labels = [], []
    for n, line in enumerate(read_text_file(path, "triple file").splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) < 3 or not all(parts[:3]):
            raise LvBertError(f"{path}:{n}: expected 'head<TAB>relation<TAB>tail', got {line[:80]!r}")
        triples.append((parts[0], parts[1], parts[2]))
        if len(parts) >= 4:
            if parts[3] not in ("1", "-1", "0"):
                raise LvBertError(f"{path}:{n}: the label column must be 1 or -1, got {parts[3]!r}")
            labels.append(1 if parts[3] == "1" else 0)
    if labels and len(labels) != len(triples):
        raise LvBertError(f"{path}: some lines have a label column and others not")
    return triples, (labels or None)


def load_graph(dataset: str | Path, long_text: bool = False) -> KnowledgeGraph:
    """A demo graph by name (``umls``, ``kinships``, ``nations``) or a folder in either layout.

    ``long_text``: use ``entity2textlong.txt`` when present (KG-BERT's FB15k / UMLS long texts).
    """
    path = Path(dataset).expanduser()
    name = str(dataset)
    if not path.is_dir() and str(dataset).lower() in DEMO_GRAPHS:
        from lvbert.tasks.files import demo_data_dir

        path = demo_data_dir("x").parent.parent / "kg" / str(dataset).lower()
        name = str(dataset).lower()
        if not path.is_dir():
            raise LvBertError(f"the demo graph {name} is not in {path.parent}; run 'lvbert data fetch demo' first")
    if not path.is_dir():
        raise LvBertError(f"knowledge graph {dataset!r} is neither a demo graph ({', '.join(DEMO_GRAPHS)}) nor a folder")
    splits, labels, files = {}, {}, {}
    for split, names in SPLIT_FILES.items():
        f = next((path / n for n in names if (path / n).is_file()), None)
        if f is None:
            raise LvBertError(f"{path} has no {split} file ({' or '.join(names)})")
        splits[split], lab = read_triples(f)
        files[split] = f
        if lab is not None:
            labels[split] = lab
    ent_file = path / ("entity2textlong.txt" if long_text and (path / "entity2textlong.txt").exists() else "entity2text.txt")
    entity_text = _read_pairs(ent_file) if ent_file.exists() else {}
    relation_text = _read_pairs(path / "relation2text.txt") if (path / "relation2text.txt").exists() else {}
    if (path / "entities.txt").exists():
        entities = [e.strip() for e in (path / "entities.txt").read_text(encoding="utf-8").splitlines() if e.strip()]
    else:
        entities = sorted({x for ts in splits.values() for h, _, t in ts for x in (h, t)})
    if (path / "relations.txt").exists():
        relations = [r.strip() for r in (path / "relations.txt").read_text(encoding="utf-8").splitlines() if r.strip()]
    else:
        relations = sorted({r for ts in splits.values() for _, r, _ in ts})
    known_e, known_r = set(entities), set(relations)
    for split, ts in splits.items():
        for h, r, t in ts:
            bad = [x for x in (h, t) if x not in known_e]
            if bad:
                raise LvBertError(f"{path}: {split} has the unknown entity {bad[0]!r} (not in entities.txt)")
            if r not in known_r:
                raise LvBertError(f"{path}: {split} has the unknown relation {r!r} (not in relations.txt)")
    if relation_text:
        missing = [r for r in relations if r not in relation_text]
        if missing:
            raise LvBertError(f"{path / 'relation2text.txt'} has no text for relation {missing[0]!r}")
    if entity_text:
        missing = [e for e in entities if e not in entity_text]
        if missing:
            raise LvBertError(f"{ent_file} has no text for entity {missing[0]!r}")
    entity_text = {e: entity_text.get(e, clean_name(e)) for e in entities}
    relation_text = {r: relation_text.get(r, clean_name(r)) for r in relations}
    return KnowledgeGraph(name, splits, labels, entity_text, relation_text, entities, relations, files)


# ----------------------------------------------------------------------------- negatives


def corrupt(triple: Triple, entities: list[str], rng: random.Random, filter_set: set[Triple], side: str | None = None,
            max_tries: int = 1000) -> Triple | None:  # fmt: skip
    """One corrupted triple: the head or tail (``side``, else either with probability 1/2) replaced by a
    uniformly drawn entity so that the result is not in ``filter_set``; None when none is found."""
    h, r, t = triple
    side = side or ("head" if rng.random() < 0.5 else "tail")
    for _ in range(max_tries):
        e = entities[rng.randrange(len(entities))]
        new = (e, r, t) if side == "head" else (h, r, e)
        if new != triple and new not in filter_set:
            return new
    return None


def negatives(positives: list[Triple], entities: list[str], per_positive: int, seed: int, filter_set: set[Triple],
              same_side: bool = False) -> list[Triple]:  # fmt: skip
    """``per_positive`` corrupted triples for each positive, seeded. ``same_side``: all of a positive's
    negatives corrupt the same side (KG-BERT's link-prediction sampling), else each side with p = 1/2."""
    rng = random.Random(seed)
    out = []
    for triple in positives:
        side = ("head" if rng.random() < 0.5 else "tail") if same_side else None
        for _ in range(per_positive):
            neg = corrupt(triple, entities, rng, filter_set, side)
            if neg is not None:
                out.append(neg)
    return out


# ----------------------------------------------------------------------------- ranks and metrics

TIES = ("realistic", "optimistic", "pessimistic")


def rank_of(true_score: float, other_scores, ties: str = "realistic") -> float:
    """The 1-based rank of the true candidate among ``other_scores`` (higher is better).

    Ties (other candidates with exactly the true score) are broken ``optimistic`` (the true one
    first, what KG-BERT's code gives since it puts the true triple first), ``pessimistic`` (last)
    or ``realistic`` (the mean of the two, as pykeen's default)."""
    better = sum(1 for s in other_scores if s > true_score)
    equal = sum(1 for s in other_scores if s == true_score)
    if ties == "optimistic":
        return 1.0 + better
    if ties == "pessimistic":
        return 1.0 + better + equal
    if ties == "realistic":
        return 1.0 + better + equal / 2.0
    raise ValueError(f"unknown tie rule {ties!r}; choose one of {', '.join(TIES)}")


def rank_metrics(ranks: list[float], ks: tuple[int, ...] = (1, 3, 10)) -> dict[str, float]:
    """MR, MRR and Hits@k of a list of 1-based ranks."""
    if not ranks:
        return {"mr": float("nan"), "mrr": float("nan"), **{f"hits@{k}": float("nan") for k in ks}, "count": 0}
    n = len(ranks)
    out = {"mr": sum(ranks) / n, "mrr": sum(1.0 / r for r in ranks) / n}
    for k in ks:
        out[f"hits@{k}"] = sum(1 for r in ranks if r <= k) / n
    out["count"] = n
    return out


def link_candidates(triple: Triple, side: str, entities: list[str], filter_set: set[Triple] | None) -> list[Triple]:
    """Every corruption of ``triple`` on ``side`` (the true triple excluded); with ``filter_set`` the
    filtered setting: corruptions that are known true triples are left out."""
    h, r, t = triple
    out = []
    for e in entities:
        new = (e, r, t) if side == "head" else (h, r, e)
        if new == triple or (filter_set is not None and new in filter_set):
            continue
        out.append(new)
    return out


# ----------------------------------------------------------------------------- inference


def graph_fingerprint(graph) -> str:
    """A digest of a graph's entity and relation sets: tells two graphs apart whatever their paths."""
    text = "\n".join(sorted(graph.entities)) + "\n\t\n" + "\n".join(sorted(graph.relations))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_kg_meta(model_dir) -> dict:
    """What kg train recorded in a KG model folder (task, graph, labels, input length); a one-line error
    when the folder is not a KG model."""
    path = Path(model_dir) / KG_FILE
    if not path.is_file():
        raise LvBertError(f"{model_dir} is not a KG model (no {KG_FILE}); train one with 'lvbert kg train'")
    return json.loads(path.read_text(encoding="utf-8"))


def _texts(graph) -> dict:
    return {**{("e", k): v for k, v in graph.entity_text.items()}, **{("r", k): v for k, v in graph.relation_text.items()}}


class Inputs:
    """Token ids of triples (KG-BERT(a)) or entity pairs (KG-BERT(b)) from pieces tokenised once."""

    def __init__(self, tokenizer, graph, max_len: int | None, task: str):
        from lvbert.tasks.encoding import PieceCache

        texts = _texts(graph)
        self.cache = PieceCache(tokenizer, {f"{k[0]}:{k[1]}": v for k, v in texts.items()})
        self.task = task
        longest = max((len(p) for p in self.cache.pieces.values()), default=1)
        need = (3 * longest + 4) if task != "relation" else (2 * longest + 3)
        self.max_len = min(max_len or min(need, 128), 512)
        self.pad = tokenizer.pad_token_id or 0
        self.cut = 0

    def one(self, h: str, r: str | None, t: str) -> tuple[list[int], list[int]]:
        if self.task == "relation":
            ids, types, cut = self.cache.pair(f"e:{h}", f"e:{t}", self.max_len)
        else:
            ids, types, cut = self.cache.triple(f"e:{h}", f"r:{r}", f"e:{t}", self.max_len)
        self.cut += cut
        return ids, types

    def encoded(self, items, labels=None):
        from lvbert.tasks.encoding import Encoded

        ids, types = [], []
        for h, r, t in items:
            i, ty = self.one(h, r, t)
            ids.append(i)
            types.append(ty)
        return Encoded(ids, types, labels, [str(i) for i in range(len(ids))])


def score_inputs(model, enc, batch_size: int, pad: int, bf16: bool = False, column: int | None = 1,
                 progress: bool = False, desc: str = "score") -> torch.Tensor:  # fmt: skip
    """Logits of every input ([N] of ``column``, or [N, C] when ``column`` is None), in input order;
    through the one batched inference path (:func:`lvbert.tasks.encoding.batched_outputs`)."""
    import torch

    from lvbert.tasks.encoding import batched_outputs, collate

    lengths = [len(ids) for ids in enc.input_ids]
    out = None
    for rows, res in batched_outputs(model, lengths, lambda rows: collate(enc, rows, pad), batch_size, bf16,
                                     progress, desc):  # fmt: skip
        logits = res.logits.float().cpu()
        if out is None:
            out = torch.empty((len(lengths),) if column is not None else (len(lengths), logits.shape[-1]))
        out[rows] = logits[:, column] if column is not None else logits
    return out if out is not None else torch.empty(0)


def evaluate_model(model, tokenizer, graph: KnowledgeGraph, meta: dict, split: str, *, max_test: int | None = None,
                   batch_size: int = 1024, bf16: bool = False, seed: int = 0, ties: str = "realistic",
                   progress: bool = False, quick: bool = False) -> dict:  # fmt: skip
    """Score a KG model on ``split`` of ``graph`` (``meta``: what kg train recorded, :func:`read_kg_meta`).

    Triple classification accuracy (the split's labels, else seeded filtered negatives); for link
    models also head and tail ranks among every entity, raw and filtered; for relation models the
    gold relation's rank. ``max_test``: only the first triples; ``quick``: the accuracy only."""
    task = meta["task"]
    inputs = Inputs(tokenizer, graph, meta["max_seq_len"], task)
    triples = graph.splits[split]
    if max_test is not None:
        triples = triples[:max_test]
    truth = graph.true_triples
    t0 = time.perf_counter()
    if task == "relation":
        pos = [t for i, t in enumerate(triples) if graph.labels.get(split) is None or graph.labels[split][i] == 1]
        logits = score_inputs(model, inputs.encoded(pos), batch_size, inputs.pad, bf16, column=None,
                              progress=progress and not quick, desc="relations")  # fmt: skip
        rel_id = {r: i for i, r in enumerate(meta["labels"])}
        raw, filt = [], []
        for (h, r, t), row in zip(pos, logits.tolist()):
            true_score = row[rel_id[r]]
            others = [s for j, s in enumerate(row) if j != rel_id[r]]
            raw.append(rank_of(true_score, others, ties))
            kept = [s for j, s in enumerate(row) if j != rel_id[r] and (h, meta["labels"][j], t) not in truth]
            filt.append(rank_of(true_score, kept, ties))
        return {"task": task, "split": split, "raw": rank_metrics(raw, (1, 3, 10)),
                "filtered": rank_metrics(filt, (1, 3, 10)), "ties": ties, "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    # triple classification accuracy: the split's own labels, else seeded filtered negatives (one per positive)
    if split in graph.labels:
        cls_triples, cls_labels = triples, graph.labels[split][: len(triples)]
    else:
        negs = negatives(triples, graph.entities, 1, seed + 7919, truth)
        cls_triples, cls_labels = triples + negs, [1] * len(triples) + [0] * len(negs)
    logits = score_inputs(model, inputs.encoded(cls_triples), batch_size, inputs.pad, bf16, column=None)
    pred = logits.argmax(-1).tolist()
    accuracy = sum(int(p == y) for p, y in zip(pred, cls_labels)) / max(len(cls_labels), 1)
    result = {"task": task, "split": split, "accuracy": accuracy, "classified": len(cls_labels)}
    if task == "triple" or quick:
        result["seconds"] = round(time.perf_counter() - t0, 1)
        return result
    # link prediction: every entity on each side, raw and filtered; the score is the logit of "true"
    pos = [t for i, t in enumerate(triples) if graph.labels.get(split) is None or graph.labels[split][i] == 1]
    items, spans = [], []
    for triple in pos:
        for side in ("head", "tail"):
            cands = link_candidates(triple, side, graph.entities, None)
            spans.append((len(items), len(cands)))
            items += [triple] + cands
    scores = score_inputs(model, inputs.encoded(items), batch_size, inputs.pad, bf16, column=1,
                          progress=progress, desc="link prediction").tolist()  # fmt: skip
    ranks = {"raw": {"head": [], "tail": []}, "filtered": {"head": [], "tail": []}}
    k = 0
    for triple in pos:
        for side in ("head", "tail"):
            start, n = spans[k]
            k += 1
            true_score = scores[start]
            cand = items[start + 1 : start + 1 + n]
            cand_scores = scores[start + 1 : start + 1 + n]
            ranks["raw"][side].append(rank_of(true_score, cand_scores, ties))
            ranks["filtered"][side].append(rank_of(true_score, [s for c, s in zip(cand, cand_scores) if c not in truth],
                                                   ties))  # fmt: skip
    seconds = time.perf_counter() - t0
    for setting in ("raw", "filtered"):
        r = ranks[setting]
        result[setting] = {"head": rank_metrics(r["head"]), "tail": rank_metrics(r["tail"]),
                           "both": rank_metrics(r["head"] + r["tail"])}  # fmt: skip
    result.update(ties=ties, scored=len(items), seconds=round(seconds, 1),
                  inputs_per_second=round(len(items) / max(seconds, 1e-9), 1),
                  full_protocol=max_test is None or max_test >= len(graph.splits[split]))  # fmt: skip
    return result


def format_results(r: dict) -> str:
    lines = [f"{r['task']} on {r['split']}" + ("" if r.get("full_protocol", True) else " (first triples only: NOT the "
                                                                                          "full protocol)")]  # fmt: skip
    if "accuracy" in r:
        lines.append(f"  triple classification accuracy {r['accuracy']:.4f} ({r['classified']:,} triples)")
    for setting in ("raw", "filtered"):
        if setting not in r:
            continue
        m = r[setting].get("both", r[setting])
        lines.append(f"  {setting:<8} MR {m['mr']:.2f}  MRR {m['mrr']:.4f}  Hits@1 {m['hits@1']:.4f}  "
                     f"Hits@3 {m['hits@3']:.4f}  Hits@10 {m['hits@10']:.4f}  ({m['count']} ranks)")  # fmt: skip
    if "seconds" in r:
        lines.append(f"  {r['seconds']} s" + (f", {r['inputs_per_second']:,} inputs/s" if "inputs_per_second" in r else ""))
    return "\n".join(lines)


def known_triples(triples: list, graph, path: Path, graph_name: str, allow_unknown: bool = False) -> list:
    """The triples whose entities and relation ``graph`` (named ``graph_name``) knows; an unknown name is an
    error unless ``allow_unknown`` (then one warning per unknown name, and its triples are left out)."""
    known = set(graph.entity_text) | set(graph.entities)
    relations = set(graph.relations)
    unknown: dict[str, str] = {}
    for h, r, t in triples:
        for kind, x, names in (("entity", h, known), ("relation", r, relations), ("entity", t, known)):
            if x not in names:
                unknown.setdefault(x, kind)
    if not unknown:
        return triples
    if not allow_unknown:
        name, kind = next(iter(unknown.items()))
        raise LvBertError(f"{path}: unknown {kind} {name!r} (not in {graph_name}); pass --allow-unknown to skip such "
                          "triples or leave out --dataset to score by the names")  # fmt: skip
    for name, kind in unknown.items():
        warn(f"{path}: unknown {kind} {name!r} (not in {graph_name}); its triples are skipped")
    kept = [tr for tr in triples if not any(x in unknown for x in tr)]
    warn(f"skipped {len(triples) - len(kept)} of {len(triples)} triples with unknown names")
    if not kept:
        raise LvBertError(f"{path}: every triple names something {graph_name} lacks; nothing to score")
    return kept

