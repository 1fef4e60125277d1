"""The outputs of a NAS-BERT search: a model folder per target, every evaluated combination, and the
Pareto front of parameters (or latency) against the masked-LM loss, as a Markdown table and a plot."""

from __future__ import annotations

import json
from pathlib import Path

from lvbert.model_dir import save_model_dir
from lvbert.nas.select import pareto_front
from lvbert.nas.supernet import extract
from lvbert.plots import pyplot, save
from lvbert.utils import atomic_write_json, atomic_write_text


def pareto_md(summary: dict, front: list[dict]) -> str:
    loss = "MLM loss" if all(t.get("mlm_accuracy") is not None for t in summary["targets"].values()) else "hidden dist."
    lines = ["# NAS-BERT search", "", f"| target | params | latency ms (table) | measured ms | {loss} | MLM acc | blocks |",
             "|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for name, t in summary["targets"].items():
        m = f"{t['measured_ms']:.2f}" if t.get("measured_ms") else ""
        acc = f"{t['mlm_accuracy']:.4f}" if t.get("mlm_accuracy") is not None else ""
        lines.append(f"| {name} | {t['params']:,} | {t['latency_ms']:.2f} | {m} | {t['loss']:.4f} | "
                     f"{acc} | {' / '.join(t['blocks'])} |")  # fmt: skip
    lines += ["", f"Pareto front of ({loss}, parameters, latency) over the {summary['evaluated']} evaluated models:", "",
              f"| params | latency ms | {loss} | blocks |", "|---:|---:|---:|---|"]  # fmt: skip
    lines += [f"| {p['params']:,} | {p['latency_ms']:.2f} | {p['loss']:.4f} | {' / '.join(p['blocks'])} |" for p in front]
    err = summary["latency_table_mean_abs_rel_error"]
    if err is not None:
        lines += ["", f"Latency table against {summary['latency_checks']} measured whole models: mean error {err:.1%}."]
    return "\n".join(lines) + "\n"



def pareto_png(points: list[dict], front: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p["params"] / 1e6 for p in points], [p["loss"] for p in points], s=10, alpha=0.5, label="evaluated")
    ax.plot([p["params"] / 1e6 for p in front], [p["loss"] for p in front], "o-", color="C3", label="Pareto front")
    ax.set_xlabel("backbone parameters (M)")
    ax.set_ylabel("validation MLM loss")
    ax.legend()
    save(fig, path)


def write_search_report(out: Path, results: dict, evaluated: dict, space, nets, teacher, tokenizer, lut, supernet,
                        select_seconds: float, lut_error: float | None, checks: list) -> None:  # fmt: skip
    """The outputs of ``lvbert nas search`` in ``out``: one model folder per target (built from the block
    supernets ``nets`` and the ``teacher``; its parameter count checked against the counted one),
    ``evaluated.jsonl``, ``results.json``, ``pareto.md`` and ``pareto.png``."""
    for name, r in results.items():
        best = r["best"]
        model = extract(space, best["blocks"], nets, teacher)
        n_params = sum(p.numel() for p in model.lvbert.parameters())
        assert n_params == best["params"], (n_params, best["params"])  # counting is tied to the built model
        save_model_dir(model, tokenizer, out / "models" / folder_name(name))
    points = [{k: v for k, v in d.items() if k != "blocks"} | {"blocks": [str(b) for b in d["blocks"]]}
              for d in evaluated.values()]  # fmt: skip
    front = pareto_front(points)
    atomic_write_text(out / "evaluated.jsonl", "".join(json.dumps(p) + "\n" for p in points))
    summary = {"supernet": str(supernet), "targets": {}, "select_seconds": select_seconds, "evaluated": len(points),
               "latency_table_mean_abs_rel_error": lut_error, "latency_checks": len(checks),
               "pareto": front, "latency_setting": {"batch_size": lut.batch_size, "seq_len": lut.seq_len}}  # fmt: skip
    for name, r in results.items():
        b = r["best"]
        summary["targets"][name] = {**{k: v for k, v in r.items() if k != "best"}, "model": f"models/{folder_name(name)}",
                                    "arch": b["arch"], "blocks": [str(x) for x in b["blocks"]], "params": b["params"],
                                    "latency_ms": b["latency_ms"], "measured_ms": b.get("measured_ms"),
                                    "approx_loss": b["approx_loss"], "loss": b["loss"],
                                    "mlm_loss": b["loss"] if b["mlm_accuracy"] is not None else None,
                                    "mlm_accuracy": b["mlm_accuracy"]}  # fmt: skip
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "pareto.md", pareto_md(summary, front))
    pareto_png(points, front, out / "pareto.png")



def folder_name(target: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in target)

