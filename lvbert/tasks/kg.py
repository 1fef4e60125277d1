"""Knowledge graphs for KG-BERT (Yao et al. 2019): reading, entity and relation text, negative
sampling, and the rank-based metrics of link and relation prediction. Plain Python, no torch.

Layouts read (a folder):

- KG-BERT's: ``train.tsv``, ``dev.tsv``, ``test.tsv`` (``head<TAB>relation<TAB>tail``, and for
  triple classification a fourth column of ``1`` / ``-1`` labels, as WN11 and FB13 ship), with
  ``entity2text.txt``, optional ``entity2textlong.txt`` and ``relation2text.txt``
  (``id<TAB>text``) and optional ``entities.txt`` / ``relations.txt``;
- OpenKE / pykeen's plain triples: ``train.tsv``, ``valid.tsv`` (or ``dev.tsv``), ``test.tsv``.

Entity and relation text: the description files when there are, else the names cleaned
(``acquired_abnormality`` -> "acquired abnormality", ``/music/artist/origin`` -> "music artist
origin"). Files are read as UTF-8.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from lvbert.errors import LvBertError

Triple = tuple[str, str, str]
SPLIT_FILES = {"train": ("train.tsv",), "dev": ("dev.tsv", "valid.tsv"), "test": ("test.tsv",)}
DEMO_GRAPHS = ("umls", "kinships", "nations")


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
    from lvbert.utils import read_text_file

    out = {}
    for n, line in enumerate(read_text_file(path, "text file").splitlines(), 1):
        if not line.strip():
            continue
        key, _, text = line.partition("\t")
        if not text.strip():
            raise LvBertError(f"{path}:{n}: expected 'id<TAB>text'")
        out[key.strip()] = text.strip()
    return out


def _read_triples(path: Path) -> tuple[list[Triple], list[int] | None]:
    from lvbert.utils import read_text_file

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
        splits[split], lab = _read_triples(f)
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
