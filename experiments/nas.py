"""NAS-BERT's comparison at this machine's scale: a NAS-BERT model against a hand-designed BERT of
the same parameter count, both pre-trained from scratch with the same recipe and budget.

On the demo data (sequences of 64) with a teacher pre-trained by MLM (an lvbert MLM folder, e.g.
``experiments/distillation.py``'s: ``CCAFFACFFACC`` at hidden 128, 1.35M parameters):

1. ``lvbert nas train``: 4 blocks of 3 slots (the teacher's 12 slots / 4), widths 32/64/128, ops
   A, F, C3/C5/C7 and identity, block-wise distillation with progressive shrinking;
2. ``lvbert nas search`` for two parameter budgets;
3. per target and seed: the chosen arch and ``AF x n`` BERTs of at most its parameters (6 pairs,
   the widest that fits in width steps of 32 and of 16, as the paper's BERT-x baselines), each pre-trained from scratch with the
   same recipe (``--recipe kd``: NAS-BERT's prediction-layer KD from the teacher, weight 0.5, as the
   paper's "+KD" rows; ``--recipe mlm``: plain MLM), same steps, batch and learning rate, then MLM
   accuracy on the validation set and ``polarity`` dev accuracy after fine-tuning. Median and range
   over seeds. Every result is a file, so a stopped run continues.

    python experiments/nas.py --data DEMO_DATA --teacher TEACHER --out runs/nas-exp
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def _run(argv: list, out: Path | None = None) -> None:
    from lvbert.cli import main

    if out is not None and (Path(out) / "run_config.yaml").exists():
        argv = [*argv, "--resume"]
    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"failed ({rc}): lvbert {' '.join(map(str, argv))}")


def _bert_baseline(budget: int, vocab: int, embedding: int = 64, pairs: int = 6, step: int = 32) -> tuple[str, str, int]:
    """(arch, size string, params) of the widest AF x ``pairs`` at most ``budget`` (fewer pairs if none fits), its
    width a multiple of ``step`` and its heads width / ``step``."""
    from lvbert.arch import count_params, get_size

    for n in range(pairs, 0, -1):
        best = None
        for h in range(step, 513, step):
            size = get_size("tiny").replace(hidden_size=h, num_attention_heads=h // step, intermediate_size=4 * h,
                                            embedding_size=embedding, conv_heads=1, vocab_size=vocab)  # fmt: skip
            p = count_params("AF" * n, size)
            if p <= budget:
                best = (h, p)
        if best:
            h, p = best
            return ("AF" * n, f"tiny(hidden_size={h},num_attention_heads={h // step},intermediate_size={4 * h},"
                              f"embedding_size={embedding},conv_heads=1)", p)  # fmt: skip
    raise SystemExit(f"no BERT baseline fits {budget} parameters")


def _size_string(cfg: dict) -> str:
    keys = ("hidden_size", "num_attention_heads", "intermediate_size", "embedding_size", "conv_heads", "conv_kernel_size")
    return "tiny(" + ",".join(f"{k}={cfg[k]}" for k in keys) + ")"


def _ft_acc(folder: Path) -> float:
    return json.loads((folder / "results.json").read_text())["summary"]["dev/accuracy"]["median"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--out", default="runs/nas-exp")
    ap.add_argument("--targets", default="500K,900K")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--nas-steps", type=int, default=800, help="steps per block")
    ap.add_argument("--steps", type=int, default=1500, help="pre-training steps of each compared model")
    ap.add_argument("--task", default="polarity")
    ap.add_argument("--recipe", choices=("kd", "mlm"), default="kd", help="pre-training of the compared models")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    nas = out / "nas"
    t0 = time.time()
    if not all((nas / f"block-{n}" / "candidates.json").exists() for n in range(4)):
        _run(["nas", "train", "--teacher", args.teacher, "--data", args.data, "--size", "tiny", "--widths", "32,64,128",
              "--kernels", "3,5,7", "--steps", args.nas_steps, "--batch-size", "32", "--lr", "1e-3", "--bins", "5",
              "--sample", "40", "--keep", "4", "--dev-batches", "2", "--eval-sequences", "64", "--latency-seq-len",
              "64", "--save-every", "400", "--no-progress", "--out", nas], nas if (nas / "nas.json").exists() else None)  # fmt: skip
    timings["nas_train_s"] = round(time.time() - t0, 1)
    search = out / "search"
    if not (search / "results.json").exists():
        t1 = time.time()
        _run(["nas", "search", "--supernet", nas, "--data", args.data, "--targets", args.targets, "--top", "30",
              "--measure", "20", "--out", search])  # fmt: skip
        timings["nas_search_s"] = round(time.time() - t1, 1)
    found = json.loads((search / "results.json").read_text())
    vocab = json.loads((Path(args.teacher) / "config.json").read_text())["vocab_size"]
    models = {}
    for name, t in found["targets"].items():
        cfg = json.loads((search / t["model"] / "config.json").read_text())
        models[f"nas-{name}"] = (cfg["arch"], _size_string(cfg), t["params"])
        models[f"bert-{name}"] = _bert_baseline(t["params"], vocab)  # widths in steps of 32
        fine = _bert_baseline(t["params"], vocab, step=16)  # the closest below in steps of 16 (head width 16)
        if fine[1] != models[f"bert-{name}"][1]:
            models[f"bert16-{name}"] = fine
    rows = []
    for seed in range(args.seeds):
        for label, (arch, size, params) in models.items():
            pre = out / f"s{seed}-{label}-{args.recipe}"
            kd = ["--teacher", args.teacher, "--kd-weight", "0.5"] if args.recipe == "kd" else []
            if not (pre / "summary.json").exists():
                _run(["pretrain", "--data", args.data, "--arch", arch, "--size", size, "--objective", "mlm", "--steps",
                      args.steps, "--batch-size", "32", "--lr", "2e-3", "--seed", seed, "--eval-every", "1000000",
                      "--eval-sequences", "256", "--save-every", "500", "--no-progress", "--out", pre, *kd], pre)  # fmt: skip
            ft = out / f"s{seed}-{label}-{args.recipe}-ft"
            if not (ft / "results.json").exists():
                _run(["finetune", "--model", pre, "--task", args.task, "--out", ft, "--epochs", "3", "--lr", "1e-3",
                      "--layer-decay", "1", "--seed", seed, "--no-progress"])  # fmt: skip
            summary = json.loads((pre / "summary.json").read_text())
            rows.append({"seed": seed, "model": label, "arch": arch, "params": summary["params"],
                         "mlm_accuracy": summary["validation"]["mlm_accuracy"], "polarity": _ft_acc(ft)})  # fmt: skip
    table = {}
    for label, (arch, size, params) in models.items():
        mine = [r for r in rows if r["model"] == label]
        table[label] = {"arch": arch, "size": size, "params": mine[0]["params"] if mine else params}
        for k in ("mlm_accuracy", "polarity"):
            vals = [r[k] for r in mine]
            table[label][k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}
    result = {"targets": found["targets"], "latency_table_mean_abs_rel_error": found["latency_table_mean_abs_rel_error"],
              "select_seconds": found["select_seconds"], "blocks": {}, "models": table, "rows": rows,
              "timings": timings}  # fmt: skip
    for n in range(4):
        c = json.loads((nas / f"block-{n}" / "candidates.json").read_text())
        result["blocks"][n] = {"train_seconds": c["train_seconds"], "kept": len(c["candidates"]),
                               "best": c["candidates"][0]["block"], "best_dev_loss": c["candidates"][0]["dev_loss"]}  # fmt: skip
    result["recipe"] = args.recipe
    (out / f"results_{args.recipe}.json").write_text(json.dumps(result, indent=2) + "\n")  # experiments/results_nas.json
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
