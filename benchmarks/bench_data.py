"""Data pipeline benchmark: ``lvbert data prepare`` vs a plain Hugging Face pipeline.

Measures, on the same corpus, tokenizer and machine, in one run:
  1. preparation throughput in MB of text per second:
     - lvbert: ``prepare_data`` (tokenize + ELECTRA packing + memmap files), 1 and N processes;
     - baseline: ``datasets`` text loading + ``Dataset.map`` tokenization + the usual
       concatenate-and-chunk ``map`` into blocks of ``seq_len`` (run_mlm.py style), N processes;
  2. batches per second of loading + masking (batch 128, one process):
     - lvbert: ``PackedDataset`` + ``MlmCollator``;
     - baseline: the mapped dataset + ``DataCollatorForLanguageModeling``;
  3. as the yardstick, training steps per second of an ELECTRA-small-sized
     BERT (hidden 256, 12 layers, FFN 1024) from transformers at the same batch.

Usage: python benchmarks/bench_data.py [--corpus FILE] [--num-proc N]
Default corpus: the demo pre-training text (run ``lvbert data fetch demo`` first).
Writes benchmarks/results/data.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "data.json"


def _time(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def hf_baseline_prepare(corpus: Path, tokenizer_dir: Path, seq_len: int, num_proc: int, cache: Path):
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_caching()
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    raw = datasets.load_dataset("text", data_files=str(corpus), split="train", sample_by="paragraph", cache_dir=str(cache))

    def tokenize(batch):
        return tok(batch["text"], return_special_tokens_mask=True)

    tokenized = raw.map(tokenize, batched=True, num_proc=num_proc, remove_columns=["text"])

    def group(batch):
        joined = {k: sum(batch[k], []) for k in batch}
        n = (len(joined["input_ids"]) // seq_len) * seq_len
        return {k: [v[i : i + seq_len] for i in range(0, n, seq_len)] for k, v in joined.items()}

    return tokenized.map(group, batched=True, num_proc=num_proc)


def batches_per_second(loader, batches: int) -> float:
    it = iter(loader)
    next(it)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches / (time.perf_counter() - start)


def small_model_steps_per_second(batch_size: int, seq_len: int, vocab: int, steps: int = 2) -> float:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=vocab, hidden_size=256, num_hidden_layers=12, num_attention_heads=4,
                        intermediate_size=1024, max_position_embeddings=512)
    model = BertForMaskedLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(5, vocab, (batch_size, seq_len))
    labels = torch.where(torch.rand(ids.shape) < 0.15, ids, torch.full_like(ids, -100))

    def step():
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    from lvbert.data.demo import demo_dir
    from lvbert.data.masking import MaskingConfig, MlmCollator
    from lvbert.data.packed import PackedDataset
    from lvbert.data.prepare import prepare_data
    from lvbert.data.tokenizer import train_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(demo_dir() / "pretrain" / "train.txt"))
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: train one, vocab 30522)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--num-proc", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    corpus = Path(args.corpus)
    mb = corpus.stat().st_size / 1e6
    work = Path(tempfile.mkdtemp(prefix="lvbert-bench-data-"))
    try:
        tok_dir = Path(args.tokenizer) if args.tokenizer else train_tokenizer(corpus, work / "tok", 30522, progress=False)
        results = {}
        for n in sorted({1, args.num_proc}):
            t, out = _time(lambda: prepare_data(corpus, tok_dir, work / f"ours{n}", args.seq_len, num_proc=n,
                                                progress=False))
            results[f"lvbert_prepare_np{n}_s"] = t
        for n in sorted({1, args.num_proc}):
            t, hf = _time(lambda: hf_baseline_prepare(corpus, tok_dir, args.seq_len, n, work / f"hfcache{n}"))
            results[f"hf_prepare_np{n}_s"] = t

        from transformers import AutoTokenizer, DataCollatorForLanguageModeling

        ours = torch.utils.data.DataLoader(PackedDataset(out), batch_size=args.batch_size, shuffle=True,
                                           collate_fn=MlmCollator(out, MaskingConfig(mode="electra"), seed=0))
        hf_collator = DataCollatorForLanguageModeling(AutoTokenizer.from_pretrained(str(tok_dir)), mlm_probability=0.15)
        hf_loader = torch.utils.data.DataLoader(hf, batch_size=args.batch_size, shuffle=True, collate_fn=hf_collator)
        results["lvbert_batches_per_s"] = batches_per_second(ours, args.batches)
        results["hf_batches_per_s"] = batches_per_second(hf_loader, args.batches)
        results["small_model_train_steps_per_s"] = small_model_steps_per_second(args.batch_size, args.seq_len, 30522)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    prepare = {k: v for k, v in results.items() if "_prepare_" in k}
    best_ours = min(v for k, v in prepare.items() if k.startswith("lvbert"))
    best_hf = min(v for k, v in prepare.items() if k.startswith("hf"))
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "corpus": {"path": str(corpus), "megabytes": round(mb, 3)},
        "seq_len": args.seq_len, "batch_size": args.batch_size, "num_proc": args.num_proc,
        "prepare_seconds": {k[:-2]: round(v, 3) for k, v in prepare.items()},
        "prepare_mb_per_s": {k[:-2]: round(mb / v, 3) for k, v in prepare.items()},
        "prepare_speedup_vs_hf": round(best_hf / best_ours, 2),  # best setting of each
        "batches_per_s": {"lvbert": round(results["lvbert_batches_per_s"], 2), "hf": round(results["hf_batches_per_s"], 2)},
        "small_model_train_steps_per_s": round(results["small_model_train_steps_per_s"], 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    from lvbert.utils import atomic_write_json

    atomic_write_json(args.out, report)

    print(f"corpus {corpus.name}: {mb:.2f} MB; seq_len {args.seq_len}; batch {args.batch_size}; "
          f"{os.cpu_count()} CPUs ({report['machine']['processor']})\n")
    print("| measurement | lvbert | Hugging Face baseline |")
    print("|---|---|---|")
    for n in sorted({1, args.num_proc}):
        hf_cell = f"{mb / results[f'hf_prepare_np{n}_s']:.2f}"
        print(f"| prepare, {n} process(es), MB/s | {mb / results[f'lvbert_prepare_np{n}_s']:.2f} | {hf_cell} |")
    print(f"| prepare speed-up (best setting of each) | {report['prepare_speedup_vs_hf']}x | 1x |")
    print(f"| load + mask, batches/s (batch {args.batch_size}, 1 process) | {results['lvbert_batches_per_s']:.1f} | "
          f"{results['hf_batches_per_s']:.1f} |")
    print(f"| small-size model training steps/s (same batch, yardstick) | {results['small_model_train_steps_per_s']:.3f} | |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
