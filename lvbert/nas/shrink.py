"""NAS-BERT's progressive shrinking (Xu et al., KDD 2021, section 3.3): candidates in bins by size
(and latency), and rounds that score a sample of each bin's alive candidates on dev batches and drop
the worse half, until each bin keeps its best few."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch
from torch import nn

from lvbert.utils import atomic_write_text


def assign_bins(params: list[int], latency: list[float] | None, bins: int) -> list[int]:
    """NAS-BERT's bins: bin b holds the candidates with (b-1)/B < p/p_max <= b/B; with ``latency``, a
    candidate slower than its bin's bound (b/B of the slowest) is dropped (-1)."""
    p_top = max(params)
    l_top = max(latency) if latency else None
    out = []
    for i, p in enumerate(params):
        b = min(bins - 1, max(0, math.ceil(p / p_top * bins) - 1))
        if latency is not None and latency[i] > (b + 1) / bins * l_top * (1 + 1e-9):
            b = -1
        out.append(b)
    return out



def shrink_steps(steps: int, start: float, rounds: int) -> list[int]:
    """The steps after which a shrinking round runs: evenly from ``start`` x steps to the last step."""
    first = max(1, round(start * steps))
    if rounds <= 0:
        return []
    if rounds == 1:
        return [steps]
    return sorted({min(steps, first + round(k * (steps - first) / (rounds - 1))) for k in range(rounds)})



def rounds_needed(bin_sizes: list[int], sample: int, keep: int) -> int:
    """Rounds until every bin holds at most ``keep``: each round drops half of ``sample`` (or of the bin)."""
    worst = 0
    for n in bin_sizes:
        r = 0
        while n > keep:
            n -= max(1, min(min(n, sample) // 2, n - keep))
            r += 1
        worst = max(worst, r)
    return worst



class BlockTrainer(nn.Module):
    """What the loop trains for one block: the block supernet, and (as buffers, saved in checkpoints)
    which candidates are alive and how many shrinking rounds ran."""

    def __init__(self, block_net: nn.Module, num_candidates: int):
        super().__init__()
        self.net = block_net
        self.register_buffer("alive", torch.ones(num_candidates, dtype=torch.bool))
        self.register_buffer("rounds_done", torch.zeros((), dtype=torch.long))



def dev_batches(valid: dict, batch_size: int, count: int, device) -> list[dict]:
    keys = ("input_ids", "attention_mask", "token_type_ids")
    n = valid["input_ids"].shape[0]
    out = []
    for k in range(min(count, math.ceil(n / batch_size))):
        out.append({key: valid[key][k * batch_size : (k + 1) * batch_size].to(device) for key in keys if valid.get(key) is not None})
    return out



def shrink_round(model, per_bin, sample: int, keep: int, seed: int, round_index: int, last: bool, dev_loss,
                 log_path: Path, step: int, n: int) -> None:  # fmt: skip
    """One round of progressive shrinking of block ``n``: per bin, sample up to ``sample`` alive candidates,
    score them with ``dev_loss(i)`` and drop the worst half (the last round keeps the best ``keep``);
    the round's lines go to ``log_path`` (JSON lines, replacing an interrupted run's same round)."""
    lines = []
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    for k, members in enumerate(per_bin):
        alive = [i for i in members if bool(model.alive[i])]
        if len(alive) <= keep:
            continue
        rng = random.Random(f"{seed}/shrink/{n}/{round_index}/{k}")
        sampled = sorted(rng.sample(alive, min(sample, len(alive))))
        scored = sorted((dev_loss(i), i) for i in sampled)
        if last:
            drop = [i for _, i in scored[keep :]] + [i for i in alive if i not in set(sampled)]
        else:
            drop = [i for _, i in scored[len(scored) - max(1, min(len(scored) // 2, len(alive) - keep)) :]]
        for i in drop:
            model.alive[i] = False
        lines.append(json.dumps({"step": step, "round": round_index, "bin": k, "alive_before": len(alive),
                                 "sampled": len(sampled), "dropped": len(drop), "best_dev_loss": scored[0][0],
                                 "worst_dev_loss": scored[-1][0], "seconds": round(time.perf_counter() - t0, 3)}))  # fmt: skip
        t0 = time.perf_counter()
    model.train(was_training)
    old = log_path.read_text() if log_path.exists() else ""
    # the round's lines replace any of the same round from an interrupted run (resume re-runs it)
    keep = [ln for ln in old.splitlines() if ln and json.loads(ln).get("round") != round_index]
    atomic_write_text(log_path, "\n".join(keep + lines) + ("\n" if keep or lines else ""))

