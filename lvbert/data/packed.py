"""Read the output of ``lvbert data prepare``: manifest, sequences, tokenizer."""

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
    path = Path(data_dir).expanduser() / "manifest.json"
    if not path.exists():
        raise LvBertError(f"{data_dir} is not prepared data (no manifest.json); run 'lvbert data prepare' first")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise LvBertError(f"{data_dir} holds data of format {manifest.get('format')!r}, expected {FORMAT!r}; prepare it again")
    return manifest


def load_data_tokenizer(data_dir: str | os.PathLike):
    """The tokenizer copy saved with prepared data (the one its ids come from)."""
    from lvbert.data.tokenizer import load_tokenizer

    manifest = load_manifest(data_dir)
    return load_tokenizer(Path(data_dir).expanduser() / manifest["tokenizer"]["copy"])


class PackedDataset(torch.utils.data.Dataset):
    """Packed sequences of one split as a map-style dataset.

    ``dataset[i]`` is a dict of LongTensors ``input_ids``, ``token_type_ids`` and
    ``attention_mask``, each ``[seq_len]``. The arrays are memory-mapped and opened
    lazily in each process, so the dataset is cheap to send to DataLoader workers.

    Args:
        data_dir: a folder written by ``lvbert data prepare``.
        split: ``"train"`` or ``"valid"``.
        max_positions: if given, the model's position embeddings; longer sequences are an error.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str = "train", max_positions: int | None = None):
        from lvbert.data.prepare import check_seq_len

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
            ids = np.load(self.data_dir / self._info["input_ids"], mmap_mode="r")
            types = np.load(self.data_dir / self._info["token_type_ids"], mmap_mode="r")
            self._arrays = (ids, types)
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
