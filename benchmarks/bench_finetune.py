"""Fine-tuning throughput: examples per second of the fine-tuning step and of evaluation.

    .venv/bin/python benchmarks/bench_finetune.py                     # tiny and small, fp32 and bf16
    .venv/bin/python benchmarks/bench_finetune.py --sizes tiny --steps 3

For each size preset (architecture ``lv-bert-small``, 24 slots; vocabulary 30,522
for ``small``, the preset's 4,096 for ``tiny``) a randomly initialised
``LvBertForSequenceClassification`` with two labels is trained with the recipe's
own pieces: ``classification_objective``, AdamW with layer-wise LR decay 0.8
(``build_optimizer``), the linear schedule, gradient clipping at 1.0, i.e. the
body of one step of the training loop. Batches are 32 full-length sequences of
random tokens (``--seq-len``, default 128: the recipe's maximum, so an upper
bound on the cost of a GLUE batch, which is usually shorter). fp32 and bf16
autocast steps alternate so that other load on the shared machine hits both
alike; the median step is reported. Evaluation is ``predict_logits`` (no grad,
eval mode) over ``--eval-examples`` sequences of the same length.

The machine is shared: the JSON records the load average and a 1024x1024 fp32
matmul speed at start and end, to read the numbers against.

Writes ``benchmarks/results/finetune.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from lvbert.modeling_lvbert import LvBertConfig, LvBertForSequenceClassification  # noqa: E402
from lvbert.objectives import classification_objective  # noqa: E402
from lvbert.tasks.encoding import Encoded, predict_logits  # noqa: E402
from lvbert.training.optim import build_optimizer, linear_schedule  # noqa: E402

from _machine import machine_info, matmul_peak  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results" / "finetune.json"
VOCAB = {"tiny": None, "small": 30522, "medium": 30522, "base": 30522}  # None: the preset's own



def build(size: str, arch: str):
    overrides = {"vocab_size": VOCAB[size]} if VOCAB.get(size) else {}
    config = LvBertConfig.from_size(size, arch=arch, num_labels=2, **overrides)
    torch.manual_seed(0)
    model = LvBertForSequenceClassification(config)
    optimizer = build_optimizer(model, 3e-4, 0.01, layer_decay=0.8, num_slots=config.num_slots)
    scheduler = linear_schedule(optimizer, 10, 10_000)
    return model, optimizer, scheduler


def random_batch(config, batch_size: int, seq_len: int, gen: torch.Generator) -> dict:
    ids = torch.randint(5, config.vocab_size, (batch_size, seq_len), generator=gen)
    ids[:, 0] = 2  # [CLS]
    types = torch.zeros_like(ids)
    types[:, seq_len // 2 :] = 1  # a sentence pair
    return {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.randint(0, 2, (batch_size,), generator=gen),
    }


def train_step(model, optimizer, scheduler, batch: dict, bf16: bool) -> float:
    """One optimizer step as the training loop does it; returns its wall time in seconds."""
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = classification_objective(model, batch)["loss"]
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def bench_size(size: str, arch: str, batch_size: int, seq_len: int, steps: int, eval_examples: int) -> list[dict]:
    model, optimizer, scheduler = build(size, arch)
    config = model.config
    gen = torch.Generator().manual_seed(1)
    batch = random_batch(config, batch_size, seq_len, gen)
    params = sum(p.numel() for p in model.parameters())
    times: dict[bool, list[float]] = {False: [], True: []}
    model.train()
    for bf16 in (False, True):  # warm-up (allocator, kernels), not timed
        train_step(model, optimizer, scheduler, batch, bf16)
    for _ in range(steps):
        for bf16 in (False, True):
            times[bf16].append(train_step(model, optimizer, scheduler, batch, bf16))
    ev = random_batch(config, eval_examples, seq_len, gen)
    enc = Encoded(ev["input_ids"].tolist(), ev["token_type_ids"].tolist(), None, [str(i) for i in range(eval_examples)])
    rows = []
    for bf16 in (False, True):
        predict_logits(model, Encoded(enc.input_ids[:8], enc.token_type_ids[:8], None, enc.index[:8]), 128, 0, bf16)
        t0 = time.perf_counter()
        predict_logits(model, enc, 128, 0, bf16)
        eval_s = time.perf_counter() - t0
        step = statistics.median(times[bf16])
        rows.append({
            "size": size,
            "arch": config.arch,
            "params": params,
            "precision": "bf16 autocast" if bf16 else "fp32",
            "batch_size": batch_size,
            "seq_len": seq_len,
            "timed_steps": steps,
            "step_seconds_median": round(step, 4),
            "step_seconds_all": [round(t, 4) for t in times[bf16]],
            "train_examples_per_s": round(batch_size / step, 2),
            "train_tokens_per_s": round(batch_size * seq_len / step, 1),
            "eval_examples_per_s": round(eval_examples / eval_s, 2),
        })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| size | params | precision | train examples/s | train tokens/s | eval examples/s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['params'] / 1e6:.2f}M | {r['precision']} | {r['train_examples_per_s']:.1f} | "
                     f"{r['train_tokens_per_s']:.0f} | {r['eval_examples_per_s']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=sorted(VOCAB))
    p.add_argument("--arch", default="lv-bert-small", help="architecture (default lv-bert-small)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps per precision (default 5)")
    p.add_argument("--eval-examples", type=int, default=256)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    info = machine_info()
    info["matmul_fp32_tflops_at_start"] = matmul_peak()
    rows = []
    for size in args.sizes:
        rows += bench_size(size, args.arch, args.batch_size, args.seq_len, args.steps, args.eval_examples)
        print(table(rows[-2:]).splitlines()[-2:][0] + "\n" + table(rows[-2:]).splitlines()[-1], flush=True)
    info["load_average_at_end"] = os.getloadavg()[0]
    info["matmul_fp32_tflops_at_end"] = matmul_peak()
    result = {"benchmark": "finetune", "machine": info, "settings": vars(args) | {"out": str(args.out)}, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
