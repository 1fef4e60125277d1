"""Question-answering throughput: examples (windows) per second of a SQuAD training step and of
inference, lvbert's ``LvBertForQuestionAnswering`` against Hugging Face's
``ElectraForQuestionAnswering`` with the same configuration, in one run.

For each size preset: lvbert with arch ``bert`` (the same network as the ELECTRA model, equal
parameter counts checked) and with ``lv-bert-small`` (24 slots of convolution, attention and
feed-forward), and Hugging Face ELECTRA. Windows are full-length (``--seq-len`` 384, ELECTRA's
SQuAD setting) sequences of random token ids with random answer spans: SQuAD windows are mostly
full. A training step is forward, the start/end cross-entropy, backward and AdamW; inference is
the forward pass without gradients. Models alternate within every round so that other load on the
machine hits all alike; medians are reported with the matmul peak measured in the same run.
Writes ``benchmarks/results/squad.json``.

    .venv/bin/python benchmarks/bench_squad.py [--sizes tiny small] [--batch 16] [--steps 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import machine_info, matmul_peak  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "squad.json"


def build(size: str, seq_len: int) -> dict:
    from transformers import ElectraConfig, ElectraForQuestionAnswering

    from lvbert.modeling_lvbert import LvBertConfig, LvBertForQuestionAnswering

    vocab = 30522 if size != "tiny" else None
    extra = {"max_position_embeddings": max(512, seq_len), **({"vocab_size": vocab} if vocab else {})}
    torch.manual_seed(0)
    bert = LvBertConfig.from_size(size, arch="bert", **extra)
    hf_config = ElectraConfig(vocab_size=bert.vocab_size, embedding_size=bert.embedding_size, hidden_size=bert.hidden_size,
                              num_hidden_layers=len(bert.arch) // 2, num_attention_heads=bert.num_attention_heads,
                              intermediate_size=bert.intermediate_size, max_position_embeddings=bert.max_position_embeddings)  # fmt: skip
    models = {
        "lvbert bert": LvBertForQuestionAnswering(bert),
        "hf electra": ElectraForQuestionAnswering(hf_config),
        "lvbert lv-bert-small": LvBertForQuestionAnswering(LvBertConfig.from_size(size, arch="lv-bert-small", **extra)),
    }
    n = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    assert n["lvbert bert"] == n["hf electra"], n  # the same network in two implementations
    return {"models": models, "params": n, "vocab": bert.vocab_size}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=384)
    ap.add_argument("--steps", type=int, default=5, help="timed rounds per precision")
    args = ap.parse_args(argv)
    result = {"machine": machine_info(), "settings": vars(args),
              "matmul_peak_tflops": {"fp32": matmul_peak(), "bf16": matmul_peak(torch.bfloat16)}, "sizes": {}}  # fmt: skip
    g = torch.Generator().manual_seed(0)
    for size in args.sizes:
        built = build(size, args.seq_len)
        ids = torch.randint(5, built["vocab"], (args.batch, args.seq_len), generator=g)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
        starts = torch.randint(1, args.seq_len - 30, (args.batch,), generator=g)
        spans = {"start_positions": starts, "end_positions": starts + torch.randint(0, 30, (args.batch,), generator=g)}
        opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in built["models"].items()}
        out = {"params": built["params"], "train_examples_per_s": {}, "infer_examples_per_s": {}}
        for precision in ("fp32", "bf16"):
            ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
            train = {k: [] for k in built["models"]}
            infer = {k: [] for k in built["models"]}
            for r in range(args.steps + 1):  # round 0 warms up
                for name, model in built["models"].items():
                    model.train()
                    t0 = time.perf_counter()
                    with ctx():
                        loss = model(**batch, **spans).loss
                    loss.backward()
                    opts[name].step()
                    opts[name].zero_grad(set_to_none=True)
                    t1 = time.perf_counter()
                    model.eval()
                    with torch.no_grad(), ctx():
                        model(**batch)
                    t2 = time.perf_counter()
                    if r:
                        train[name].append(args.batch / (t1 - t0))
                        infer[name].append(args.batch / (t2 - t1))
            out["train_examples_per_s"][precision] = {k: round(statistics.median(v), 2) for k, v in train.items()}
            out["infer_examples_per_s"][precision] = {k: round(statistics.median(v), 2) for k, v in infer.items()}
        result["sizes"][size] = out
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| size | precision | model | train ex/s | inference ex/s | train vs HF |")
    print("|---|---|---|---:|---:|---:|")
    for size, out in result["sizes"].items():
        for p in ("fp32", "bf16"):
            tr, inf = out["train_examples_per_s"][p], out["infer_examples_per_s"][p]
            for name in tr:
                print(f"| {size} | {p} | {name} | {tr[name]} | {inf[name]} | {tr[name] / tr['hf electra']:.2f}x |")
    print(f"matmul peak {result['matmul_peak_tflops']} TFLOP/s; wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
