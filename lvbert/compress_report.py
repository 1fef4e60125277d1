"""``lvbert compress``'s report: ``report.md`` (its first sentence says what the run shows), ``report.json``
and ``report.png`` (dev score against latency, with the Pareto front), from the stages' results."""

from __future__ import annotations

from pathlib import Path

from lvbert.nas.select import pareto_front
from lvbert.plots import pyplot, save
from lvbert.utils import atomic_write_json, atomic_write_text


def compress_rows(teacher: dict, students: dict, baselines: dict, latency: dict) -> list[dict]:
    """One row per model: name, kind, backbone parameters, file bytes, dev score (median, min, max), latencies."""
    tb = baselines["teacher"]
    lat = latency["models"]
    one = lambda s: {"median": s, "min": s, "max": s, "n": 1}  # noqa: E731  (a deterministic score)
    rows = [
        {"model": "teacher fp32 (PyTorch)", "kind": "teacher", "params": teacher["teacher_backbone_params"],
         "bytes": tb["fp32_bytes"], "score": one(tb["fp32_score"]), "latency": lat["teacher fp32 (PyTorch)"]["ms"]},
        {"model": "teacher dynamic int8 (onnxruntime)", "kind": "optimum", "params": teacher["teacher_backbone_params"],
         "bytes": tb["dynamic_int8_bytes"], "score": one(tb["dynamic_int8_score"]),
         "latency": lat["teacher dynamic int8 (onnxruntime)"]["ms"]},
    ]  # fmt: skip
    for name, s in students.items():
        key = f"compressed {name} int8 (onnxruntime)"
        rows.append({"model": key, "kind": "compressed", "budget": name, "arch": s["arch"], "params": s["params"],
                     "bytes": lat[key]["bytes"], "score": s["int8_score"], "latency": lat[key]["ms"]})  # fmt: skip
    for name, r in baselines.items():
        if name.startswith("af "):
            key = f"AF {name[3:]} int8 (onnxruntime)"
            rows.append({"model": key, "kind": "af", "budget": name[3:], "arch": r["arch"], "params": r["params"],
                         "bytes": lat[key]["bytes"], "score": r["int8_score"], "latency": lat[key]["ms"]})  # fmt: skip
    return rows


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (latency, score) no other point beats in both (lower latency, higher score)."""
    front = pareto_front([{"neg_score": -sc, "latency_ms": lat, "index": i} for i, (lat, sc) in enumerate(points)],
                         keys=("neg_score", "latency_ms"))  # fmt: skip
    return sorted(p["index"] for p in front)


def headline(task: str, rows: list[dict], key: str, chosen: dict) -> str:
    """The report's first sentence: what the run shows, in plain words."""
    teacher, dyn = rows[0], rows[1]
    t_score, t_ms = teacher["score"]["median"], teacher["latency"][key]
    parts = []
    for r in rows:
        if r["kind"] != "compressed":
            continue
        keep = r["score"]["median"] / t_score if t_score else float("nan")
        speed = t_ms / r["latency"][key]
        vs_dyn = dyn["latency"][key] / r["latency"][key]
        parts.append(f"the int8 model of budget {r['budget']} ({r['params']:,} backbone parameters, "
                     f"{r['params'] / teacher['params']:.0%} of the teacher's) keeps {keep:.1%} of the teacher's dev "
                     f"score ({r['score']['median']:.4f} vs {t_score:.4f}) and runs {speed:.1f}x the teacher's fp32 "
                     f"PyTorch speed ({vs_dyn:.1f}x onnxruntime's dynamic int8 of the teacher, which scores "
                     f"{dyn['score']['median']:.4f})")  # fmt: skip
        af = next((a for a in rows if a["kind"] == "af" and a.get("budget") == r["budget"]), None)
        if af is not None:
            diff = r["score"]["median"] - af["score"]["median"]
            parts[-1] += (f"; the same-size AF student distilled without search scores {af['score']['median']:.4f} "
                          f"({'+' if diff >= 0 else ''}{diff:.4f} for the searched one)")  # fmt: skip
    return f"On {task}, " + "; ".join(parts) + f" (latency at {point(key)})." + "".join(
        f" The {name} folder holds the AF student, whose dev score is higher." for name, kind in chosen.items()
        if kind == "AF")


def point(key: str) -> str:
    """``b1_t2`` -> ``batch 1, 2 threads``."""
    batch, threads = key[1:].split("_t")
    return f"batch {batch}, {threads} thread{'s' if threads != '1' else ''}"


def write_compress_report(out: Path, options: dict, task: str, teacher: dict, students: dict, baselines: dict,
                          deployed: dict, latency: dict, stage_seconds: dict) -> dict:  # fmt: skip
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``out``; returns their names."""
    rows = compress_rows(teacher, students, baselines, latency)
    t_ms = rows[0]["latency"]
    threads = sorted({int(k.split("_t")[1]) for k in t_ms})
    key = f"b1_t{threads[0]}"
    for r in rows:
        r["speedup"] = {k: round(t_ms[k] / r["latency"][k], 2) for k in t_ms}
    chosen = deployed.get("chosen", {})
    first = headline(task, rows, key, chosen)
    front = pareto([(r["latency"][key], r["score"]["median"]) for r in rows])
    cols = [k for k in sorted(t_ms, key=lambda k: (int(k.split("_t")[1]), int(k[1:].split("_")[0])))]
    head = "| model | arch | backbone params | file | dev score: median [min, max] (seeds) | " + " | ".join(
        f"ms batch {k[1:].split('_')[0]}, {k.split('_t')[1]} thr" for k in cols) + " | speed-up (" + key + ") |"
    lines = [head, "|" + "---|" * (6 + len(cols))]
    for i, r in enumerate(rows):
        s = r["score"]
        score = f"{s['median']:.4f}" + (f" [{s['min']:.4f}, {s['max']:.4f}] ({s['n']})" if s["n"] > 1 else "")
        lines.append(f"| {r['model']}{' *' if i in front else ''} | `{r.get('arch', teacher['teacher_arch'])}` | "
                     f"{r['params']:,} | {r['bytes'] / 1e6:.2f} MB | {score} | "
                     + " | ".join(f"{r['latency'][k]:.2f}" for k in cols) + f" | {r['speedup'][key]:.2f}x |")  # fmt: skip
    cpu = latency["cpu"]
    md = [f"# lvbert compress: {task}", "", first, "",
          f"Latency: one request of full {latency['seq_len']}-token sequences, median of the timed runs, on "
          f"{cpu['name']} ({cpu['isa']}; bf16: {cpu['bf16']}; int8 VNNI: {cpu['int8']}; AMX: {cpu['amx']}). "
          "Backbone parameters: embeddings and encoder, as `lvbert arch info` counts them. Dev scores of the int8 "
          "models are those of the deployed `model.onnx` run by onnxruntime. `*`: on the Pareto front of dev score "
          f"and latency ({point(key)}).", "", *lines, "",
          "![dev score against latency](report.png)", "", "## Deploy folders", "",
          *[f"- `{name}/`: the {chosen.get(name, 'searched')} student's int8 `model.onnx` with its tokenizer and labels; "
            "runs with onnxruntime alone (its README)" for name in deployed["folders"]], "",
          "## Stage times", "", "| stage | seconds |", "|---|---|",
          *[f"| {k} | {v:.0f} |" for k, v in stage_seconds.items()], ""]  # fmt: skip
    atomic_write_text(out / "report.md", "\n".join(md))
    atomic_write_json(out / "report.json", {"headline": first, "task": task, "options": options, "teacher": teacher,
                                            "rows": rows, "pareto": [rows[i]["model"] for i in front], "cpu": cpu,
                                            "seq_len": latency["seq_len"], "students": students,
                                            "baselines": baselines, "deploy": deployed["folders"],
                                            "stage_seconds": stage_seconds})  # fmt: skip
    _plot(out / "report.png", rows, front, key, task)
    return {"report": str(out / "report.md")}


def _plot(path: Path, rows: list[dict], front: list[int], key: str, task: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    marks = {"teacher": "s", "optimum": "D", "compressed": "o", "af": "^"}
    for r in rows:
        s = r["score"]
        ax.errorbar(r["latency"][key], s["median"], yerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]],
                    fmt=marks[r["kind"]], capsize=3, label=r["model"])  # fmt: skip
    pts = sorted((rows[i]["latency"][key], rows[i]["score"]["median"]) for i in front)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "k--", lw=0.8, label="Pareto front")
    ax.set_xscale("log")
    plain = plt.matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel(f"latency, ms ({point(key)})")
    ax.set_ylabel(f"{task} dev score")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save(fig, path)
