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

import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lvbert.arch import Arch
from lvbert.convert.official import PARTS, convert_official, is_skipped
from lvbert.convert.release import count_skipped, find_checkpoint, find_vocab, vocab_tokenizer
from lvbert.convert.tf_bundle import read_checkpoint
from lvbert.errors import LvBertError
from lvbert.model_dir import quiet_transformers
from lvbert.options import option
from lvbert.utils import check_output_dir, staging_folder


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

        if self.part not in PARTS:
            raise LvBertError(f"--part must be one of {', '.join(PARTS)}, got {self.part!r}")


def convert(cfg: ConvertConfig) -> Path:
    """Convert as configured (module docstring); returns the output folder."""

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
        skipped = count_skipped(prefix)
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
          "(conv_mask_padding=False: the official computation; see lvbert convert --help)")  # fmt: skip
    return out
