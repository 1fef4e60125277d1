"""Recipe: a released LV-BERT or ELECTRA TensorFlow checkpoint -> an lvbert model folder (``lvbert convert``).

PATH is a checkpoint prefix (``.../model.ckpt-1000000``), a folder holding one (its
``checkpoint`` file names the latest; else its only ``*.index``), or the release zip. The
tensors are read without TensorFlow (:mod:`lvbert.convert.tf_bundle`, every crc checked) and
mapped by name and shape (:mod:`lvbert.convert.official`); the tokenizer is the release's
``vocab.txt`` (uncased WordPiece). Everything is read and checked before anything is written,
and the folder is written atomically, so a broken checkpoint leaves nothing behind.

``--part discriminator`` (default) writes the discriminator (an ``LvBertForPreTraining``; a
fine-tuned checkpoint's ``task_specific/<task>/dense`` makes it an
``LvBertForSequenceClassification``), ``generator`` the generator (``LvBertForMaskedLM``),
``both`` the two into ``DIR/discriminator`` and ``DIR/generator``.
"""

from __future__ import annotations

import re
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.options import option


@dataclass
class ConvertConfig:
    """Everything ``lvbert convert`` takes."""

    path: str = option("checkpoint prefix (model.ckpt-N), a folder holding one, or the release zip", default=None,
                       positional=True, metavar="PATH")  # fmt: skip
    out: str = option("output model folder", default=None)
    part: str = option("discriminator, generator, or both (DIR/discriminator and DIR/generator)", default="discriminator")
    task: str | None = option("fine-tuned checkpoints with several task heads: the task to convert", default=None)
    vocab: str | None = option("vocab.txt of the release (default: found beside the checkpoint)", default=None)
    overwrite: bool = option("replace an existing --out folder", default=False)

    def __post_init__(self) -> None:
        if not self.path:
            raise LvBertError("give the checkpoint: lvbert convert PATH --out DIR")
        if not self.out:
            raise LvBertError("--out is required: the folder to write the converted model to")
        from lvbert.convert.official import PARTS

        if self.part not in PARTS:
            raise LvBertError(f"--part must be one of {', '.join(PARTS)}, got {self.part!r}")


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
    from lvbert.data.tokenizer import build_wordpiece, wrap_tokenizer
    from lvbert.utils import read_text_file

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


def convert(cfg: ConvertConfig) -> Path:
    """Convert as configured (module docstring); returns the output folder."""
    from lvbert.arch import Arch
    from lvbert.convert.official import convert_official, is_skipped
    from lvbert.convert.tf_bundle import read_checkpoint
    from lvbert.model_dir import quiet_transformers
    from lvbert.utils import check_output_dir, staging_folder

    source = Path(cfg.path).expanduser()
    vocab = Path(cfg.vocab).expanduser() if cfg.vocab else None
    out = check_output_dir(cfg.out, inputs={"PATH": source, "--vocab": vocab}, overwrite=cfg.overwrite)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lvbert-convert-") as unpacked:
        root = source
        if source.is_file() and zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as z:
                z.extractall(unpacked)
            root = Path(unpacked)
        elif source.suffix == ".zip" and source.is_file():
            raise LvBertError(f"{source} is not a readable zip file; download the release again")
        prefix = find_checkpoint(root)
        tensors = read_checkpoint(prefix, skip=is_skipped)
        read_s = time.perf_counter() - start
        skipped = _count_skipped(prefix)
        models = convert_official(tensors, cfg.part, cfg.task)
        vocab = vocab or find_vocab(prefix, root if root.is_dir() else prefix.parent)
        if vocab is None:
            raise LvBertError(f"no vocab.txt beside {prefix}; give the release's vocabulary with --vocab FILE")
        vocab_size = models[0].config.vocab_size
        with quiet_transformers():
            tokenizer = vocab_tokenizer(vocab, vocab_size)
        built = [(m, m.build()) for m in models]
    print(f"read {prefix.name}: {len(tensors)} tensors, crc32c checked, in {read_s:.1f}s "
          f"({skipped} optimizer / step tensors skipped)")  # fmt: skip
    for m, model in built:
        c = m.config
        print(f"{m.part}: {model.__class__.__name__}, arch {Arch.parse(c.arch)} ({c.num_slots} slots), hidden {c.hidden_size}, "
              f"embedding {c.embedding_size}, inner {c.intermediate_size}, heads {c.num_attention_heads}, "
              f"kernel {c.conv_kernel_size}, vocabulary {c.vocab_size}, positions {c.max_position_embeddings}, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters")  # fmt: skip
    with staging_folder(out) as tmp, quiet_transformers():
        for m, model in built:
            dest = tmp / m.part if cfg.part == "both" else tmp
            model.save_pretrained(dest)
            tokenizer.save_pretrained(dest)
    print(f"converted model written to {out} in {time.perf_counter() - start:.1f}s "
          "(conv_mask_padding=False: the official computation; see docs/convert.md)")  # fmt: skip
    return out


def _count_skipped(prefix: Path) -> int:
    from lvbert.convert.official import is_skipped
    from lvbert.convert.tf_bundle import read_index

    _, entries = read_index(prefix.with_name(prefix.name + ".index"))
    return sum(1 for name in entries if is_skipped(name))
