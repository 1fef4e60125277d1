"""Recipe: SQuAD 1.1 / 2.0 fine-tuning and prediction (``lvbert finetune|predict --task squad|squad2``).

ELECTRA's recipe by default: windows of 384 tokens (capped at the model's positions), doc
stride 128, questions cut to 64 tokens; the GLUE recipe's optimiser (layer-wise decay 0.8 per
pair of slots, LR 3e-4 for hidden <= 384 else 1e-4, warm-up 10%, weight decay 0.01), 2 epochs,
batch 32. The dev set is scored after every epoch (exact match and F1 of the official scripts;
for 2.0 at the null-score threshold that is best on dev, which is saved with the model) and the
best epoch is kept. Components: :mod:`lvbert.tasks.squad`.

    OUT/config.json, model.safetensors, tokenizer   the best checkpoint over all seeds
    OUT/qa.json                                     version, window settings, the 2.0 threshold
    OUT/results.json                                per-seed results, median / min / max
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering

from lvbert.errors import LvBertError
from lvbert.model_dir import load_model_config, load_model_tokenizer, quiet_transformers, save_model_dir
from lvbert.tasks.hub import hub_squad_files
from lvbert.tasks.metrics import summarise
from lvbert.tasks.qa import QA_FILE, WindowBatches, score_dev
from lvbert.tasks.squad import DOC_STRIDE, MAX_LEN, MAX_QUERY, encode_windows, read_squad
from lvbert.training.distributed import pick_device
from lvbert.training.loop import train_loop
from lvbert.training.optim import build_optimizer, linear_schedule
from lvbert.training.run import finetune_lr
from lvbert.training.seeds import BestEpoch, check_seeds_out, finish_stage, finished_run, run_seeds, seed_loop_config
from lvbert.utils import atomic_write_json, check_output_file, warn

VERSIONS = {"squad": "1.1", "squad2": "2.0"}


MIN_LEN = 16  # [CLS] question [SEP] context [SEP] with a few tokens of each


def _settings(cfg, positions: int) -> dict:
    """Window length, doc stride and question length; the stride always fits the context part of a window."""

    max_len = min(cfg.max_seq_len or MAX_LEN, positions)
    if max_len < MIN_LEN:
        raise LvBertError(f"--max-seq-len {max_len} is too short for SQuAD windows ([CLS] question [SEP] context "
                          f"[SEP]); use at least {MIN_LEN} (default {MAX_LEN}, capped at the model's positions)")  # fmt: skip
    max_query = min(MAX_QUERY, max_len // 2)
    stride = min(DOC_STRIDE, (max_len - max_query - 3) // 2)
    return {"max_len": max_len, "doc_stride": stride, "max_query": max_query}


def finetune_squad(cfg, resume: bool = False) -> dict:
    """Fine-tune on SQuAD as configured (a :class:`lvbert.recipes.finetune.FinetuneConfig` with
    ``task`` squad or squad2, ``train_file`` and ``dev_file``); returns the results dict.

    Seeds run, checkpoint and resume as GLUE-style fine-tuning's (:func:`lvbert.training.seeds.run_seeds`)."""

    version = VERSIONS[cfg.task]
    if cfg.dataset or not (cfg.train_file or cfg.dev_file):  # the hub's SQuAD, or another hub copy
        train_file, dev_file = hub_squad_files(cfg.task, cfg.dataset, cfg.train_file, cfg.dev_file)
        cfg = dataclasses.replace(cfg, train_file=str(train_file), dev_file=str(dev_file))
    if not cfg.train_file or not cfg.dev_file:
        raise LvBertError(f"task {cfg.task} needs --train-file and --dev-file (SQuAD JSON files)")
    out = Path(cfg.out)
    inputs = {"--model": cfg.model, "--train-file": cfg.train_file, "--dev-file": cfg.dev_file}
    config = load_model_config(cfg.model)
    tokenizer = load_model_tokenizer(cfg.model, config.vocab_size)
    settings = _settings(cfg, config.max_position_embeddings)
    train_ex, dev_ex = read_squad(cfg.train_file, version), read_squad(cfg.dev_file, version)
    train_w, misaligned = encode_windows(tokenizer, train_ex, settings["max_len"], settings["doc_stride"],
                                         settings["max_query"], train=True, version=version)  # fmt: skip
    if misaligned:
        warn(f"{cfg.train_file}: {misaligned} answers whose text is not at their answer_start were skipped")
    if len(train_w) == 0:
        raise LvBertError(f"{cfg.train_file}: no training window holds an answer; check the file (answer_start)")
    dev_w, _ = encode_windows(tokenizer, dev_ex, settings["max_len"], settings["doc_stride"], settings["max_query"])
    lr = cfg.lr if cfg.lr is not None else finetune_lr(config.hidden_size, 1e-4)
    epochs = cfg.epochs or 2
    cfg = dataclasses.replace(cfg, lr=lr, epochs=epochs)
    options = json.loads(json.dumps(dataclasses.asdict(cfg)))
    done = finished_run(out, options, resume, type(cfg))
    if done is not None:
        return done
    check_seeds_out(out, inputs, cfg.overwrite, resume)  # the inputs are good
    pad = tokenizer.pad_token_id or 0
    print(f"finetune {cfg.task}: {len(train_ex):,} questions in {len(train_w):,} windows, {len(dev_ex):,} dev questions in "
          f"{len(dev_w):,} windows; {settings}; lr {lr}, {epochs} epochs")  # fmt: skip

    def train_seed(seed: int, stage: Path, best: dict, history: list, record) -> dict:
        with torch.random.fork_rng(devices=[]), quiet_transformers():
            torch.manual_seed(seed)
            model, info = AutoModelForQuestionAnswering.from_pretrained(cfg.model, local_files_only=True,
                                                                        output_loading_info=True)  # fmt: skip
        missing = [m for m in info.get("missing_keys", []) if not m.startswith("qa_outputs.")]
        if missing:
            raise LvBertError(f"{cfg.model} lacks {len(missing)} backbone weight(s) (e.g. {missing[0]})")
        model.to(pick_device(cfg.device))
        batches = WindowBatches(train_w, cfg.batch_size, seed, pad)
        total = batches.per_epoch * epochs if cfg.max_steps is None else min(cfg.max_steps, batches.per_epoch * epochs)
        optimizer = build_optimizer(model, lr, cfg.weight_decay, layer_decay=cfg.layer_decay,
                                    num_slots=model.config.num_slots)  # fmt: skip
        scheduler = linear_schedule(optimizer, round(cfg.warmup * total), total)

        def measure(m) -> tuple[dict, dict]:
            sc = score_dev(m, dev_ex, dev_w, version, pad, cfg.eval_batch_size, cfg.bf16)["scores"]
            return sc, {"exact": sc["exact"], "f1": sc["f1"]}

        evaluate = BestEpoch(measure, lambda m: save_model_dir(m, tokenizer, stage / "best"), batches.per_epoch,
                             history, best, key="f1", keep=("threshold",), tags={"seed": seed}, record=record)  # fmt: skip

        t0 = time.perf_counter()
        train_loop(model, lambda m, b: {"loss": m(**b).loss}, batches, optimizer, scheduler,
                   seed_loop_config(stage, seed, total, batches.per_epoch, cfg), evaluate=evaluate, resume=True)  # fmt: skip
        top = evaluate.top()
        return {"seed": seed, "score": top["f1"], "dev": {"dev": {"exact": top["exact"], "f1": top["f1"]}},
                "best_epoch": top["epoch"], "history": history, "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip

    stage, runs, best = run_seeds(out, options, [cfg.seed + k for k in range(cfg.seeds)], resume, train_seed, type(cfg))
    qa = {"version": version, **settings, "threshold": best.get("threshold")}
    atomic_write_json(stage / QA_FILE, qa)
    results = {"task": {"name": cfg.task}, "model": str(cfg.model), "train_file": str(cfg.train_file),
               "dev_file": str(cfg.dev_file), "config": cfg.hyper_parameters(), "options": options, "qa": qa,
               "num_train_windows": len(train_w), "skipped_misaligned": misaligned, "best_seed": best["seed"],
               "summary": summarise(runs), "runs": runs}  # fmt: skip
    finish_stage(stage, out, results)
    s = results["summary"]
    print(f"{cfg.task}: dev EM {s['dev/exact']['median']:.2f} F1 {s['dev/f1']['median']:.2f} (median of {cfg.seeds} seed(s))")
    return results


def predict_squad(model_dir, task: str, dev_file, out, batch_size: int = 128, bf16: bool = False,
                  device: str = "auto", overwrite: bool = False) -> list[Path]:  # fmt: skip
    """``predictions.json`` (qid -> answer) and ``nbest_predictions.json`` (and for 2.0 ``null_odds.json``)."""

    if not dev_file:
        raise LvBertError(f"task {task} needs --dev-file, the SQuAD JSON file to answer")
    model_dir, out = Path(model_dir), Path(out)
    qa_path = model_dir / QA_FILE
    if not qa_path.is_file():
        raise LvBertError(f"{model_dir} is not a SQuAD model (no {QA_FILE}); fine-tune one with --task {task}")
    qa = json.loads(qa_path.read_text(encoding="utf-8"))
    if qa["version"] != VERSIONS[task]:
        raise LvBertError(f"{model_dir} was fine-tuned on SQuAD {qa['version']}, not {VERSIONS[task]}; use its own task")
    names = ["predictions.json", "nbest_predictions.json", "eval.json"] + (["null_odds.json"] if qa["version"] == "2.0" else [])
    for name in names:  # before any work: never over a file of the user's or an input
        check_output_file(out / name, inputs={"--model": model_dir, "--dev-file": dev_file}, overwrite=overwrite)
    config = load_model_config(model_dir)
    tokenizer = load_model_tokenizer(model_dir, config.vocab_size)
    with quiet_transformers():
        model = AutoModelForQuestionAnswering.from_pretrained(model_dir, local_files_only=True)
    model.to(pick_device(device))
    examples = read_squad(dev_file, qa["version"])
    windows, _ = encode_windows(tokenizer, examples, qa["max_len"], qa["doc_stride"], qa["max_query"])
    r = score_dev(model, examples, windows, qa["version"], tokenizer.pad_token_id or 0, batch_size, bf16,
                  threshold=qa.get("threshold") if qa["version"] == "2.0" else None)  # fmt: skip
    written = [out / "predictions.json", out / "nbest_predictions.json"]
    atomic_write_json(written[0], r["predictions"])
    atomic_write_json(written[1], r["nbest"])
    if qa["version"] == "2.0":
        written.append(out / "null_odds.json")
        atomic_write_json(written[2], {q: (m if math.isfinite(m) else 1e9) for q, m in r["margins"].items()})
    atomic_write_json(out / "eval.json", r["scores"])  # the dev file's own answers, scored
    for p in written:
        print(f"wrote {p}")
    return written


