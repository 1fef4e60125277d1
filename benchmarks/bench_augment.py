"""How fast ``lvbert augment`` generates: augmented sentences per second for ``--method cbert``,
``mlm`` and ``random`` on the demo task ``polarity``'s first training sentences, with a masked LM
at tiny and at small size, in one run.

The weights are random (generation speed does not depend on them; C-MLM fine-tuning is timed by
the training-loop benchmarks); the tokenizer is the demo data's (a prepared data folder,
``--data``). ``mlm`` is timed for its whole work: the K candidates of every word (one forward pass
per word) and the sampling of the copies. The matmul peak is measured in the same run. Writes
``benchmarks/results/augment.json``.

    .venv/bin/python benchmarks/bench_augment.py --data runs/quickstart/data [--sentences 512] [--copies 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import machine_info, matmul_peak  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "augment.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared demo data (its tokenizer)")
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    ap.add_argument("--arch", default="lv-bert-small")
    ap.add_argument("--sentences", type=int, default=512)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)

    from lvbert.augment import MlmCandidates, augment_random, augment_texts, generate_cbert
    from lvbert.data.packed import open_data
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM
    from lvbert.tasks import demo_data_dir, get_task

    tok = open_data(args.data).tokenizer
    task = get_task("polarity")
    examples = task.read(demo_data_dir("polarity"), "train")[: args.sentences]
    texts, labels = [ex.text for ex in examples], task.label_ids(examples)
    result = {"machine": machine_info(), "settings": vars(args), "matmul_peak_tflops_fp32": matmul_peak(),
              "sentences_per_second": {}, "params": {}}  # fmt: skip

    def rate(fn) -> float:
        t0 = time.perf_counter()
        made = sum(len(v) for v in fn())
        return round(made / (time.perf_counter() - t0), 1)

    result["sentences_per_second"]["random"] = rate(lambda: augment_random(texts, args.copies, 0.4, 0))
    for size in args.sizes:
        torch.manual_seed(0)
        model = LvBertForMaskedLM(LvBertConfig.from_size(size, arch=args.arch, vocab_size=len(tok))).eval()
        result["params"][size] = sum(p.numel() for p in model.lvbert.parameters())
        cands = MlmCandidates(model, tok, 15, args.batch, 128)
        result["sentences_per_second"][f"cbert {size}"] = rate(lambda: generate_cbert(model, tok, texts, labels, args.copies, batch_size=args.batch))
        result["sentences_per_second"][f"mlm {size}"] = rate(lambda: augment_texts(texts, cands, args.copies, 0.4, 0))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| method | " + " | ".join(args.sizes) + " |")
    print("|---|" + "---:|" * len(args.sizes))
    sps = result["sentences_per_second"]
    for method in ("cbert", "mlm"):
        print(f"| {method} | " + " | ".join(str(sps[f"{method} {s}"]) for s in args.sizes) + " |")
    print(f"random (no model): {sps['random']} sentences/s; params {result['params']}; matmul peak "
          f"{result['matmul_peak_tflops_fp32']} TFLOP/s; wrote {RESULTS}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
