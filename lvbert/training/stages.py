"""The stages of a pipeline (``lvbert quickstart``, ``lvbert compress``) in one folder: each stage records
itself in ``<out>/stages.json`` when done and is skipped on a re-run; a stage that was interrupted runs
again (the recipes it calls resume from their own checkpoints)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.utils import atomic_write_json


class StageLog:
    """``<out>/stages.json``: which stages are done, their results and how long they took.

    ``identity`` (e.g. ``{"profile": "quick"}``) must match the folder's: another pipeline's folder is a
    one-line error, not a mix of two runs."""

    def __init__(self, out: Path, identity: dict, what: str = "run"):
        self.path = Path(out) / "stages.json"
        fresh = {**identity, "stages": {}}
        self.state = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else fresh
        for key, value in identity.items():
            if self.state.get(key) != value:
                raise LvBertError(f"{out} holds a {what} of {key} {self.state.get(key)!r}, not {value!r}; use another "
                                  "--out")  # fmt: skip

    def done(self, name: str) -> dict | None:
        return self.state["stages"].get(name)

    def record(self, name: str, seconds: float, result: dict) -> None:
        self.state["stages"][name] = {"seconds": round(seconds, 2), **result}
        atomic_write_json(self.path, self.state)

    def run(self, i: int, total: int, name: str, text: str, fn, redo: bool = False) -> dict:
        """Stage ``name`` (``i`` of ``total``): skipped when done (unless ``redo``), else ``fn()`` run, timed
        and recorded; returns its record."""
        prev = self.done(name)
        if prev is not None and not redo:
            print(f"=== [{i}/{total}] {name}: done already ({prev['seconds']:.0f} s), skipped")
            return prev
        print(f"\n=== [{i}/{total}] {name}: {text}", flush=True)
        t0 = time.perf_counter()
        result = fn() or {}
        self.record(name, time.perf_counter() - t0, result)
        return self.done(name)

    def seconds(self) -> dict[str, float]:
        return {k: v["seconds"] for k, v in self.state["stages"].items()}
