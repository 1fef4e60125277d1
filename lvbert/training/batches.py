"""Deterministic, resumable pre-training batches from prepared (packed) data.

The micro-batch of optimizer step ``s``, micro-step ``m`` on rank ``r`` depends only
on ``(seed, s, m, r)``: sequences come from a per-epoch permutation of the split,
and masks from a generator seeded by ``(seed, s, m)``. Every rank masks the whole
global micro-batch and keeps its slice, so a run on W processes with micro-batch b
sees exactly the batches of one process with micro-batch W*b, and resuming at step
s reproduces the uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import torch

from lvbert.data.masking import MaskingConfig, MlmCollator
from lvbert.data.packed import open_data
from lvbert.errors import LvBertError


class PretrainBatches:
    """Callable ``(step, micro) -> batch`` of masked sequences for one rank.

    Args:
        data_dir: prepared data (a folder or :class:`lvbert.data.packed.PreparedData`).
        micro_batch_size: sequences per micro-batch on each process.
        grad_accum: micro-batches per optimizer step.
        rank, world_size: this process and the number of processes.
        masking: masking settings (BERT 80/10/10 for MLM, ELECTRA 85/15 for replaced-token detection).
        seed: data order and masks.
    """

    def __init__(
        self,
        data_dir,
        micro_batch_size: int,
        grad_accum: int = 1,
        rank: int = 0,
        world_size: int = 1,
        masking: MaskingConfig | None = None,
        seed: int = 0,
        split: str = "train",
        max_positions: int | None = None,
    ):
        data = open_data(data_dir)
        self.dataset = data.split(split, max_positions=max_positions)
        self.global_size = micro_batch_size * world_size
        if len(self.dataset) < self.global_size:
            raise LvBertError(
                f"the {split} split has {len(self.dataset)} sequences, fewer than one global batch of {self.global_size}; "
                "lower --batch-size or prepare more text"
            )
        self.micro_batch_size = micro_batch_size
        self.grad_accum = grad_accum
        self.rank = rank
        self.seed = seed
        self.collator = MlmCollator(data.tokenizer, masking or MaskingConfig(), seed=seed)
        self.batches_per_epoch = len(self.dataset) // self.global_size  # drop the ragged tail
        self._epoch, self._perm = -1, None
        ids, types = self.dataset._open()
        self._ids, self._types = ids, types

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
            self._epoch = epoch
        return self._perm

    def __call__(self, step: int, micro: int) -> dict:
        index = step * self.grad_accum + micro  # global micro-batch index
        epoch, pos = divmod(index, self.batches_per_epoch)
        rows = np.sort(self._permutation(epoch)[pos * self.global_size : (pos + 1) * self.global_size])
        input_ids = torch.from_numpy(self._ids[rows].astype(np.int64))
        token_type_ids = torch.from_numpy(self._types[rows].astype(np.int64))
        attention_mask = (input_ids != self.dataset.pad_token_id).long()
        self.collator.generator.manual_seed(hash((self.seed, step, micro)) & 0x7FFF_FFFF_FFFF)
        masked, labels = self.collator.mask(input_ids, attention_mask)
        mine = slice(self.rank * self.micro_batch_size, (self.rank + 1) * self.micro_batch_size)
        return {
            "input_ids": masked[mine],
            "token_type_ids": token_type_ids[mine],
            "attention_mask": attention_mask[mine],
            "labels": labels[mine],
            "original_ids": input_ids[mine],
        }
