"""TinyBERT's claim at this machine's scale: does a distilled LV-BERT student beat the same student
without distillation, and how close does it come to its teacher?

On the demo data (a quickstart's prepared data, sequences of 64): a teacher with LV-BERT-small's
bottom list ``CCAFFACFFACC`` (12 slots) at hidden 128, pre-trained with MLM -- at this budget an
A/F-only teacher barely leaves the unigram plateau (the quickstart measurement), so the teacher
keeps the convolutions -- and a student about 4x smaller: the same list at the tiny size (hidden 64). Per seed, with equal student
steps and batch:

(a) the student pre-trained with MLM from scratch; (b) the student general-distilled from the
teacher; (c) each fine-tuned plainly on ``polarity``; (d) the general-distilled student
task-distilled from the fine-tuned teacher, on the original training set and on the set
augmented by ``lvbert augment`` with the teacher's MLM. Reports dev accuracy on polarity
(median and range over seeds), the teacher's, and MLM accuracy of (a) and of the teacher on
an out-of-domain text (``lvbert eval --corpus``; the general-distilled student's MLM head is
untrained, as in TinyBERT). Every result is a file, so a stopped run continues.

    python experiments/distillation.py --data runs/quickstart/data --ood-corpus OOD.txt --out runs/distill-exp
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

STUDENT_ARCH = "CCAFFACFFACC"
TEACHER_SIZE = "tiny(hidden_size=128,num_attention_heads=2,intermediate_size=512,embedding_size=64,conv_heads=2)"


def _run(argv: list[str], out: Path | None = None) -> None:
    """One lvbert command; ``out`` (a run folder): continue it with --resume when a stopped run left it."""
    from lvbert.cli import main

    if out is not None and (Path(out) / "run_config.yaml").exists():
        argv = [*argv, "--resume"]
    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"failed ({rc}): lvbert {' '.join(map(str, argv))}")


def _acc(folder: Path) -> float:
    res = json.loads((folder / "results.json").read_text())
    return res["summary"]["dev/accuracy"]["median"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared demo data (a quickstart run's data/)")
    ap.add_argument("--ood-corpus", default=None, help="an out-of-domain text file for lvbert eval --corpus")
    ap.add_argument("--out", default="runs/distill-exp")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--teacher-steps", type=int, default=3000)
    ap.add_argument("--student-steps", type=int, default=2000)
    ap.add_argument("--task", default="polarity")
    ap.add_argument("--copies", type=int, default=4, help="augmented copies per example")
    ap.add_argument("--epochs", type=int, default=2, help="task distillation: intermediate and prediction epochs each")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    common = ["--data", args.data, "--size", "tiny", "--num-slots", "12", "--batch-size", "32", "--lr", "2e-3",
              "--eval-every", "1000000", "--eval-sequences", "256", "--no-progress"]  # fmt: skip
    teacher = out / "teacher"
    if not (teacher / "summary.json").exists():
        cfg = out / "teacher.yaml"
        cfg.write_text(f"data: {args.data}\nout: {teacher}\nsize: '{TEACHER_SIZE}'\narch: {STUDENT_ARCH}\nobjective: mlm\n"
                       f"steps: {args.teacher_steps}\nbatch_size: 32\nlr: 1e-3\neval_every: {args.teacher_steps}\n"
                       "eval_sequences: 256\nprogress: false\nsave_every: 1000\n")  # fmt: skip
        _run(["pretrain", "--config", cfg], teacher)
    teacher_ft = out / "teacher-ft"
    if not (teacher_ft / "results.json").exists():
        _run(["finetune", "--model", teacher, "--task", args.task, "--out", teacher_ft, "--epochs", "3", "--lr", "1e-3",
              "--layer-decay", "1", "--no-progress"])  # fmt: skip
    aug = out / "task-augmented"
    if not (aug / "train.tsv").exists():
        _run(["augment", "--model", teacher, "--task", args.task, "--copies", args.copies, "--out", aug, "--no-progress"])
    rows = []
    for seed in range(args.seeds):
        s = str(seed)
        mlm = out / f"s{seed}-mlm"
        if not (mlm / "summary.json").exists():
            _run(["pretrain", "--arch", STUDENT_ARCH, "--objective", "mlm", "--steps", args.student_steps, "--seed", s,
                  "--out", mlm, *[c for c in common if c not in ("--num-slots", "12")]], mlm)  # fmt: skip
        gen = out / f"s{seed}-general"
        if not (gen / "summary.json").exists():
            _run(["distill", "--teacher", teacher, "--arch", STUDENT_ARCH, "--size", "tiny", "--data", args.data,
                  "--steps", args.student_steps, "--batch-size", "32", "--lr", "2e-3", "--seed", s, "--eval-every",
                  "1000000", "--no-progress", "--out", gen], gen)  # fmt: skip
        result = {"seed": seed}
        for name, model in (("mlm+ft", mlm), ("general+ft", gen)):
            ft = out / f"s{seed}-{name}"
            if not (ft / "results.json").exists():
                _run(["finetune", "--model", model, "--task", args.task, "--out", ft, "--epochs", "3", "--lr", "1e-3",
                      "--layer-decay", "1", "--seed", s, "--no-progress"])  # fmt: skip
            result[name] = _acc(ft)
        for name, data_dir in (("general+task-distill", None), ("general+task-distill+aug", aug)):
            td = out / f"s{seed}-{name}"
            if not (td / "results.json").exists():
                extra = ["--data-dir", data_dir] if data_dir else []
                _run(["distill", "--teacher", teacher_ft, "--student", gen, "--task", args.task, *extra, "--epochs",
                      args.epochs, "--pred-epochs", args.epochs, "--batch-size", "32", "--lr", "1e-3", "--seed", s,
                      "--no-progress", "--out", td], td)  # fmt: skip
            result[name] = _acc(td)
        rows.append(result)
    summary = {"teacher": _acc(teacher_ft), "seeds": args.seeds, "rows": rows}
    for k in ("mlm+ft", "general+ft", "general+task-distill", "general+task-distill+aug"):
        vals = [r[k] for r in rows]
        summary[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    if args.ood_corpus:
        from lvbert.recipes.eval import EvalConfig, evaluate

        summary["ood_mlm"] = {name: evaluate(EvalConfig(model=str(m), corpus=[args.ood_corpus], seq_len=64))
                              for name, m in (("teacher", teacher), ("student mlm (seed 0)", out / "s0-mlm"))}  # fmt: skip
    summary["params"] = _params(teacher, out / "s0-mlm")
    summary["seconds"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    return 0


def _params(*folders) -> dict:
    from transformers import AutoModel

    from lvbert.model_dir import quiet_transformers

    with quiet_transformers():  # an MLM folder loaded as a backbone reports its unused head
        return {str(f.name): sum(p.numel() for p in AutoModel.from_pretrained(f).parameters()) for f in folders}


if __name__ == "__main__":
    sys.exit(main())
