"""The report of a NAS-BERT search: the Pareto front of parameters (or latency) against the
masked-LM loss, as a Markdown table and a plot."""

from __future__ import annotations

from pathlib import Path


def pareto_md(summary: dict, front: list[dict]) -> str:
    lines = ["# NAS-BERT search", "", "| target | params | latency ms (table) | measured ms | MLM loss | MLM acc | blocks |",
             "|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for name, t in summary["targets"].items():
        m = f"{t['measured_ms']:.2f}" if t.get("measured_ms") else ""
        lines.append(f"| {name} | {t['params']:,} | {t['latency_ms']:.2f} | {m} | {t['mlm_loss']:.4f} | "
                     f"{t['mlm_accuracy']:.4f} | {' / '.join(t['blocks'])} |")  # fmt: skip
    lines += ["", f"Pareto front of (MLM loss, parameters, latency) over the {summary['evaluated']} evaluated models:", "",
              "| params | latency ms | MLM loss | blocks |", "|---:|---:|---:|---|"]  # fmt: skip
    lines += [f"| {p['params']:,} | {p['latency_ms']:.2f} | {p['loss']:.4f} | {' / '.join(p['blocks'])} |" for p in front]
    err = summary["latency_table_mean_abs_rel_error"]
    if err is not None:
        lines += ["", f"Latency table against {summary['latency_checks']} measured whole models: mean error {err:.1%}."]
    return "\n".join(lines) + "\n"



def pareto_png(points: list[dict], front: list[dict], path: Path) -> None:
    from lvbert.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p["params"] / 1e6 for p in points], [p["loss"] for p in points], s=10, alpha=0.5, label="evaluated")
    ax.plot([p["params"] / 1e6 for p in front], [p["loss"] for p in front], "o-", color="C3", label="Pareto front")
    ax.set_xlabel("backbone parameters (M)")
    ax.set_ylabel("validation MLM loss")
    ax.legend()
    save(fig, path)

