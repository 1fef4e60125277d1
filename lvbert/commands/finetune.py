"""``lvbert finetune`` and ``lvbert predict``: thin wrappers over :mod:`lvbert.recipes.finetune` and ``predict``."""

from __future__ import annotations

import argparse

from lvbert.tasks import TASK_NAMES


def _task_args(p) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="model folder (Hugging Face files + tokenizer)")
    p.add_argument("--task", required=True,
                   help=f"{', '.join(TASK_NAMES)}, or your own name with --text-column for CSV/TSV/JSONL files")  # fmt: skip
    p.add_argument("--data-dir", metavar="DIR",
                   help="the task's folder (e.g. glue/SST-2), the GLUE root for --task glue; "
                        "demo tasks default to the demo cache")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--max-seq-len", type=int,
                   help="longer inputs are truncated with a warning (default 128, capped at the model's positions)")  # fmt: skip
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--text-column", help="file tasks: column (or JSON key) with the text")
    p.add_argument("--text-pair-column", help="file tasks: column with the second text of a pair")


def register(sub) -> None:
    ft = sub.add_parser(
        "finetune",
        help="fine-tune a model on GLUE, demo or CSV/TSV/JSONL tasks",
        description="Official recipe by default: LR 3e-4 (hidden <= 384) or 1e-4, layer-wise LR decay 0.8 per "
        "pair of slots, batch 32, 3 epochs (10 for RTE and STS-B), 10% warm-up, weight decay 0.01. The best "
        "dev epoch is kept in --out as a Hugging Face model with its tokenizer, with results.json.",
    )
    _task_args(ft)
    ft.add_argument("--lr", type=float, help="peak learning rate (default 3e-4 for hidden <= 384, else 1e-4)")
    ft.add_argument("--layer-decay", type=float, default=0.8, help="LR factor per pair of slots (default 0.8; 1 = off)")
    ft.add_argument("--batch-size", type=int, default=32, help="default 32")
    ft.add_argument("--epochs", type=int, help="default: the task's (3; 10 for RTE and STS-B)")
    ft.add_argument("--warmup", type=float, default=0.1, help="warm-up fraction of the steps (default 0.1)")
    ft.add_argument("--weight-decay", type=float, default=0.01, help="default 0.01")
    ft.add_argument("--seeds", type=int, default=1, help="runs with seeds --seed, --seed+1, ...; reports median, min, max")
    ft.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    ft.add_argument("--both-orders", action=argparse.BooleanOptionalAction, default=None,
                    help="also train on swapped sentence pairs (default: on for MRPC, QQP, STS-B)")  # fmt: skip
    ft.add_argument("--max-steps", type=int, help="stop each run after this many steps (quick checks)")
    ft.add_argument("--no-progress", action="store_true", help="no progress bar")
    ft.add_argument("--label-column", help="file tasks: column with the label (default 'label')")
    ft.add_argument("--labels", help="file tasks: comma-separated class names in id order (default: the train labels, sorted)")
    ft.add_argument("--regression", action="store_true", help="file tasks: the label is a real number")
    ft.set_defaults(func=run_finetune)

    pr = sub.add_parser(
        "predict",
        help="write GLUE submission files (index<TAB>prediction) from a fine-tuned model",
        description="SST-2.tsv, CoLA.tsv, MNLI-m.tsv and MNLI-mm.tsv, STS-B.tsv (floats), ... into --out; "
        "--task glue reads one model per task from --model/<task>.",
    )
    _task_args(pr)
    pr.add_argument("--batch-size", type=int, default=128, help="default 128")
    pr.set_defaults(func=run_predict)


def run_finetune(args) -> int:
    from lvbert.recipes.finetune import finetune

    finetune(
        args.model, args.task, args.data_dir, args.out,
        lr=args.lr,
        layer_decay=None if args.layer_decay == 1 else args.layer_decay,
        batch_size=args.batch_size,
        epochs=args.epochs,
        warmup=args.warmup,
        weight_decay=args.weight_decay,
        max_seq_len=args.max_seq_len,
        seeds=args.seeds,
        seed=args.seed,
        bf16=args.bf16,
        both_orders=args.both_orders,
        max_steps=args.max_steps,
        progress=not args.no_progress,
        device=args.device,
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        label_column=args.label_column,
        labels=[x.strip() for x in args.labels.split(",")] if args.labels else None,
        regression=args.regression,
    )  # fmt: skip
    return 0


def run_predict(args) -> int:
    from lvbert.recipes.predict import predict

    predict(args.model, args.task, args.data_dir, args.out, batch_size=args.batch_size, max_seq_len=args.max_seq_len,
            bf16=args.bf16, device=args.device, text_column=args.text_column, text_pair_column=args.text_pair_column)  # fmt: skip
    return 0
