"""The files of a search folder and how ``history.jsonl`` is read back (no torch, no plotting).

Both the search (:mod:`lvbert.search.evolution`) and its reports (:mod:`lvbert.search.report`)
use these, so neither imports the other's module for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.utils import atomic_write_text

HISTORY = "history.jsonl"  # one JSON record per evaluated candidate, appended as evaluated
CONFIG = "search_config.json"  # the space, the settings, what the fitness depends on, the command's options
BEST = "best.json"
TOP = "top.md"


def read_history(path: str | os.PathLike, repair: bool = False) -> list[dict]:
    """Records of a ``history.jsonl``; a truncated last line is dropped (and cut from the file if ``repair``).

    A corrupt line anywhere else is an error: that file was not written by a search.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records, dropped = [], False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        last = i == len(lines) - 1  # text after the final newline: an unfinished write
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "arch" not in rec or "fitness" not in rec:
                raise ValueError("not a history record")
        except ValueError:
            if last or all(not rest.strip() for rest in lines[i + 1 :]):
                dropped = True
                break
            raise LvBertError(f"{path} line {i + 1} is corrupt; it is not a search history") from None
        if last:  # complete JSON but no newline: keep it, the newline is added on repair
            dropped = True
        records.append(rec)
    if dropped and repair:
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return records
