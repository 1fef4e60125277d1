"""Shared fixtures: a small *real* English corpus, built offline at test time.

The text is the documentation of Python's own standard library (module, class
and function docstrings of the running interpreter): real prose, available
everywhere without a network, and nothing third-party is committed.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Hermetic caches: the suite never reads or writes the user's real caches (~/.cache/lvbert, the Hugging
# Face caches). Set at import, before any test module loads transformers or datasets (they read these
# variables when imported); subprocesses inherit them. What a test needs it builds there (the
# ``demo_home`` fixture builds the demo data from offline archives).
_REAL_LVBERT_HOME = Path(os.environ.get("LVBERT_HOME") or Path.home() / ".cache" / "lvbert").expanduser()
_HERMETIC = Path(tempfile.mkdtemp(prefix="lvbert-tests-"))
for _var, _sub in (("LVBERT_HOME", "lvbert"), ("HF_HOME", "hf"), ("HF_DATASETS_CACHE", "hf/datasets"),
                   ("XDG_CACHE_HOME", "xdg")):
    (_HERMETIC / _sub).mkdir(parents=True, exist_ok=True)
    os.environ[_var] = str(_HERMETIC / _sub)
os.environ["HF_HUB_OFFLINE"] = "1"  # no test reaches the hub; hub code paths are tested on local files

# One intra-op thread per test process (set before torch loads): the test models are tiny and
# overhead-bound, so a second thread gains little, while two processes with two spinning threads
# each on a 2-core machine (a torchrun test, or another job) slow each other down many times over.
os.environ.setdefault("OMP_NUM_THREADS", "1")

STDLIB_MODULES = (
    "argparse collections json re os pathlib subprocess threading asyncio logging typing dataclasses functools "
    "itertools inspect pickle random statistics decimal fractions datetime calendar textwrap string difflib heapq "
    "bisect shutil tempfile zipfile tarfile csv sqlite3 socket ssl selectors queue multiprocessing contextlib abc "
    "enum numbers math hashlib hmac secrets base64 struct codecs io time locale gettext optparse configparser pprint "
    "copy weakref types dis ast tokenize traceback warnings doctest pdb timeit trace sched mailbox mimetypes smtplib "
    "ftplib imaplib wave colorsys unittest email.message http.client urllib.parse urllib.request xml.dom.minidom"
).split()


def stdlib_documents() -> list[str]:
    docs = []
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        parts = [inspect.getdoc(module) or ""]
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            obj = getattr(module, attr, None)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                doc = inspect.getdoc(obj)
                if doc and len(doc) > 80:
                    parts.append(doc)
        text = "\n".join(" ".join(p.split()) for p in parts if p.strip())
        if len(text) > 200:
            docs.append(text)
    return docs


@pytest.fixture(scope="session")
def real_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("real_corpus") / "stdlib_docs.txt"
    path.write_text("\n\n".join(stdlib_documents()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def real_tokenizer(real_corpus, tmp_path_factory) -> Path:
    from lvbert.data.tokenizer import train_tokenizer

    return train_tokenizer(real_corpus, tmp_path_factory.mktemp("real_tok") / "tok", vocab_size=2000, progress=False)


@pytest.fixture(scope="session")
def real_data(real_corpus, real_tokenizer, tmp_path_factory) -> Path:
    """Packed sequences of 64 tokens from the real corpus."""
    from lvbert.data.prepare import prepare_data

    return prepare_data(real_corpus, real_tokenizer, tmp_path_factory.mktemp("real_data") / "data", 64,
                        valid_fraction=0.05, progress=False)


@pytest.fixture(scope="session")
def other_vocab_data(real_corpus, tmp_path_factory) -> Path:
    """The same text packed with another tokenizer (a smaller vocabulary): not the supernet's data."""
    from lvbert.data.prepare import prepare_data
    from lvbert.data.tokenizer import train_tokenizer

    tok = train_tokenizer(real_corpus, tmp_path_factory.mktemp("other_tok") / "tok", vocab_size=1500, progress=False)
    return prepare_data(real_corpus, tok, tmp_path_factory.mktemp("other_data") / "data", 64, valid_fraction=0.05,
                        progress=False)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HERMETIC, ignore_errors=True)


@pytest.fixture(scope="session")
def real_lvbert_home() -> Path:
    """The user's real lvbert cache as it was before the suite redirected it (tests only look at it)."""
    return _REAL_LVBERT_HOME


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """The demo data (tasks, graphs, pre-training text) built offline from archives in the real
    archives' layout, in the suite's own ``LVBERT_HOME``; returns ``$LVBERT_HOME/demo``."""
    from fixtures_data import make_fake_archives
    from lvbert.cli import main

    archives = make_fake_archives(tmp_path_factory.mktemp("demo_archives"))
    home = Path(os.environ["LVBERT_HOME"])
    if not (home / "demo" / "manifest.json").is_file():
        assert main(["data", "fetch", "demo", "--archives", str(archives)]) == 0
    return home / "demo"
