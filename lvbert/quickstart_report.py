"""The quickstart's report (``report.md``, ``report.json``, the learning curves): what the run shows in
one sentence, every model's MLM accuracy beside the unigram baseline, the search, the fine-tuning and
the stage times. Plain arguments: the profile's settings as a dict, the stages' results as written."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from lvbert.arch import count_macs, get_size, strip_diagram
from lvbert.data.packed import load_manifest
from lvbert.plots import plot_curves
from lvbert.tasks import get_task
from lvbert.training.loop import eval_curve
from lvbert.utils import atomic_write_json, atomic_write_text


def majority_share(task: str, data_dir: Path) -> tuple[float, int]:
    """(share of the most frequent dev label, number of classes): the task's majority baseline."""

    t = get_task(task, data_dir)
    labels = [ex.label for ex in t.read(data_dir, t.dev_splits[0])]
    return Counter(labels).most_common(1)[0][1] / max(len(labels), 1), len(t.labels or ())


def verdict(models: list[dict], searched: dict, unigram: float, noise: float, task: str, chance: float) -> str:
    """One sentence on what the run shows, from its own numbers."""
    evo = searched["evolution"]
    best_fit = max((m["supernet_fitness"] or 0.0) for m in models)
    parts = []
    if best_fit <= unigram + noise:
        parts.append(f"the supernet did not leave the unigram plateau (best fitness {best_fit:.3f}, unigram "
                     f"{unigram:.3f}), so the search could not rank archs: train it longer")  # fmt: skip
    elif not evo["ranking"]["meaningful"]:
        parts.append(f"the supernet left the unigram plateau (fitness up to {best_fit:.3f} against {unigram:.3f}) but "
                     "its fitness does not separate the candidates, so the search's pick is one of equals")  # fmt: skip
    else:
        parts.append(f"the supernet left the unigram plateau (fitness up to {best_fit:.3f} against {unigram:.3f}) and "
                     f"separates candidates (spread {evo['ranking']['spread']:.3f}, noise {noise:.3f})")  # fmt: skip
    by = {m["name"]: m for m in models}
    s, b = by["searched"], by["bert"]
    if s["mlm_accuracy"] is not None and b["mlm_accuracy"] is not None:
        diff = s["mlm_accuracy"] - b["mlm_accuracy"]
        if abs(diff) <= noise:
            parts.append(f"pre-trained from scratch, the searched arch and `bert` tie on MLM accuracy "
                         f"({s['mlm_accuracy']:.3f} vs {b['mlm_accuracy']:.3f}, within noise)")  # fmt: skip
        else:
            parts.append(f"pre-trained from scratch, the searched arch reaches MLM accuracy {s['mlm_accuracy']:.3f} "
                         f"against `bert`'s {b['mlm_accuracy']:.3f} ({'better' if diff > 0 else 'worse'})")  # fmt: skip
    accs = [m["task_accuracy"] for m in models]
    parts.append(f"on {task} the three models reach {min(accs):.3f}-{max(accs):.3f} accuracy (chance {chance:.2f})")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def write_quickstart_report(out: Path, profile: str, settings: dict, task: str, candidates: dict, searched: dict,
                            pretrained: dict, finetuned: dict, stage_times: dict, task_dir: Path | None = None,
                            nas: dict | None = None) -> dict:  # fmt: skip
    """Write ``report.md``, ``report.json`` and ``mlm_curves.png`` into ``out`` (the quickstart folder, whose
    ``data/``, ``supernet/`` and ``pretrain/<name>/`` runs it reads); ``settings`` are the profile's fields,
    ``stage_times`` the seconds of each stage. Returns what it wrote."""
    vocab = load_manifest(out / "data")["tokenizer"]["vocab_size"]
    num_slots = settings["num_slots"] or get_size(settings["size"]).num_slots
    size = get_size(settings["size"], vocab_size=vocab, num_slots=num_slots)
    evo = searched["evolution"]
    unigram = evo["baselines"].get("unigram_accuracy", 0.0)
    noise = evo["ranking"]["threshold"]
    fitness_of = {evo["arch"]: evo["fitness"], searched["random"]["arch"]: searched["random"]["fitness"]}
    models = []
    for name in candidates:
        pm = pretrained["models"][name]
        fit = fitness_of.get(pm["arch"])
        if name == "bert" and searched.get("bert", {}).get("fitness") is not None:
            fit = searched["bert"]["fitness"]
        models.append({
            "name": name,
            "arch": pm["arch"],
            "params": pm["params"],
            "macs_per_token": count_macs(pm["arch"], size, settings["seq_len"]),
            "supernet_fitness": fit,
            "mlm_accuracy": pm["mlm_accuracy"],
            "task": task,
            "task_accuracy": finetuned["models"][name]["accuracy"],
        })  # fmt: skip
    majority, classes = majority_share(task, task_dir) if task_dir is not None else (None, 2)
    chance = 1.0 / max(classes, 1)

    # learning curves: the supernet's probe paths and each model pre-trained from scratch, same validation set
    series = {}
    for probe in ("bert", "lv-bert-small", "random1", "random2"):
        steps, vals = eval_curve(out / "supernet", f"{probe}/mlm_accuracy")
        if steps:
            series[f"supernet path: {probe}"] = (steps, vals, "--")
    for name in candidates:
        steps, vals = eval_curve(out / "pretrain" / name, "mlm_accuracy")
        if steps:
            series[f"from scratch: {name}"] = (steps, vals, "-")
    curves = out / "mlm_curves.png"
    plot_curves(series, curves, xlabel="optimizer step", ylabel="MLM accuracy (fixed-mask validation set)",
                title="Leaving the unigram plateau", hlines={f"unigram baseline {unigram:.3f}": unigram})  # fmt: skip
    plots = {"curves": str(curves.relative_to(out))}
    for strategy in ("evolution", "random"):
        for png in ("fitness.png", "top_archs.png"):
            src = out / "search" / strategy / png
            if src.exists():
                plots[f"{strategy}/{png}"] = str(src.relative_to(out))
        sentence = verdict(models, searched, unigram, noise, task, chance)
    baselines = {"unigram_mlm_accuracy": unigram, "fitness_noise": noise, "task_chance": chance,
                 "task_majority": majority}  # fmt: skip
    report = {"profile": profile, "settings": settings, "task": task, "models": models, "baselines": baselines,
              "verdict": sentence, "search": {k: v for k, v in searched.items() if k != "seconds"}, "plots": plots,
              "stage_seconds": stage_times, "nas": nas}  # fmt: skip
    atomic_write_json(out / "report.json", report)

    def fmt(v, spec=".4f"):
        return "-" if v is None else format(v, spec)

    majority_text = f", majority class {majority:.3f}" if majority is not None else ""
    lines = [
        f"# lvbert quickstart report ({profile})", "",
        f"**What this run shows.** {sentence}", "",
        f"{settings['description']}. Size `{settings['size']}`, sequences of {settings['seq_len']} tokens, vocabulary {vocab}; supernet "
        f"{settings['supernet_steps']} steps x {settings['supernet_batch']}; search {settings['population']} x {settings['generations']} candidates per "
        f"strategy; each model pre-trained {settings['pretrain_steps']} steps x {settings['pretrain_batch']} (MLM) and fine-tuned "
        f"{settings['finetune_epochs']} epoch(s) on `{task}` (LR {settings['finetune_lr'] or 'recipe default'}, layer-wise decay "
        f"{settings['finetune_layer_decay'] or 'off'}).", "",
        f"| model | arch (pairs) | params | MACs/token | supernet fitness | MLM accuracy | {task} accuracy |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in models:
        lines.append(f"| {m['name']} | `{strip_diagram(m['arch'])}` | {m['params']:,} | {m['macs_per_token']:,} | "
                     f"{fmt(m['supernet_fitness'])} | {fmt(m['mlm_accuracy'])} | {fmt(m['task_accuracy'])} |")
    lines.append(f"| *baseline* | | | | unigram {unigram:.4f} | unigram {unigram:.4f} | chance {chance:.2f}"
                 f"{majority_text} |")
    lines += [
        "",
        "What the numbers mean:",
        "",
        "- **supernet fitness**: masked-LM accuracy of the arch's path through the supernet (weights inherited, "
        f"nothing trained) on a fixed-mask validation set of {settings['valid_sequences']} sequences; the search ranks archs by it.",
        "- **MLM accuracy**: the same measure on the same set for the arch pre-trained from scratch.",
        f"- **unigram baseline**: the accuracy of always predicting the most frequent masked word ({unigram:.4f}). "
        "A model near it has not started to use context yet (the *unigram plateau*).",
        f"- **noise**: two MLM accuracies closer than {noise:.4f} (two standard errors of the validation set) "
        "cannot be told apart.",
        f"- **{task} accuracy**: dev accuracy after fine-tuning (median over seeds); chance is {chance:.2f}"
        f"{majority_text}.",
        "", "## Learning curves", "", f"![MLM accuracy against steps]({plots['curves']})", "",
        "## Search", "",
        f"- evolution: best `{evo['arch']}` (fitness {evo['fitness']:.4f}); {evo['ranking']['note']}.",
        f"- random: best `{searched['random']['arch']}` (fitness {searched['random']['fitness']:.4f}); "
        f"{searched['random']['ranking']['note']}.", "",
    ]
    for key, path in plots.items():
        if key != "curves":
            lines.append(f"![{key}]({path})")
    if nas:
        teacher_acc = pretrained["models"]["searched"]["mlm_accuracy"]
        lines += ["", "## NAS-BERT (--with nas)", "",
                  f"The searched model ({nas['teacher_params']:,} parameters, MLM accuracy {fmt(teacher_acc)}) is the "
                  f"teacher; the tiny NAS-BERT space trained {nas['steps_per_block']} steps per block "
                  "(lvbert nas train --help). The chosen models keep the blocks' trained weights (not pre-trained further):", "",
                  "| target | params | MLM accuracy | latency ms (table) | arch |", "|---|---:|---:|---:|---|"]  # fmt: skip
        for name, t in nas["targets"].items():
            lines.append(f"| {name} | {t['params']:,} | {fmt(t['mlm_accuracy'])} | {t['latency_ms']:.2f} | `{t['arch']}` |")
    lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in stage_times.items()]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    print("\n".join(lines[2:3] + lines[6 : 9 + len(models)]))
    return {"report": str(out / "report.md")}

