"""Recipe: masked-LM accuracy and loss of a model on fixed masks -- on prepared data or on your own text.

``lvbert eval --model DIR (--data PREPARED | --corpus FILE...)``. The model is an lvbert MLM
model, the generator of an ELECTRA run folder, or a Hugging Face BERT / ELECTRA MLM checkpoint
on disk (:func:`lvbert.model_dir.load_mlm`). With ``--corpus`` the text is packed with the
model's own tokenizer (as ``lvbert data prepare`` packs, into a temporary folder), so models
with different vocabularies are compared on the same text. Masks are BERT's 80/10/10 (or
ELECTRA's), drawn from ``--seed``: the same model, text and seed always give the same numbers.
Prints one JSON object with ``--json``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.options import option


@dataclass
class EvalConfig:
    model: str = option("an lvbert MLM model folder, an ELECTRA run folder (its generator) or a Hugging Face "
                        "BERT/ELECTRA MLM checkpoint on disk", default=None)  # fmt: skip
    data: str | None = option("prepared data (lvbert data prepare) made with the model's tokenizer", default=None)
    corpus: list[str] | None = option("text files, folders or .jsonl to evaluate on, packed with the model's tokenizer",
                                      default=None)  # fmt: skip
    split: str = option("split of --data: valid or train", default="valid")
    sequences: int = option("sequences evaluated (the first N)", default=512)
    seq_len: int | None = option("--corpus: tokens per packed sequence (default 128, capped at the model's positions)",
                                 default=None)  # fmt: skip
    doc_mode: str = option("--corpus text files: documents separated by blank lines (blank-line) or one per line (line)",
                           default="blank-line")  # fmt: skip
    text_field: str = option("--corpus .jsonl: the text field", default="text")
    seed: int = option("seed of the masks", default=0)
    mask_mode: str = option("masking: bert (80/10/10) or electra (85/15)", default="bert")
    batch_size: int = option("sequences per forward pass", default=64)
    bf16: bool = option("bfloat16 autocast", default=False)
    device: str = option("auto, cpu, cuda or cuda:N", default="auto")
    json: bool = option("print one JSON object", default=False)

    def __post_init__(self) -> None:
        if not self.model:
            raise LvBertError("--model is required")
        if (self.data is None) == (not self.corpus):
            raise LvBertError("give exactly one of --data (prepared data) or --corpus (text files)")
        for name in ("sequences", "batch_size"):
            if getattr(self, name) < 1:
                raise LvBertError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.seq_len is not None and self.seq_len < 8:
            raise LvBertError(f"--seq-len must be at least 8, got {self.seq_len}")
        if self.mask_mode not in ("bert", "electra"):
            raise LvBertError(f"--mask-mode must be bert or electra, got {self.mask_mode!r}")
        from lvbert.training.distributed import check_device

        check_device(self.device)


def evaluate(cfg: EvalConfig) -> dict:
    """Masked-LM numbers of ``cfg.model`` (see the module docstring); returns the JSON-able result."""
    from lvbert.data.masking import MaskingConfig, fixed_mask_validation
    from lvbert.data.packed import open_data
    from lvbert.data.tokenizer import vocab_fingerprint
    from lvbert.model_dir import load_mlm
    from lvbert.objectives.mlm import evaluate_mlm, unigram_accuracy
    from lvbert.training.distributed import pick_device

    model, tokenizer, kind = load_mlm(cfg.model)
    model.to(pick_device(cfg.device))
    positions = int(getattr(model.config, "max_position_embeddings", 512))
    masking = MaskingConfig(mode=cfg.mask_mode)
    with tempfile.TemporaryDirectory(prefix="lvbert-eval-") as tmp:
        if cfg.data is not None:
            data = open_data(cfg.data)
            if data.fingerprint != vocab_fingerprint(tokenizer):
                raise LvBertError(f"{cfg.data} was prepared with another tokenizer than the model's; evaluate on text "
                                  "with --corpus (packed with the model's tokenizer) instead")  # fmt: skip
            if data.seq_len > positions:
                raise LvBertError(f"{cfg.data} has sequences of {data.seq_len} tokens, more than the model's {positions} positions")
            split, source = cfg.split, {"data": str(data.path), "split": cfg.split}
        else:
            data, split = _pack_corpus(cfg, Path(tmp), positions), "train"
            source = {"corpus": [str(c) for c in cfg.corpus]}
        valid = fixed_mask_validation(data, cfg.sequences, seed=cfg.seed, split=split, config=masking)
    result = evaluate_mlm(model, valid, cfg.batch_size, bf16=cfg.bf16)
    return {"model": str(cfg.model), "kind": kind, **source, "seq_len": int(valid["input_ids"].shape[1]),
            "mask_seed": cfg.seed, "mask_mode": cfg.mask_mode, **result,
            "unigram_accuracy": unigram_accuracy(valid)}  # fmt: skip


def _pack_corpus(cfg: EvalConfig, tmp: Path, positions: int):
    """The corpus packed with the model's tokenizer into ``tmp`` (every document in the train split)."""
    from lvbert.data.packed import open_data
    from lvbert.data.prepare import prepare_data

    model_dir = Path(cfg.model)
    tok_dir = model_dir if any((model_dir / f).exists() for f in ("tokenizer.json", "vocab.txt")) else model_dir / "generator"
    seq_len = min(cfg.seq_len or 128, positions)
    out = prepare_data(cfg.corpus, tok_dir, tmp / "data", seq_len, valid_fraction=0.0, doc_mode=cfg.doc_mode,
                       text_field=cfg.text_field, max_positions=positions, progress=False)  # fmt: skip
    return open_data(out)
