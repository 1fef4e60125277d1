"""Pre-training throughput at small size: our ``mlm`` and ``electra`` objectives against
Hugging Face ELECTRA doing the same step, in the same run.

    .venv/bin/python benchmarks/bench_pretrain.py                 # batch 32 x 128, 3 timed steps
    .venv/bin/python benchmarks/bench_pretrain.py --batch 16 --steps 5
    .venv/bin/python benchmarks/bench_pretrain.py --quick         # smoke test: batch 4 x 32, prints only

Variants, each one optimizer step as the training loop does it (forward under fp32 or
bf16 autocast, backward, clipping at 1.0, AdamW with ``build_optimizer``'s groups), train
mode with dropout:

- ``lvbert mlm (<arch>)``: ``LvBertForMaskedLM`` through ``mlm_objective``, vocabulary
  logits only at the masked positions;
- ``hf mlm``: ``ElectraForMaskedLM(labels=...)`` of the same size (logits at every
  position): the reference for the ``mlm`` rows;
- ``lvbert electra (<arch>)``: ``ElectraPretrainer(LvBertForPreTraining, 64)`` through
  ``electra_objective``: generator MLM at the masked positions, Gumbel-max sampling of
  replacements, discriminator BCE over all tokens, loss = MLM + 50 x RTD;
- ``hf electra``: ``ElectraForMaskedLM`` generator (hidden 64, 1 head, FFN 256) +
  ``ElectraForPreTraining`` discriminator (hidden 256, 12 layers, 4 heads, FFN 1024),
  embedding size 128, word/position/type embeddings and their LayerNorm shared, the
  generator's decoder tied to them; the same step: generator logits (over all tokens,
  as HF computes them) and loss, sampling at the masked positions with our sampler
  (``lvbert.objectives.sample_tokens``, so sampling is not part of the difference),
  discriminator loss over all tokens, loss = MLM + 50 x RTD. The reference for the ``electra`` rows.
  With ``--archs bert`` our pair has exactly HF's parameter count (checked).

**Model FLOPs utilisation** (``mfu``, the ``mlm`` rows): the FLOPs a step needs, 6 x (backbone
multiply-accumulates per token x tokens + MLM head MACs x masked tokens), over the step time, as a
share of the square-matmul peak of the same dtype measured in the same run (at the start and the
end; the lower is used, so MFU is not flattered). HF's row counts the same needed FLOPs, so its MFU
is lower by the work it spends on logits at unmasked positions.

Batches are synthetic: random token ids, no padding, 15% of the positions chosen, 85% of
those replaced by ``[MASK]`` (ELECTRA's masking), labels the original ids. Variants
alternate step by step (the order flips every repetition) so that other load on the
shared machine hits them alike; the median step is reported. Writes
``benchmarks/results/pretrain.json`` (not with ``--quick``) and prints a markdown table.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining  # noqa: E402

from lvbert.arch import GENERATOR_HIDDEN, count_macs, get_size  # noqa: E402
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertForPreTraining  # noqa: E402
from lvbert.objectives import ElectraPretrainer, electra_objective, mlm_objective, sample_tokens  # noqa: E402
from lvbert.training.optim import build_optimizer  # noqa: E402

from _machine import machine_info, matmul_peak  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain.json"
TARGET = 1.5
MASK_ID = 103  # BERT uncased [MASK]
RTD_WEIGHT = 50.0


def make_batch(batch: int, seq: int, vocab: int, seed: int = 0) -> dict:
    """ELECTRA masking of random ids: 15% chosen, 85% of those -> [MASK], labels = original ids."""
    g = torch.Generator().manual_seed(seed)
    original = torch.randint(1000, vocab, (batch, seq), generator=g)
    chosen = torch.rand(batch, seq, generator=g) < 0.15
    to_mask = chosen & (torch.rand(batch, seq, generator=g) < 0.85)
    return {
        "input_ids": torch.where(to_mask, torch.full_like(original, MASK_ID), original),
        "attention_mask": torch.ones_like(original),
        "token_type_ids": torch.zeros_like(original),
        "labels": torch.where(chosen, original, torch.full_like(original, -100)),
    }


def autocast(dtype: str):
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- models


def hf_configs(vocab: int, generator_hidden: int) -> tuple[ElectraConfig, ElectraConfig]:
    common = dict(vocab_size=vocab, embedding_size=128, num_hidden_layers=12, max_position_embeddings=512,
                  type_vocab_size=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    disc = ElectraConfig(hidden_size=256, num_attention_heads=4, intermediate_size=1024, **common)
    gen = ElectraConfig(hidden_size=generator_hidden, num_attention_heads=max(1, generator_hidden // 64),
                        intermediate_size=4 * generator_hidden, **common)
    return disc, gen


class HfElectraPretrainer(torch.nn.Module):
    """HF generator + discriminator sharing embeddings, as ELECTRA trains them."""

    def __init__(self, vocab: int, generator_hidden: int):
        super().__init__()
        disc_cfg, gen_cfg = hf_configs(vocab, generator_hidden)
        self.discriminator = ElectraForPreTraining(disc_cfg)
        self.generator = ElectraForMaskedLM(gen_cfg)
        # The embeddings module (word, position, type, LayerNorm) is shared; each model
        # keeps its own E -> H projection; the generator's decoder is tied to the words.
        self.generator.electra.embeddings = self.discriminator.electra.embeddings
        self.generator.generator_lm_head.weight = self.discriminator.electra.embeddings.word_embeddings.weight

    def forward(self, input_ids, attention_mask, token_type_ids, labels) -> dict:
        gen = self.generator(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             labels=labels)  # logits [B, L, V] at every position
        selected = labels != -100
        with torch.no_grad():
            sampled = sample_tokens(gen.logits[selected])  # the sampler ours uses, [M]
            original = torch.where(selected, labels, input_ids)
            corrupted = original.clone()
            corrupted[selected] = sampled
            replaced = (corrupted != original).long()
        disc = self.discriminator(input_ids=corrupted, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                  labels=replaced)
        return {"loss": gen.loss + RTD_WEIGHT * disc.loss}


def build_variants(archs: list[str], vocab: int, generator_hidden: int) -> tuple[dict, dict]:
    """name -> (model, objective, reference name); and parameter counts."""
    torch.manual_seed(0)
    variants, params = {}, {}
    for arch in archs:
        cfg = LvBertConfig.from_size("small", arch=arch, vocab_size=vocab)
        variants[f"lvbert mlm ({arch})"] = (LvBertForMaskedLM(cfg), mlm_objective, "hf mlm")
    disc_cfg, _ = hf_configs(vocab, generator_hidden)
    variants["hf mlm"] = (ElectraForMaskedLM(disc_cfg), lambda m, b: {"loss": m(**b).loss}, "hf mlm")
    for arch in archs:
        cfg = LvBertConfig.from_size("small", arch=arch, vocab_size=vocab)
        model = ElectraPretrainer(LvBertForPreTraining(cfg), generator_hidden, rtd_weight=RTD_WEIGHT)
        variants[f"lvbert electra ({arch})"] = (model, electra_objective, "hf electra")
    variants["hf electra"] = (HfElectraPretrainer(vocab, generator_hidden), lambda m, b: m(**b), "hf electra")
    for name, (model, _, _) in variants.items():
        params[name] = sum(p.numel() for p in model.parameters())  # shared tensors counted once
    if "bert" in archs:  # the same model pair, two implementations
        assert params["lvbert electra (bert)"] == params["hf electra"], params
        assert params["lvbert mlm (bert)"] == params["hf mlm"], params
    return variants, params


def make_step(model, objective, batch: dict, dtype: str):
    optimizer = build_optimizer(model, lr=1e-4)
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        with autocast(dtype):
            loss = objective(model, batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def time_interleaved(fns: dict, steps: int, warmup: int) -> dict:
    """Median seconds per call of each function; calls interleaved, the order flipped each repetition."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    names = list(fns)
    for rep in range(steps):
        for name in names if rep % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--archs", default="lv-bert-small,bert", help="our architectures (small size)")
    p.add_argument("--objectives", default="mlm,electra")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--quick", action="store_true", help="smoke test: batch 4 x 32, 1 step; prints only")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.seq_len, args.steps, args.warmup, args.no_write = 4, 32, 1, 1, True

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    generator_hidden = GENERATOR_HIDDEN["small"]
    variants, params = build_variants(args.archs.split(","), args.vocab, generator_hidden)
    objectives = args.objectives.split(",")
    variants = {k: v for k, v in variants.items() if k.split(" ")[1] in objectives}
    batch = make_batch(args.batch, args.seq_len, args.vocab)
    tokens = args.batch * args.seq_len
    masked = int((batch["labels"] != -100).sum())
    peaks = {"start": {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}}
    rows = []
    t_start = time.time()
    for dtype in args.dtypes.split(","):
        fns = {name: make_step(model, objective, batch, dtype) for name, (model, objective, _) in variants.items()}
        for name, sec in time_interleaved(fns, args.steps, args.warmup).items():
            rows.append({"dtype": dtype, "objective": name.split(" ")[1], "model": name, "params": params[name],
                         "s_per_step": sec, "tokens_per_s": tokens / sec})
        del fns
    for r in rows:  # speed-up against the HF reference of the same objective and dtype
        ref_name = variants[r["model"]][2]
        ref = next(x for x in rows if x["dtype"] == r["dtype"] and x["model"] == ref_name)
        r["vs_hf"] = round(r["tokens_per_s"] / ref["tokens_per_s"], 2)
    peaks["end"] = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    size = get_size("small", vocab_size=args.vocab)
    head_macs = size.hidden_size * size.embedding_size + size.embedding_size * args.vocab
    for r in rows:
        if r["objective"] == "mlm":
            arch = r["model"][len("lvbert mlm ("):-1] if r["model"].startswith("lvbert") else "bert"
            flops = 6 * (count_macs(arch, size, args.seq_len) * tokens + head_macs * masked)
            peak = min(peaks["start"][r["dtype"]], peaks["end"][r["dtype"]])
            r["model_tflops_per_step"] = round(flops / 1e12, 4)
            r["mfu"] = round(flops / r["s_per_step"] / 1e12 / peak, 4)
    for r in rows:
        r["tokens_per_s"] = round(r["tokens_per_s"])
        r["s_per_step"] = round(r["s_per_step"], 3)
    info["load_average_at_end"] = os.getloadavg()[0]
    info["wall_s"] = round(time.time() - t_start, 1)

    hf_model = variants["hf electra"][0].discriminator if "hf electra" in variants else variants["hf mlm"][0]
    hf_attn = getattr(hf_model.config, "_attn_implementation", None)
    result = {
        "benchmark": "pre-training step, small size: lvbert mlm / electra vs HF ElectraForMaskedLM / ElectraForPreTraining",
        "config": {"batch": args.batch, "seq_len": args.seq_len, "vocab": args.vocab, "steps": args.steps,
                   "warmup": args.warmup, "quick": args.quick, "generator_hidden": generator_hidden,
                   "rtd_weight": RTD_WEIGHT, "target_vs_hf_electra": TARGET, "hf_attn_implementation": hf_attn,
                   "data": "synthetic random ids, no padding, 15% chosen, 85% of those [MASK]",
                   "step": "forward (autocast for bf16), backward, clip 1.0, AdamW (build_optimizer)"},
        "machine": info,
        "matmul_peak_tflops": peaks,
        "throughput": rows,
    }
    print(markdown(result))
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


def markdown(result: dict) -> str:
    c, m = result["config"], result["machine"]
    lines = [
        f"Batch {c['batch']} x {c['seq_len']}{' (--quick)' if c['quick'] else ''}, vocab {c['vocab']}, "
        f"generator hidden {c['generator_hidden']}; {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
        f"transformers {m['transformers']}; load average {m['load_average_at_start']:.1f} -> {m['load_average_at_end']:.1f}.",
        "",
        "| dtype | objective | model | parameters | s/step | tokens/s | vs HF | MFU |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    pk = result.get("matmul_peak_tflops")
    if pk:
        lines.insert(1, f"Matmul peak TFLOP/s (start -> end): fp32 {pk['start']['fp32']:.3f} -> {pk['end']['fp32']:.3f}, "
                        f"bf16 {pk['start']['bf16']:.3f} -> {pk['end']['bf16']:.3f}.")
    for r in result["throughput"]:
        mfu = f"{r['mfu']:.1%}" if "mfu" in r else ""
        lines.append(f"| {r['dtype']} | {r['objective']} | {r['model']} | {r['params']:,} | {r['s_per_step']:.3f} | "
                     f"{r['tokens_per_s']:,} | {r['vs_hf']:.2f}x | {mfu} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
