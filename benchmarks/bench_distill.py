"""What distillation costs: a general-distillation step against the plain pre-training step of the
same student and the teacher's forward pass alone, fp32 and bf16, in one run (steps interleaved).

Variants, batch x sequence 32 x 128 by default, random token ids, CPU threads as set:
- ``teacher forward``: the frozen teacher with hidden states and pre-softmax attention (no grad);
- ``student MLM step``: the student pre-trained with masked LM (forward, backward, AdamW);
- ``distill step``: teacher forward + student forward with hidden states and attentions +
  TinyBERT's hidden and attention losses + backward + AdamW.

Writes ``benchmarks/results/distill.json``; the matmul peak is measured in the same run.

    .venv/bin/python benchmarks/bench_distill.py                      # teacher small bert, student tiny LV-BERT list
    .venv/bin/python benchmarks/bench_distill.py --teacher-size base --student-size small --steps 2
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

from lvbert.arch import LV_BERT_SMALL  # noqa: E402
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertModel  # noqa: E402
from lvbert.objectives.distill import DistillLoss, Teacher, align, slot_pair_layers  # noqa: E402
from lvbert.objectives.distill import DistillModel, distill_objective  # noqa: E402
from lvbert.training.optim import build_optimizer  # noqa: E402

from _machine import machine_info, matmul_peak  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "distill.json"



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher-size", default="small")
    ap.add_argument("--student-size", default="tiny")
    ap.add_argument("--student-arch", default=LV_BERT_SMALL)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    args = ap.parse_args(argv)

    vocab = 30522 if args.teacher_size != "tiny" else 4096
    common = dict(vocab_size=vocab, max_position_embeddings=max(512, args.seq_len))
    torch.manual_seed(0)
    teacher = Teacher(LvBertModel(LvBertConfig.from_size(args.teacher_size, arch="bert", **common)))
    s_cfg = LvBertConfig.from_size(args.student_size, arch=args.student_arch, **common)
    ids = torch.randint(5, vocab, (args.batch, args.seq_len))
    mask = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)
    sel = torch.rand(ids.shape) < 0.15
    labels[sel] = ids[sel]
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}

    def fresh():
        student = LvBertForMaskedLM(s_cfg)
        loss = DistillLoss(align(slot_pair_layers(s_cfg.arch), teacher.layers), s_cfg.hidden_size, teacher.hidden_size)
        dm = DistillModel(student, loss, teacher)
        return student, dm, build_optimizer(student, 1e-4), build_optimizer(dm, 1e-4)

    student, dm, opt_s, opt_d = fresh()

    def teacher_fwd():
        teacher(ids, mask)

    def mlm_step():
        out = student(**batch, labels=labels)
        out.loss.backward()
        opt_s.step()
        opt_s.zero_grad(set_to_none=True)

    def distill_step():
        out = distill_objective(dm, batch)
        out["loss"].backward()
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)

    variants = {"teacher forward": teacher_fwd, "student MLM step": mlm_step, "distill step": distill_step}
    result = {"machine": machine_info(), "settings": vars(args), "matmul_peak_tflops": {}, "ms": {}}
    result["matmul_peak_tflops"] = {"fp32": round(matmul_peak(), 3), "bf16": round(matmul_peak(torch.bfloat16), 3)}
    result["params"] = {"teacher": sum(p.numel() for p in teacher.parameters()),
                        "student": sum(p.numel() for p in student.lvbert.parameters())}  # fmt: skip
    for precision in ("fp32", "bf16"):
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
        times = {k: [] for k in variants}
        for fn in variants.values():  # warm-up
            with ctx():
                fn()
        for _ in range(args.steps):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                with ctx():
                    fn()
                times[name].append(1000 * (time.perf_counter() - t0))
        med = {k: statistics.median(v) for k, v in times.items()}
        result["ms"][precision] = {k: round(v, 1) for k, v in med.items()}
        result.setdefault("ratios", {})[precision] = {
            "distill / student MLM": round(med["distill step"] / med["student MLM step"], 2),
            "teacher forward / distill": round(med["teacher forward"] / med["distill step"], 2),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| precision | teacher forward ms | student MLM step ms | distill step ms | distill / MLM |")
    print("|---|---:|---:|---:|---:|")
    for p, m in result["ms"].items():
        print(f"| {p} | {m['teacher forward']} | {m['student MLM step']} | {m['distill step']} | "
              f"{result['ratios'][p]['distill / student MLM']}x |")  # fmt: skip
    print(f"params: teacher {result['params']['teacher']:,}, student {result['params']['student']:,}; matmul peak "
          f"{result['matmul_peak_tflops']}; wrote {RESULTS}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
