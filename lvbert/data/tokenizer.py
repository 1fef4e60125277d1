"""BERT-style uncased WordPiece tokenizer: training, loading and checks.

The tokenizer is trained with the ``tokenizers`` library and saved with
``transformers`` so that ``AutoTokenizer.from_pretrained(dir)`` loads it.
Special tokens: ``[PAD]`` = 0, ``[UNK]`` = 1, ``[CLS]`` = 2, ``[SEP]`` = 3, ``[MASK]`` = 4.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

from lvbert.errors import LvBertError
from lvbert.utils import check_out_dir, staging_folder

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# What a tokenizer folder holds (transformers 4 and 5); anything else means it is not only a tokenizer.
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "added_tokens.json",
                   "chat_template.jinja"}
# Below this many entries a "vocabulary" is a broken load (e.g. only the special tokens).
MIN_VOCAB_SIZE = 32


def _sentences_of(docs: Iterator[str]) -> Iterator[str]:
    # the trainer counts words, so lines are as good as whole documents and use less memory
    for doc in docs:
        yield from doc.split("\n")


def build_wordpiece(vocab: dict[str, int] | None = None):
    """An uncased BERT WordPiece ``tokenizers.Tokenizer`` (untrained when ``vocab`` is None)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    if vocab is not None:
        _set_post_processor(tok)
    return tok


def _set_post_processor(tok) -> None:
    from tokenizers import processors

    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )


def wrap_tokenizer(tok):
    """A ``tokenizers.Tokenizer`` -> ``transformers.PreTrainedTokenizerFast`` with BERT's special tokens.

    ``tokenizer_object=`` is used on purpose: in transformers 5,
    ``BertTokenizerFast(vocab_file=...)`` silently builds a 5-token vocabulary.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )


def train_tokenizer(
    corpus: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    vocab_size: int = 30522,
    *,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
    doc_mode: str = "blank-line",
    text_field: str = "text",
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Train an uncased WordPiece tokenizer on ``corpus`` and save it in ``out``.

    Args:
        corpus: anything :func:`lvbert.data.corpus.iter_documents` reads.
        out: output folder (written to a temporary folder first, then renamed).
        vocab_size: target vocabulary size, special tokens included.
        min_frequency: a merge must be seen this often.
        limit_alphabet: at most this many initial characters.
        overwrite: replace an existing tokenizer folder (never a folder holding anything else).
    Returns the output folder. The folder loads with ``AutoTokenizer.from_pretrained``.
    """
    from tokenizers import trainers

    from lvbert.data.corpus import CorpusStats, iter_documents

    if vocab_size < MIN_VOCAB_SIZE:
        raise LvBertError(f"--vocab-size {vocab_size} is too small; use at least {MIN_VOCAB_SIZE} (BERT uses 30522)")
    out = check_out_dir(out)
    if out.is_dir() and any(out.iterdir()):
        others = sorted(p.name for p in out.iterdir() if p.name not in TOKENIZER_FILES)
        if others:
            raise LvBertError(
                f"--out {out} holds more than a tokenizer ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); "
                "refusing to replace it: choose a new folder"
            )
        if not overwrite:
            raise LvBertError(f"--out {out} already holds a tokenizer; pass --overwrite to replace it, or choose another folder")
    stats = CorpusStats()
    tok = build_wordpiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        limit_alphabet=limit_alphabet,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
        show_progress=progress,
    )
    tok.train_from_iterator(_sentences_of(iter_documents(corpus, doc_mode, text_field, stats)), trainer=trainer)
    if stats.documents == 0:
        raise LvBertError(f"the corpus {', '.join(stats.files) or corpus} is empty; give files with text")
    if tok.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise LvBertError("the corpus is too small to learn any word piece; give more text")
    _set_post_processor(tok)
    hf_tok = wrap_tokenizer(tok)
    with staging_folder(out) as tmp:
        hf_tok.save_pretrained(tmp)
        # name the generic class, which transformers 4 and 5 both know
        config_path = tmp / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _write_vocab_txt(tok.get_vocab(), tmp / "vocab.txt")
    return out


def _write_vocab_txt(vocab: dict[str, int], path: Path) -> None:
    # vocab.txt (one token per line, in id order) for tools that expect BERT's layout
    tokens = sorted(vocab, key=vocab.__getitem__)
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")


def load_tokenizer(path: str | os.PathLike):
    """Load a local Hugging Face tokenizer folder as a fast tokenizer, with sanity checks.

    Accepts folders written by :func:`train_tokenizer` and any other local tokenizer
    folder (``tokenizer.json`` or ``vocab.txt`` with a config). Raises LvBertError when
    the folder is missing, is not a tokenizer, or loads with a tiny vocabulary.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path).expanduser()
    if not path.is_dir():
        raise LvBertError(f"tokenizer folder {str(path)!r} does not exist; train one with 'lvbert tokenizer train'")
    if not any((path / f).exists() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise LvBertError(f"{path} is not a tokenizer folder (no tokenizer.json or vocab.txt)")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        raise LvBertError(f"could not load the tokenizer in {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(tok, PreTrainedTokenizerFast) and not hasattr(tok, "backend_tokenizer"):
        raise LvBertError(f"the tokenizer in {path} is not a fast tokenizer; save it with a tokenizer.json")
    size = len(tok)
    if size < MIN_VOCAB_SIZE:
        raise LvBertError(
            f"the tokenizer in {path} loads with only {size} tokens; its files are incomplete "
            "(save it with tokenizer.json, e.g. 'lvbert tokenizer train')"
        )
    missing = [name for name in ("cls_token", "sep_token", "mask_token", "pad_token") if getattr(tok, name, None) is None]
    if missing:
        raise LvBertError(f"the tokenizer in {path} has no {', '.join(missing)}; LV-BERT needs [CLS], [SEP], [MASK] and [PAD]")
    return tok


def vocab_fingerprint(tokenizer) -> str:
    """sha256 of the vocabulary (token -> id, in id order): same fingerprint, same ids."""
    vocab = tokenizer.get_vocab()
    items = sorted(vocab.items(), key=lambda kv: (kv[1], kv[0]))
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()


def check_tokenizer_matches(tokenizer, vocab_size: int) -> None:
    """Raise LvBertError if the tokenizer's ids do not fit a model with ``vocab_size`` embeddings.

    A model larger than the tokenizer (rows never used, e.g. padded to a multiple of 8)
    only gives a warning.
    """
    size = len(tokenizer)
    if size > vocab_size:
        raise LvBertError(
            f"the tokenizer has {size} tokens but the model only {vocab_size} embeddings; "
            f"use the model's own tokenizer or a model with vocab_size >= {size}"
        )
    if size < vocab_size:
        warnings.warn(
            f"the model has {vocab_size} embeddings but the tokenizer only {size} tokens; {vocab_size - size} rows stay unused",
            stacklevel=2,
        )


def check_teacher_vocab(teacher_dir: Path, tokenizer, what: str) -> None:
    """The teacher must read the same ids: its tokenizer's vocabulary equals the data's."""
    try:
        t_tok = load_tokenizer(teacher_dir)
    except LvBertError:
        raise LvBertError(f"{teacher_dir} has no tokenizer; save the teacher's tokenizer next to it (the vocabulary must "
                          f"match {what})") from None  # fmt: skip
    if vocab_fingerprint(t_tok) != vocab_fingerprint(tokenizer):
        raise LvBertError(f"the teacher's vocabulary ({len(t_tok):,} tokens) is not the one of {what} "
                          f"({len(tokenizer):,}); the student must read the teacher's token ids: prepare the data "
                          "with the teacher's tokenizer")  # fmt: skip
