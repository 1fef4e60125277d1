"""Read the output of ``lvbert data prepare``: manifest, sequences, tokenizer.

:func:`open_data` opens a prepared folder once (its manifest, and its tokenizer copy,
checked against the manifest's fingerprint); recipes pass the :class:`PreparedData`
down to the batches, the masking and the validation set instead of the path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from lvbert.errors import LvBertError

FORMAT = "lvbert-packed-v1"


def load_manifest(data_dir: str | os.PathLike) -> dict:
    """The manifest of a prepared data folder; raises LvBertError if it is not one."""
    from lvbert.utils import read_text_file

    path = Path(data_dir).expanduser() / "manifest.json"
    if not path.exists():
        raise LvBertError(f"{data_dir} is not prepared data (no manifest.json); run 'lvbert data prepare' first")
    try:
        manifest = json.loads(read_text_file(path, "the manifest"))
    except json.JSONDecodeError as e:
        raise LvBertError(f"the manifest {path} is not valid JSON ({e.msg} on line {e.lineno}); prepare the data again "
                          "with 'lvbert data prepare'") from None  # fmt: skip
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise LvBertError(f"the manifest {path} is not one 'lvbert data prepare' writes; prepare the data again")
    if manifest.get("format") != FORMAT:
        raise LvBertError(f"{data_dir} holds data of format {manifest.get('format')!r}, expected {FORMAT!r}; prepare it again")
    return manifest


def load_data_tokenizer(data_dir: "str | os.PathLike | PreparedData"):
    """The tokenizer copy saved with prepared data (the one its ids come from), checked."""
    return open_data(data_dir).tokenizer


class PreparedData:
    """A folder written by ``lvbert data prepare``, opened once.

    Attributes: ``path``, ``manifest``, ``seq_len``, ``fingerprint`` (of the vocabulary the
    ids come from) and ``tokenizer`` (the folder's copy, whose vocabulary must have that
    fingerprint: a swapped tokenizer would give wrong words or out-of-range ids mid-training).
    """

    def __init__(self, path: str | os.PathLike):
        from lvbert.data.tokenizer import load_tokenizer, vocab_fingerprint

        self.path = Path(path).expanduser()
        self.manifest = load_manifest(self.path)
        self.seq_len = int(self.manifest["seq_len"])
        info = self.manifest.get("tokenizer", {})
        self.fingerprint = info.get("fingerprint") or info.get("sha256")
        self.tokenizer = load_tokenizer(self.path / info.get("copy", "tokenizer"))
        found = vocab_fingerprint(self.tokenizer)
        if self.fingerprint and found != self.fingerprint:
            raise LvBertError(
                f"the tokenizer in {self.path / info.get('copy', 'tokenizer')} is not the one {self.path} was prepared with "
                f"(vocabulary {found[:12]}, manifest {self.fingerprint[:12]}); prepare the data again with "
                "'lvbert data prepare'"
            )
        for name in self.manifest["splits"]:
            _load_arrays(self.path, self.manifest, name)  # a truncated or missing array: one line now, not mid-run

    def identity(self) -> dict:
        """What a run trained on this data must keep on resume: sequence length, tokenizer, vocabulary size."""
        return {"seq_len": self.seq_len, "tokenizer": self.fingerprint, "vocab_size": len(self.tokenizer)}

    def split(self, name: str = "train", max_positions: int | None = None) -> "PackedDataset":
        return PackedDataset(self, name, max_positions=max_positions)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {v['sequences']:,}" for k, v in self.manifest["splits"].items())
        return f"PreparedData({str(self.path)!r}, seq_len={self.seq_len}, {sizes})"


def open_data(data: "str | os.PathLike | PreparedData") -> PreparedData:
    """A :class:`PreparedData` (itself when it already is one)."""
    return data if isinstance(data, PreparedData) else PreparedData(data)


def _load_arrays(data_dir: Path, manifest: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The memory-mapped ``input_ids`` and ``token_type_ids`` of a split, each ``[sequences, seq_len]``
    as the manifest says; a one-line error for a file that is missing, truncated or not a NumPy array."""
    info = manifest["splits"][split]
    shape = (int(info["sequences"]), int(manifest["seq_len"]))
    arrays = []
    for key in ("input_ids", "token_type_ids"):
        path = data_dir / info[key]
        try:
            array = np.load(path, mmap_mode="r")
        except FileNotFoundError:
            raise LvBertError(f"{path} is missing; prepare the data again with 'lvbert data prepare'") from None
        except (ValueError, EOFError, OSError) as e:  # "mmap length is greater than file size", no header, ...
            raise LvBertError(f"{path} is truncated or not a NumPy array ({str(e).splitlines()[0][:120] or 'empty'}); "
                              "prepare the data again with 'lvbert data prepare'") from None  # fmt: skip
        if tuple(array.shape) != shape:
            raise LvBertError(f"{path} holds an array of shape {tuple(array.shape)} but the manifest says {shape}; "
                              "prepare the data again with 'lvbert data prepare'")  # fmt: skip
        arrays.append(array)
    return arrays[0], arrays[1]


class PackedDataset(torch.utils.data.Dataset):
    """Packed sequences of one split as a map-style dataset.

    ``dataset[i]`` is a dict of LongTensors ``input_ids``, ``token_type_ids`` and
    ``attention_mask``, each ``[seq_len]``. The arrays are memory-mapped and opened
    lazily in each process, so the dataset is cheap to send to DataLoader workers.

    Args:
        data_dir: a folder written by ``lvbert data prepare`` (or its :class:`PreparedData`).
        split: ``"train"`` or ``"valid"``.
        max_positions: if given, the model's position embeddings; longer sequences are an error.
    """

    def __init__(self, data_dir: "str | os.PathLike | PreparedData", split: str = "train", max_positions: int | None = None):
        from lvbert.data.prepare import check_seq_len

        if isinstance(data_dir, PreparedData):
            self.data_dir, self.manifest = data_dir.path, data_dir.manifest
        else:
            self.data_dir = Path(data_dir).expanduser()
            self.manifest = load_manifest(self.data_dir)
        if split not in self.manifest["splits"]:
            raise LvBertError(f"unknown split {split!r}; choose one of {', '.join(self.manifest['splits'])}")
        self.split = split
        self.seq_len = int(self.manifest["seq_len"])
        check_seq_len(self.seq_len, max_positions)
        self.pad_token_id = int(self.manifest["tokenizer"]["pad_token_id"])
        self._info = self.manifest["splits"][split]
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = _load_arrays(self.data_dir, self.manifest, self.split)
        return self._arrays

    def __getstate__(self) -> dict:  # memory maps are reopened, not copied, in workers
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    def __len__(self) -> int:
        return int(self._info["sequences"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids, types = self._open()
        input_ids = torch.from_numpy(ids[index].astype(np.int64))
        return {
            "input_ids": input_ids,
            "token_type_ids": torch.from_numpy(types[index].astype(np.int64)),
            "attention_mask": (input_ids != self.pad_token_id).long(),
        }

    def __repr__(self) -> str:
        return f"PackedDataset({str(self.data_dir)!r}, split={self.split!r}, sequences={len(self)}, seq_len={self.seq_len})"


def check_positions(seq_len: int, max_positions: int) -> None:
    if seq_len > max_positions:
        raise LvBertError(
            f"the data's sequences have {seq_len} tokens but the model has {max_positions} positions; "
            f"prepare the data with --seq-len {max_positions} or less, or raise max_position_embeddings"
        )
