"""``lvbert compress`` on the demo tasks: is the int8 model it ships worth it?

A teacher of 1.35M parameters (LV-BERT-small's bottom list ``CCAFFACFFACC`` at hidden 128, the
distillation experiment's), pre-trained with MLM on the demo corpus and fine-tuned on each task,
compressed with ``lvbert compress --profile quick --seeds 3 --budget params=0.33x``. The report of
each task (in ``OUT/<task>/report.json``) holds the teacher in fp32 PyTorch, the teacher under
onnxruntime's dynamic int8, the compressed int8 model and the same-size AF student distilled without
search; this script collects them with the wall time of each compress run. Every step is a folder,
so a stopped run continues.

    python experiments/compress.py --out runs/compress-exp
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TEACHER_ARCH = "CCAFFACFFACC"
TEACHER_SIZE = "tiny(hidden_size=128,num_attention_heads=2,intermediate_size=512,embedding_size=64,conv_heads=2)"


def _run(argv: list) -> None:
    from lvbert.cli import main

    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"failed ({rc}): lvbert {' '.join(map(str, argv))}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/compress-exp")
    ap.add_argument("--tasks", default="polarity,bbc-topic")
    ap.add_argument("--teacher-steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--latency-seq-len", type=int, default=64)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from lvbert.data.demo import fetch_demo

    demo = fetch_demo()
    tok, data, mlm = out / "tokenizer", out / "data", out / "teacher-mlm"
    if not (tok / "tokenizer.json").exists():
        _run(["tokenizer", "train", "--corpus", demo / "pretrain" / "train.txt", "--vocab-size", 4096, "--out", tok])
    if not (data / "manifest.json").exists():
        _run(["data", "prepare", "--corpus", demo / "pretrain" / "train.txt", "--tokenizer", tok, "--seq-len", 64,
              "--out", data])  # fmt: skip
    if not (mlm / "summary.json").exists():
        _run(["pretrain", "--data", data, "--arch", TEACHER_ARCH, "--size", TEACHER_SIZE, "--objective", "mlm",
              "--steps", args.teacher_steps, "--batch-size", 32, "--lr", "2e-3", "--eval-every", 1000, "--save-every",
              1000, "--no-progress", "--out", mlm, *(["--resume"] if (mlm / "run_config.yaml").exists() else [])])  # fmt: skip
    results = {}
    for task in args.tasks.split(","):
        teacher = out / f"teacher-{task}"
        if not (teacher / "results.json").exists():
            _run(["finetune", "--model", mlm, "--task", task, "--epochs", 3, "--lr", "1e-3", "--layer-decay", 1.0,
                  "--max-seq-len", 64, "--no-progress", "--out", teacher, "--resume"])  # fmt: skip
        t0 = time.perf_counter()
        _run(["compress", "--teacher", teacher, "--task", task, "--corpus", data, "--profile", args.profile,
              "--seeds", args.seeds, "--latency-seq-len", args.latency_seq_len, "--latency-threads", "1,2",
              "--no-progress", "--out", out / task])  # fmt: skip
        wall = time.perf_counter() - t0
        report = json.loads((out / task / "report.json").read_text())
        stages = report["stage_seconds"]
        results[task] = {"headline": report["headline"], "rows": report["rows"], "cpu": report["cpu"],
                         "compress_seconds_this_call": round(wall, 1),
                         "compress_seconds_stages": round(sum(stages.values()), 1), "stage_seconds": stages}  # fmt: skip
        print(report["headline"])
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
