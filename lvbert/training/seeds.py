"""Per-epoch dev evaluation that keeps the best epoch (:class:`BestEpoch`, the one way every
task-training recipe does it: fine-tuning, SQuAD, KG, task distillation, KDLSQ), and several seeds
of one fine-tuning, kept resumable (fine-tuning, SQuAD).

A run writes into the hidden partial folder ``.OUT.partial`` beside ``OUT``: ``progress.json`` (the
options, the finished seeds' results, the best score so far, the running seed's evaluations), the
best model so far in ``best/`` and the running seed's checkpoints in ``logs/seed<N>``. ``--resume``
re-runs only the seeds that did not finish, the interrupted one from its last checkpoint; at the end
the best model moves to the top, ``results.json`` is written and the folder is put at ``OUT``."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from lvbert.options import check_resume_options
from lvbert.training.loop import LoopConfig
from lvbert.utils import atomic_write_json, check_output_dir, fix_permissions, remove_stale_staging, replace_dir, warn


def seed_loop_config(stage: Path, seed: int, total: int, steps_per_epoch: int, cfg) -> LoopConfig:
    """The loop settings of one fine-tuning seed: evaluated and checkpointed after every epoch (the
    checkpoint lets ``--resume`` continue the seed exactly; the best epoch is kept by the caller)."""
    return LoopConfig(
        out_dir=str(stage / "logs" / f"seed{seed}"),
        max_steps=total,
        bf16=cfg.bf16,
        eval_every=steps_per_epoch,
        save_every=steps_per_epoch,
        keep_last=1,
        save_final=False,
        seed=seed,
        progress=cfg.progress,
        log_every=max(1, min(50, steps_per_epoch)),
        tensorboard=False,
    )


def examples_seen(n: int, batch_size: int, steps: int) -> int:
    """Training examples in the first ``steps`` batches of :class:`IndexedBatches`."""
    per_epoch = math.ceil(n / batch_size)
    return steps // per_epoch * n + min(steps % per_epoch * batch_size, n)


def partial_dir(out: Path) -> Path:
    """Where the finished seeds of an unfinished fine-tuning wait (kept for ``--resume``)."""
    return out.parent / f".{out.name}.partial"


def check_seeds_out(out: Path, inputs: dict, overwrite: bool, resume: bool) -> Path:
    """The output check of fine-tuning: never an input; an existing ``out`` only with ``--overwrite``,
    or with ``--resume`` when it is this command's own (finished) result."""
    out = Path(out)
    marks = ("results.json", "*/results.json", ".*.partial")  # a task's result; GLUE's finished and running tasks
    own = resume and out.is_dir() and any(p for mark in marks for p in out.glob(mark))
    return check_output_dir(out, inputs=inputs, overwrite=overwrite and not resume, own_run=own)


def finished_run(out: Path, options: dict, resume: bool, config_cls) -> dict | None:
    """On ``--resume``, the results of a run already finished in ``out`` with the same options (else None)."""
    if not resume or partial_dir(out).exists() or not (out / "results.json").is_file():
        return None
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    check_resume_options(config_cls, options, results.get("options") or {}, out, strict=True)
    print(f"resume: {out} is finished; nothing to run again")
    return results


def run_seeds(out: Path, options: dict, seeds: list[int], resume: bool, train_seed, config_cls) -> tuple[Path, list[dict], dict]:
    """Run ``train_seed(seed, stage, best, history, record) -> run`` for every seed not finished in
    the partial folder ``stage`` (a fresh one unless resuming); returns ``(stage, runs, best)``.

    ``progress.json`` there holds the options, the finished runs, the best score so far (its model
    in ``stage / "best"``) and the running seed's evaluations; a seed's checkpoints are removed
    once it finished. Resuming with other options is a one-line error."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    stage = partial_dir(out)
    done = read_partial(stage, options, out, config_cls) if resume else None
    if done is None:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        done = {"options": options, "runs": [], "best": {}, "current": None}
        atomic_write_json(stage / "progress.json", done)
    elif done["runs"] or done.get("current"):
        print(f"resume: {len(done['runs'])} of {len(seeds)} seed(s) already finished in {stage}")
    runs, best = list(done["runs"]), dict(done["best"])
    current = done.get("current") or {}
    for seed in seeds[len(runs) :]:
        history = list(current.get("history") or []) if current.get("seed") == seed else []

        def record(seed=seed, history=history) -> None:
            atomic_write_json(stage / "progress.json", {"options": options, "runs": runs, "best": best,
                                                        "current": {"seed": seed, "history": history}})  # fmt: skip

        runs.append(train_seed(seed, stage, best, history, record))
        atomic_write_json(stage / "progress.json", {"options": options, "runs": runs, "best": best, "current": None})
        shutil.rmtree(stage / "logs" / f"seed{seed}" / "checkpoints", ignore_errors=True)
    return stage, runs, best


def finish_stage(stage: Path, out: Path, results: dict) -> None:
    """The best model at the top of the partial folder, ``results.json`` written, the folder put at ``out``."""
    promote_best(stage)
    (stage / "progress.json").unlink()
    atomic_write_json(stage / "results.json", results)
    fix_permissions(stage)
    replace_dir(stage, out)


def read_partial(stage: Path, options: dict, out: Path, config_cls) -> dict | None:
    """The progress in ``stage`` when there is a readable one; a one-line error when it was run with other options."""
    try:
        done = json.loads((stage / "progress.json").read_text(encoding="utf-8"))
        runs, saved = list(done["runs"]), dict(done["options"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if runs and not (stage / "best").is_dir():
        warn(f"{stage} lacks the best model of its finished seeds; starting again")
        return None
    check_resume_options(config_cls, options, saved, out, strict=True)
    return done


class BestEpoch:
    """``train_loop``'s per-epoch dev evaluation that keeps the best epoch: the one way every
    task-training command (fine-tuning, SQuAD, KG, task distillation, KDLSQ) does it.

    ``measure(model) -> (entry, logs)`` scores the dev set: ``entry[key]`` is the score (higher is
    better), ``logs`` what the loop logs. Whenever the score beats ``best`` (shared by the seeds of a
    run; the first best epoch is kept), ``best`` is updated with the step, ``tags`` and the entry's
    ``keep`` fields, and ``save(model)`` writes the model. The evaluation goes into ``history`` (those
    at or after its step, left by a killed run, are replaced) and ``record()`` is called, so that both
    survive a kill. A resumed run passes the saved ``history``; without a ``best``, the best so far is
    read from it."""

    def __init__(self, measure, save, steps_per_epoch: int, history: list, best: dict | None = None,
                 key: str = "score", keep: tuple = (), tags: dict | None = None, record=None) -> None:  # fmt: skip
        self.measure, self.save, self.steps_per_epoch = measure, save, steps_per_epoch
        self.history, self.key, self.keep, self.tags, self.record = history, key, (key, *keep), tags or {}, record
        if best is None:
            best = {}
            if history:
                top = self.top()
                best.update({k: top.get(k) for k in self.keep}, step=top["step"])
        self.best = best

    def __call__(self, model, step: int) -> dict:
        entry, logs = self.measure(model)
        score = entry[self.key]
        if self.best.get(self.key) is None or score > self.best[self.key]:
            self.best.update({k: entry.get(k) for k in self.keep}, step=step, **self.tags)
            self.save(model)
        self.history[:] = [h for h in self.history if h["step"] < step]
        self.history.append({"step": step, "epoch": round(step / self.steps_per_epoch, 3), **entry})
        if self.record is not None:
            self.record()
        return logs

    def top(self) -> dict:
        """The best evaluation in ``history`` (the first of equals)."""
        return max(self.history, key=lambda h: h[self.key])


def dev_logs(results: dict, score: float) -> dict:
    """What the loop logs of a dev evaluation: ``split/metric`` for each result, and the score."""
    return {f"{s}/{m}": v for s, r in results.items() for m, v in r.items()} | {"score": score}


def promote_best(folder: Path) -> None:
    """The model kept in ``folder / "best"`` (the best evaluation of a run) moved to the top of ``folder``,
    as every task-training command leaves its result (fine-tuning, SQuAD, KG, task distillation, KDLSQ)."""
    for f in (folder / "best").iterdir():
        f.replace(folder / f.name)
    (folder / "best").rmdir()
