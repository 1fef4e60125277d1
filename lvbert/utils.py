"""Small shared helpers: atomic writes and human-readable numbers."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def parse_count(text: str | int | float) -> int:
    """Parse '13.5M', '800k', '1e6' or 1200 into an int."""
    if isinstance(text, (int, float)):
        return int(text)
    s = str(text).strip().replace("_", "").replace(",", "")
    mult = 1
    if s and s[-1] in "kKmMgGbB":
        mult = {"k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}[s[-1].lower()]
        s = s[:-1]
    try:
        return int(round(float(s) * mult))
    except ValueError:
        from lvbert.errors import LvBertError

        raise LvBertError(f"cannot read {text!r} as a number; write e.g. 13500000, 13.5M or 800k") from None


def human(n: float) -> str:
    """12_525_856 -> '12.53M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n)) if float(n).is_integer() else f"{n:.2f}"
