"""Fitness of an arch = masked-LM accuracy of its path through the supernet (the LV-BERT paper's search).

The weights are inherited from the supernet: nothing is trained. The validation batch
has fixed masks, and correct predictions are counted exactly (integers), so evaluating
the same arch twice gives the same number. Needs torch.
"""

from __future__ import annotations

from typing import Callable

import torch

BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels")


class SupernetFitness:
    """``fitness_fn`` for :func:`lvbert.search.run_search` backed by a pre-trained supernet.

    Args:
        supernet: an ``LvBertSupernet``; ``supernet(..., labels=..., arch=arch)`` must return
            ``.loss`` (mean cross-entropy over masked positions) and ``.logits`` [M, V] for
            the M positions where ``labels != -100``, in row-major order.
        valid_batch: tensors ``input_ids``, ``labels`` (-100 where not masked), optionally
            ``attention_mask`` and ``token_type_ids``, each [N, L]: the fixed-mask validation set.
        batch_size: sequences per forward pass.
        bf16: run under bfloat16 autocast.
    """

    def __init__(self, supernet: torch.nn.Module, valid_batch: dict, batch_size: int = 64, bf16: bool = False) -> None:
        if "input_ids" not in valid_batch or "labels" not in valid_batch:
            raise ValueError("valid_batch needs 'input_ids' and 'labels'")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.supernet = supernet
        self.batch = {k: valid_batch[k] for k in BATCH_KEYS if valid_batch.get(k) is not None}
        n = {v.shape[0] for v in self.batch.values()}
        if len(n) != 1:
            raise ValueError(f"valid_batch tensors disagree on the number of sequences: {sorted(n)}")
        self.num_sequences = n.pop()
        self.batch_size = batch_size
        self.bf16 = bf16
        self._on_device: tuple[torch.device, dict] | None = None  # the batch moved once, not per candidate

    def __call__(self, archs: list[str]) -> list[dict]:
        return [self.evaluate(arch) for arch in archs]

    def _batch_on(self, device: torch.device) -> dict:
        if self._on_device is None or self._on_device[0] != device:
            self._on_device = (device, {k: v.to(device) for k, v in self.batch.items()})
        return self._on_device[1]

    def evaluate(self, arch: str) -> dict:
        """``fitness`` (masked-LM accuracy), ``loss`` (mean CE per masked token) and ``masked`` (count)."""
        from lvbert.objectives.mlm import evaluate_mlm

        batch = self._batch_on(next(self.supernet.parameters()).device)
        r = evaluate_mlm(self.supernet, batch, self.batch_size, arch=arch, bf16=self.bf16)
        return {"fitness": r["mlm_accuracy"], "loss": r["mlm_loss"], "masked": r["masked_tokens"]}

    def unigram_accuracy(self) -> float:
        """The fitness of a path that predicts the most frequent masked word everywhere (the plateau)."""
        from lvbert.objectives.mlm import unigram_accuracy

        return unigram_accuracy(self.batch)


def distributed_fitness(fitness_fn: Callable[[list[str]], list[dict]]) -> Callable[[list[str]], list[dict]]:
    """Spread a batch of archs over the processes of ``torch.distributed`` and gather the results.

    Rank r evaluates archs r, r + W, r + 2W, ...; every rank receives all results in the
    original order, so each rank's :func:`run_search` (same seed) proposes the same archs.
    Run ``run_search(..., write=(rank == 0))`` so that only one process writes files.
    Without an initialised process group this is ``fitness_fn`` itself.
    """

    def call(archs: list[str]) -> list[dict]:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return fitness_fn(archs)
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = fitness_fn(archs[rank::world]) if archs[rank::world] else []
        gathered: list[list[dict] | None] = [None] * world
        dist.all_gather_object(gathered, mine)
        out: list[dict | None] = [None] * len(archs)
        for r, results in enumerate(gathered):
            for j, res in enumerate(results or []):
                out[r + j * world] = res
        return out  # type: ignore[return-value]

    return call
