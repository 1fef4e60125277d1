"""How long KG-BERT's full filtered link-prediction test takes: UMLS (661 test triples x 2 sides x 135
entities = 178,470 inputs) scored by an lvbert classifier of a given size, fp32 and bf16.

The weights are random (speed does not depend on them); the tokenizer is the demo data's (a
prepared data folder, ``--data``). The matmul peak is measured in the same run. Writes
``benchmarks/results/kg.json``.

    .venv/bin/python benchmarks/bench_kg.py --data runs/quickstart/data [--size small] [--max-test N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import machine_info, matmul_peak  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "kg.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared demo data (its tokenizer)")
    ap.add_argument("--size", default="small")
    ap.add_argument("--arch", default="lv-bert-small")
    ap.add_argument("--dataset", default="umls")
    ap.add_argument("--max-test", type=int, default=None)
    ap.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args(argv)

    from lvbert.data.packed import open_data
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForSequenceClassification
    from lvbert.tasks.kg import evaluate_model, load_graph

    tok = open_data(args.data).tokenizer
    graph = load_graph(args.dataset)
    torch.manual_seed(0)
    model = LvBertForSequenceClassification(LvBertConfig.from_size(args.size, arch=args.arch, vocab_size=len(tok),
                                                                   num_labels=2)).eval()  # fmt: skip
    meta = {"task": "link", "max_seq_len": None, "labels": ["0", "1"]}
    peak = matmul_peak()
    result = {"machine": machine_info(), "settings": vars(args), "matmul_peak_tflops_fp32": round(peak, 3), "runs": {}}
    for precision in ("bf16", "fp32"):
        r = evaluate_model(model, tok, graph, meta, "test", max_test=args.max_test, batch_size=args.batch,
                           bf16=precision == "bf16")  # fmt: skip
        result["runs"][precision] = {"seconds": r["seconds"], "inputs": r["scored"], "inputs_per_second": r["inputs_per_second"],
                                     "full_protocol": r["full_protocol"]}  # fmt: skip
        print(f"{args.dataset} {args.size} {precision}: {r['scored']:,} inputs in {r['seconds']} s "
              f"({r['inputs_per_second']:,} inputs/s, full protocol: {r['full_protocol']})", flush=True)  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"matmul peak {peak:.3f} TFLOP/s; wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
