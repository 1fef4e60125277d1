"""The files of a released TensorFlow checkpoint: its prefix inside a folder, its ``vocab.txt``
and the WordPiece tokenizer that file describes (used by ``lvbert convert``)."""

from __future__ import annotations

import re
from pathlib import Path

from lvbert.convert.official import is_skipped
from lvbert.convert.tf_bundle import read_index
from lvbert.data.tokenizer import build_wordpiece, wrap_tokenizer
from lvbert.errors import LvBertError
from lvbert.utils import read_text_file


def find_checkpoint(path: Path) -> Path:
    """The checkpoint prefix that ``path`` (a prefix or a folder) names."""
    if path.with_name(path.name + ".index").is_file():
        return path
    if not path.is_dir():
        raise LvBertError(f"{path} is neither a checkpoint prefix ({path.name}.index missing) nor a folder nor a zip")
    state = path / "checkpoint"
    if state.is_file():
        m = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(encoding="utf-8", errors="replace"), re.M)
        if m:
            prefix = Path(m.group(1))
            prefix = prefix if prefix.is_absolute() else path / prefix
            if not prefix.with_name(prefix.name + ".index").is_file():
                prefix = path / prefix.name  # written on another machine: the name, here
            if prefix.with_name(prefix.name + ".index").is_file():
                return prefix
    indexes = sorted(path.rglob("*.index"))
    if len(indexes) == 1:
        return indexes[0].with_suffix("")
    if not indexes:
        raise LvBertError(f"{path} holds no TensorFlow checkpoint (no *.index file)")
    raise LvBertError(f"{path} holds {len(indexes)} checkpoints ({', '.join(i.stem for i in indexes[:3])}, ...); "
                      "give the prefix of one, e.g. PATH/model.ckpt-1000000")  # fmt: skip


def find_vocab(prefix: Path, root: Path) -> Path | None:
    """``vocab.txt`` beside the checkpoint or in a folder above it, up to ``root``."""
    folder = prefix.parent
    while True:
        if (folder / "vocab.txt").is_file():
            return folder / "vocab.txt"
        if folder == root or root not in folder.parents:
            return None
        folder = folder.parent


def vocab_tokenizer(vocab_file: Path, vocab_size: int):
    """The uncased WordPiece tokenizer of a BERT ``vocab.txt`` (one token per line, id = line number)."""

    tokens = read_text_file(vocab_file, "vocabulary").splitlines()
    while tokens and not tokens[-1].strip():
        tokens.pop()
    if len(tokens) != vocab_size:
        raise LvBertError(f"{vocab_file} has {len(tokens)} tokens but the checkpoint's vocabulary has {vocab_size}; "
                          "give the release's own vocab.txt with --vocab")  # fmt: skip
    vocab = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token.strip(), i)
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t not in vocab]
    if missing:
        raise LvBertError(f"{vocab_file} lacks BERT's special token(s) {', '.join(missing)}; it is not a BERT vocabulary")
    return wrap_tokenizer(build_wordpiece(vocab))


def count_skipped(prefix: Path) -> int:
    """How many of the checkpoint's tensors the conversion skips (optimizer slots, step counters)."""
    _, entries = read_index(prefix.with_name(prefix.name + ".index"))
    return sum(1 for name in entries if is_skipped(name))
