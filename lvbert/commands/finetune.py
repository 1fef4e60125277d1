"""``lvbert finetune`` and ``lvbert predict``: thin wrappers over :mod:`lvbert.recipes.finetune` and ``predict``."""

from __future__ import annotations

import dataclasses

from lvbert.options import add_options, resolve, resolve_run


def register(sub) -> None:
    from lvbert.recipes.finetune import FinetuneConfig
    from lvbert.recipes.predict import PredictConfig

    ft = sub.add_parser(
        "finetune",
        help="fine-tune a model on GLUE, demo or CSV/TSV/JSONL tasks",
        description="Official recipe by default: LR 3e-4 (hidden <= 384) or 1e-4, layer-wise LR decay 0.8 per "
        "pair of slots, batch 32, 3 epochs (10 for RTE and STS-B), 10% warm-up, weight decay 0.01. The best "
        "dev epoch is kept in --out as a Hugging Face model with its tokenizer, with results.json. --resume "
        "re-runs only the seeds (and GLUE tasks) that did not finish.",
    )
    add_options(ft, FinetuneConfig, resume=True)
    ft.set_defaults(func=run_finetune, config_class=FinetuneConfig)

    pr = sub.add_parser(
        "predict",
        help="write GLUE submission files (index<TAB>prediction) from a fine-tuned model",
        description="SST-2.tsv, CoLA.tsv, MNLI-m.tsv and MNLI-mm.tsv, STS-B.tsv (floats), ... into --out; "
        "--task glue reads one model per task from --model/<task>.",
    )
    add_options(pr, PredictConfig)
    pr.set_defaults(func=run_predict, config_class=PredictConfig)


QA_TASKS = ("squad", "squad2")  # extractive question answering: its own recipe (recipes/squad.py)


def run_finetune(args) -> int:
    from lvbert.recipes.finetune import FinetuneConfig, run_finetune
    from lvbert.recipes.squad import finetune_squad

    cfg, resume = resolve_run(FinetuneConfig, args)
    task = (cfg.task or "").strip().lower()
    if task in QA_TASKS:
        cfg.check_required()
        finetune_squad(dataclasses.replace(cfg, task=task), resume)
    else:
        run_finetune(cfg, resume=resume)
    return 0


def run_predict(args) -> int:
    from lvbert.recipes.predict import PredictConfig, run_predict
    from lvbert.recipes.squad import predict_squad

    cfg = resolve(PredictConfig, args)
    task = (cfg.task or "").strip().lower()
    if task in QA_TASKS and cfg.model and cfg.out:
        predict_squad(cfg.model, task, cfg.dev_file, cfg.out, cfg.batch_size, cfg.bf16, cfg.device, cfg.overwrite)
    else:
        run_predict(cfg)
    return 0
