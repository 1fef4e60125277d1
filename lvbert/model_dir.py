"""Model folders on disk: read an lvbert (or Hugging Face BERT / ELECTRA) model folder and its
tokenizer with one-line errors, and write one atomically.

Every recipe that takes ``--model DIR`` (fine-tuning, prediction, ``lvbert eval``, and the
systems built on them) loads through here, so a folder that is not a model, a supernet
given where one arch is needed, or a tokenizer that does not fit the model is reported
the same way everywhere.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from lvbert.data.packed import check_positions, open_data
from lvbert.data.tokenizer import check_tokenizer_matches, load_tokenizer, vocab_fingerprint
from lvbert.errors import LvBertError
from lvbert.modeling_lvbert import LvBertForMaskedLM
from lvbert.space import SearchSpace
from lvbert.supernet import LvBertSupernet
from lvbert.utils import staging_folder

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
HF_MLM_TYPES = ("bert", "electra")  # Hugging Face model types lvbert reads as MLM models (``lvbert eval``)


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' loading chatter and progress bars (we report what matters ourselves)."""

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_config(model_dir: str | Path, allowed_types: tuple[str, ...] = ("lvbert",)):
    """The folder's ``config.json`` as a transformers config; its ``model_type`` must be in ``allowed_types``."""

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise LvBertError(f"{model_dir} is not a model directory (no config.json); give a pre-trained or fine-tuned model folder")
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (ValueError, OSError, KeyError) as e:
        raise LvBertError(f"{model_dir / 'config.json'} cannot be read as a model config ({str(e).splitlines()[0][:120]})") from None
    if config.model_type not in allowed_types:
        want = " or ".join(repr(t) for t in allowed_types)
        raise LvBertError(f"{model_dir} holds a {config.model_type!r} model; this needs a {want} model")
    return config


def load_model_config(model_dir: str | Path):
    """The config of an lvbert model folder holding one arch (a supernet folder is refused)."""
    config = load_config(model_dir)
    if getattr(config, "allowed_types", None) is not None or "LvBertSupernet" in (config.architectures or []):
        raise LvBertError(
            f"{model_dir} is a supernet (every slot holds several layer types), not one model; take an arch out of it "
            f"first: lvbert supernet extract --supernet {model_dir} --arch ARCH --out DIR"
        )
    return config


def load_model_tokenizer(model_dir: str | Path, vocab_size: int):
    """The tokenizer saved next to the model; its vocabulary must fit the model's."""

    model_dir = Path(model_dir)
    if not any((model_dir / f).is_file() for f in TOKENIZER_FILES):
        raise LvBertError(f"{model_dir} has no tokenizer ({' / '.join(TOKENIZER_FILES)}); save the tokenizer next to the model")
    with quiet_transformers():
        tokenizer = load_tokenizer(model_dir)
    check_tokenizer_matches(tokenizer, vocab_size)
    return tokenizer


def load_classifier(model_dir: str | Path, labels: tuple[str, ...] | None, seed: int, dropout: float | None = None):
    """The model with a sequence-classification head for ``labels`` (None: one regression output);
    a new head is initialised from ``seed`` without touching the caller's random state. ``dropout``
    replaces the config's hidden and attention dropout (None keeps the config's)."""

    config_file = Path(model_dir) / "config.json"
    if config_file.is_file() and "quantization" in json.loads(config_file.read_text(encoding="utf-8")):
        raise LvBertError(f"{model_dir} is a quantized model; fine-tune the full-precision model, then quantize it")
    kwargs = {"num_labels": 1, "problem_type": "regression"}
    if labels is not None:
        kwargs = {
            "num_labels": len(labels),
            "problem_type": "single_label_classification",
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
        }
    if dropout is not None:
        kwargs.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True, ignore_mismatched_sizes=True, output_loading_info=True, **kwargs
        )
    backbone_missing = [k for k in info.get("missing_keys", []) if not k.startswith("classifier.")]
    if backbone_missing:  # training them from random would silently waste the run
        raise LvBertError(f"{model_dir} lacks {len(backbone_missing)} backbone weight(s) (e.g. {backbone_missing[0]}); "
                          "give a pre-trained lvbert model folder")  # fmt: skip
    return model


def load_finetuned(model_dir: str | Path):
    """A fine-tuned classifier folder (``lvbert finetune`` / ``quantize`` / ``distill --task``) in eval
    mode; a quantized one (its config records ``quantization``) comes back fake-quantized with its
    learned clip values, never silently in full precision."""

    model_dir = Path(model_dir)
    config = load_model_config(model_dir)
    if "LvBertForSequenceClassification" not in (config.architectures or []):
        raise LvBertError(f"{model_dir} is not a fine-tuned classifier ({', '.join(config.architectures or ['?'])}); "
                          "fine-tune it first with lvbert finetune")  # fmt: skip
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    spec = getattr(model.config, "quantization", None)
    if spec:
        from safetensors.torch import load_file

        from lvbert.quantization import QuantSpec, quantize_model

        quantize_model(model, QuantSpec.from_dict(spec))
        missing, unexpected = model.load_state_dict(load_file(str(model_dir / "model.safetensors")), strict=False)
        if missing or unexpected:
            raise LvBertError(f"{model_dir}: the quantized weights do not fit the model (e.g. {(missing + unexpected)[0]})")
    return model.eval()


def load_mlm(model_dir: str | Path):
    """``(model, tokenizer, kind)`` of a masked-LM folder: an lvbert MLM model, the generator of an
    ELECTRA run folder (``<dir>/generator``), or a Hugging Face BERT / ELECTRA MLM checkpoint on disk."""

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise LvBertError(f"{model_dir} is not a model directory (no config.json)")
    config = load_config(model_dir, ("lvbert", *HF_MLM_TYPES))
    kind = config.model_type
    if kind == "lvbert" and "LvBertForMaskedLM" not in (config.architectures or []):
        if (model_dir / "generator" / "config.json").is_file():  # an ELECTRA run: its generator is the MLM
            return load_mlm(model_dir / "generator")[:2] + ("lvbert-generator",)
        load_model_config(model_dir)  # a supernet: the one-line error saying to extract an arch
        raise LvBertError(f"{model_dir} holds no masked-LM head ({', '.join(config.architectures or ['?'])}); "
                          "give an MLM model, an ELECTRA run folder (its generator) or a supernet's extracted arch")  # fmt: skip
    tokenizer = load_model_tokenizer(model_dir, config.vocab_size)
    with quiet_transformers():
        model, info = AutoModelForMaskedLM.from_pretrained(model_dir, local_files_only=True, output_loading_info=True)
    missing = [k for k in info.get("missing_keys", []) if "decoder" not in k and "bias" != k.split(".")[-1]]
    if missing:
        raise LvBertError(f"{model_dir} lacks {len(missing)} weight(s) of its MLM model (e.g. {missing[0]})")
    return model.eval(), tokenizer, kind


def save_model_dir(model, tokenizer, dest: str | Path) -> Path:
    """Save model + tokenizer into ``dest`` atomically (a staged sibling folder renamed into place)."""
    dest = Path(dest)
    with staging_folder(dest) as tmp, quiet_transformers():
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return dest


# ----------------------------------------------------------------------------- supernet folders

SUPERNET_FILES = ("config.json", "model.safetensors", "space.json")


def check_supernet_dir(path: str | Path) -> Path:
    """The supernet folder, or a one-line error when it is missing or incomplete."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise LvBertError(f"supernet folder {path} does not exist; train one with 'lvbert supernet train'")
    missing = [f for f in SUPERNET_FILES if not (path / f).is_file()]
    if missing:
        raise LvBertError(
            f"{path} is not a complete supernet folder (missing {', '.join(missing)}); "
            f"point --supernet at the --out of a finished 'lvbert supernet train'"
        )
    return path


def supernet_identity(path: Path) -> dict:
    """What the supernet folder says about its data: ``tokenizer`` fingerprint, ``seq_len``, masking mode."""
    run_cfg = path / "run_config.yaml"
    ident, mask_mode = {}, "bert"
    if run_cfg.is_file():
        saved = yaml.safe_load(run_cfg.read_text(encoding="utf-8")) or {}
        ident = dict(saved.get("identity") or {})
        mask_mode = (saved.get("config") or {}).get("mask_mode") or "bert"
    if not ident.get("tokenizer"):
        try:  # a supernet saved by hand: fingerprint the tokenizer files next to the weights
            from lvbert.data.tokenizer import vocab_fingerprint

            ident["tokenizer"] = vocab_fingerprint(load_tokenizer(path))
        except LvBertError:
            pass
    return {"tokenizer": ident.get("tokenizer"), "seq_len": ident.get("seq_len"), "mask_mode": mask_mode}


def trained_space(supernet_dir: Path):
    """The space the supernet was trained over (its ``space.json``)."""

    supernet_dir = Path(supernet_dir)
    try:
        return SearchSpace.from_dict(json.loads((supernet_dir / "space.json").read_text(encoding="utf-8")))
    except (ValueError, TypeError) as e:
        raise LvBertError(f"{supernet_dir / 'space.json'} is not a search space ({e}); train the supernet again") from None


def load_supernet(path: str | Path):
    """An ``LvBertSupernet`` from a run folder; a one-line error when the folder holds none."""

    path = check_supernet_dir(path)
    with quiet_transformers():
        return LvBertSupernet.from_pretrained(str(path))


def check_model_weights(folder, option: str) -> None:
    """A one-line error for a ``.safetensors`` file in ``folder`` that is empty, truncated or not one
    (safetensors' own error names no file); folders without such files are left to the loaders."""

    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as e:  # SafetensorError, or an OSError for an unreadable file
            raise LvBertError(f"{option} {folder}: {path.name} is empty, truncated or not a safetensors file "
                              f"({str(e).splitlines()[0][:100] if str(e) else type(e).__name__}); write the model "
                              "again") from None  # fmt: skip


def check_supernet_data(data, sn_ident: dict, supernet_dir: Path, max_positions: int) -> dict:
    """The data's identity; one-line errors when its tokenizer is not the supernet's or its sequences too long."""

    data = open_data(data)
    ident = data.identity()
    if sn_ident["tokenizer"] is None:
        raise LvBertError(f"cannot tell which tokenizer {supernet_dir} was trained with (no run_config.yaml, no tokenizer files)")
    if ident["tokenizer"] != sn_ident["tokenizer"]:
        raise LvBertError(
            f"the tokenizer of {data} ({str(ident['tokenizer'])[:12]}) is not the supernet's "
            f"({str(sn_ident['tokenizer'])[:12]}); prepare the data with the tokenizer in {supernet_dir}"
        )
    check_positions(ident["seq_len"], max_positions)
    return ident


def load_student_mlm(student_dir, dropout: float) -> LvBertForMaskedLM:
    """The lvbert model in ``student_dir`` as an ``LvBertForMaskedLM`` (its arch, widths and weights; a
    head it lacks starts new) with ``dropout``; one-line errors for a supernet, a quantized model or
    missing backbone weights."""

    config = load_model_config(student_dir)  # an lvbert model holding one arch
    if getattr(config, "quantization", None):
        raise LvBertError(f"{student_dir} is a quantized model; distil into the full-precision model, then quantize it")
    with quiet_transformers():
        student, info = LvBertForMaskedLM.from_pretrained(student_dir, local_files_only=True, output_loading_info=True,
                                                          hidden_dropout_prob=dropout,
                                                          attention_probs_dropout_prob=dropout)  # fmt: skip
    missing = [k for k in info.get("missing_keys", []) if k.startswith("lvbert.")]
    if missing:  # distilling them from random would silently waste the start
        raise LvBertError(f"{student_dir} lacks {len(missing)} backbone weight(s) (e.g. {missing[0]}); give a "
                          "pre-trained lvbert model folder")  # fmt: skip
    return student



def check_student_vocab(student_dir, tokenizer, what: str) -> None:
    """The student folder's tokenizer must be ``tokenizer`` (the same vocabulary fingerprint): it reads the same ids."""
    s_tok = load_model_tokenizer(student_dir, load_model_config(student_dir).vocab_size)
    if vocab_fingerprint(s_tok) != vocab_fingerprint(tokenizer):
        raise LvBertError(f"the student's vocabulary in {student_dir} ({len(s_tok):,} tokens) is not the one of {what} "
                          f"({len(tokenizer):,}); the student must read the teacher's token ids: give a student with "
                          "the teacher's tokenizer")  # fmt: skip
