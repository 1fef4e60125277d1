"""Training and forward throughput of LvBertForMaskedLM (arch ``bert``, size small) against
Hugging Face ``ElectraForMaskedLM`` with the same configuration, in the same run; plus the
time of one C, A and F sub-layer.

    .venv/bin/python benchmarks/bench_model.py                  # batch 32 x 128, 3 timed steps
    .venv/bin/python benchmarks/bench_model.py --batch 8 --steps 2

Variants, each timed as one optimizer step (forward, backward, AdamW) in train mode
with dropout, 15% of the tokens carrying labels:
- ``lvbert (masked logits)``: our head computes vocabulary logits only at the labelled
  positions (the default when ``labels`` are given);
- ``lvbert (full logits)``: every position's logits, then cross-entropy (what HF does);
- ``hf electra``: ``ElectraForMaskedLM(labels=...)`` (full logits).
Forward-only runs every model without labels (full logits for both), under no_grad.
Variants alternate step by step so that other load on the machine hits them alike; the
median step is reported. Writes ``benchmarks/results/model.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import ElectraConfig, ElectraForMaskedLM  # noqa: E402

from lvbert.modeling_lvbert import (  # noqa: E402
    AttentionLayer,
    DynamicConvLayer,
    FeedForwardLayer,
    LvBertConfig,
    LvBertForMaskedLM,
)

from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results" / "model.json"


def build_models(vocab: int):
    lv_config = LvBertConfig.from_size("small", arch="bert", vocab_size=vocab)
    hf_config = ElectraConfig(
        vocab_size=vocab,
        embedding_size=lv_config.embedding_size,
        hidden_size=lv_config.hidden_size,
        num_hidden_layers=len(lv_config.arch) // 2,
        num_attention_heads=lv_config.num_attention_heads,
        intermediate_size=lv_config.intermediate_size,
        max_position_embeddings=lv_config.max_position_embeddings,
        hidden_dropout_prob=lv_config.hidden_dropout_prob,
        attention_probs_dropout_prob=lv_config.attention_probs_dropout_prob,
    )
    torch.manual_seed(0)
    ours = LvBertForMaskedLM(lv_config)
    hf = ElectraForMaskedLM(hf_config)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_hf = sum(p.numel() for p in hf.parameters())
    assert n_ours == n_hf, (n_ours, n_hf)  # same model, two implementations
    return ours, hf, n_ours


def make_batch(batch: int, seq: int, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    chosen = torch.rand(batch, seq, generator=g) < 0.15
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return ids, mask, labels


def autocast(dtype: str):
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_steps(ours, hf, ids, mask, labels, dtype: str):
    """name -> callable doing one optimizer step."""
    opts = {id(m): torch.optim.AdamW(m.parameters(), lr=1e-4) for m in (ours, hf)}

    def step(model, loss_fn):
        def run():
            opt = opts[id(model)]
            opt.zero_grad(set_to_none=True)
            with autocast(dtype):
                loss = loss_fn(model)
            loss.backward()
            opt.step()

        return run

    def ours_full(m):
        logits = m(input_ids=ids, attention_mask=mask).logits  # [B, L, V]
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)

    return {
        "lvbert (masked logits)": step(ours, lambda m: m(input_ids=ids, attention_mask=mask, labels=labels).loss),
        "lvbert (full logits)": step(ours, ours_full),
        "hf electra": step(hf, lambda m: m(input_ids=ids, attention_mask=mask, labels=labels).loss),
    }


def forward_steps(ours, hf, ids, mask, dtype: str):
    def step(model):
        def run():
            with torch.no_grad(), autocast(dtype):
                model(input_ids=ids, attention_mask=mask)

        return run

    return {"lvbert": step(ours), "hf electra": step(hf)}


def time_alternating(fns: dict, steps: int, warmup: int) -> dict:
    """Median seconds per call of each function, calls interleaved across functions."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def time_sublayers(batch: int, seq: int, steps: int) -> list[dict]:
    config = LvBertConfig.from_size("small", arch="CAF")
    rows = []
    for dtype in ("fp32", "bf16"):
        fns = {}
        for name, cls in (("C", DynamicConvLayer), ("A", AttentionLayer), ("F", FeedForwardLayer)):
            layer = cls(config).train()
            x = torch.randn(batch, seq, config.hidden_size, requires_grad=True)

            def run(layer=layer, x=x):
                with autocast(dtype):
                    y = layer(x)
                y.float().sum().backward()

            fns[name] = run
        for name, sec in time_alternating(fns, steps=max(steps, 5), warmup=2).items():
            rows.append({"layer": name, "dtype": dtype, "ms_fwd_bwd": round(sec * 1e3, 2)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    info = machine_info()
    ours, hf, n_params = build_models(args.vocab)
    ids, mask, labels = make_batch(args.batch, args.seq_len, args.vocab)
    tokens = args.batch * args.seq_len
    rows = []
    t_start = time.time()
    for dtype in args.dtypes.split(","):
        print(f"timing {dtype} training and forward ...", file=sys.stderr, flush=True)
        ours.train(), hf.train()
        for name, sec in time_alternating(train_steps(ours, hf, ids, mask, labels, dtype), args.steps, args.warmup).items():
            rows.append({"mode": "train", "dtype": dtype, "model": name, "s_per_step": sec, "tokens_per_s": tokens / sec})
        ours.eval(), hf.eval()
        for name, sec in time_alternating(forward_steps(ours, hf, ids, mask, dtype), args.steps, args.warmup).items():
            rows.append({"mode": "forward", "dtype": dtype, "model": name, "s_per_step": sec, "tokens_per_s": tokens / sec})
    for r in rows:  # speed-up against HF in the same mode and dtype
        ref = next(x for x in rows if x["mode"] == r["mode"] and x["dtype"] == r["dtype"] and x["model"] == "hf electra")
        r["vs_hf"] = round(r["tokens_per_s"] / ref["tokens_per_s"], 2)
        r["tokens_per_s"] = round(r["tokens_per_s"])
        r["s_per_step"] = round(r["s_per_step"], 3)
    print("timing sub-layers ...", file=sys.stderr, flush=True)
    sublayers = time_sublayers(args.batch, args.seq_len, args.steps)
    info["load_average_at_end"] = os.getloadavg()[0]
    info["wall_s"] = round(time.time() - t_start, 1)

    result = {
        "benchmark": "LvBertForMaskedLM arch bert size small vs HF ElectraForMaskedLM, same config",
        "config": {"batch": args.batch, "seq_len": args.seq_len, "vocab": args.vocab, "params": n_params,
                   "masked_fraction": 0.15, "steps": args.steps, "warmup": args.warmup, "optimizer": "AdamW"},
        "machine": info,
        "throughput": rows,
        "sublayers": sublayers,
    }
    table = markdown(result)
    print(table)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


def markdown(result: dict) -> str:
    c, m = result["config"], result["machine"]
    lines = [
        f"Batch {c['batch']} x {c['seq_len']}, vocab {c['vocab']}, {c['params']:,} parameters; "
        f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, transformers {m['transformers']}; "
        f"load average {m['load_average_at_start']:.1f} -> {m['load_average_at_end']:.1f}.",
        "",
        "| mode | dtype | model | s/step | tokens/s | vs HF |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        lines.append(f"| {r['mode']} | {r['dtype']} | {r['model']} | {r['s_per_step']:.3f} | {r['tokens_per_s']:,} | {r['vs_hf']:.2f}x |")
    lines += ["", "| sub-layer (small, fwd+bwd) | fp32 ms | bf16 ms |", "|---|---:|---:|"]
    by = {(r["layer"], r["dtype"]): r["ms_fwd_bwd"] for r in result["sublayers"]}
    for t in "CAF":
        lines.append(f"| {t} | {by.get((t, 'fp32'), float('nan')):.1f} | {by.get((t, 'bf16'), float('nan')):.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
