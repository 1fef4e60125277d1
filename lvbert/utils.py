"""Small shared helpers: atomic files and folders, umask permissions, human-readable numbers."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from lvbert.errors import LvBertError


def warn(message: str) -> None:
    """A one-line warning on stderr, as the CLI prints Python warnings (``lvbert: warning: ...``)."""
    print(f"lvbert: warning: {message}", file=sys.stderr)


def lvbert_home() -> Path:
    """lvbert's cache folder (demo data, latency tables): ``$LVBERT_HOME``, else ``~/.cache/lvbert``.

    Read on every call, never at import, so a test (or a user) that sets the variable is obeyed.
    """
    return Path(os.environ.get("LVBERT_HOME") or Path.home() / ".cache" / "lvbert").expanduser()


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


# ----------------------------------------------------------------------------- folders


def fix_permissions(path: str | os.PathLike) -> None:
    """Give a folder we wrote the permissions the umask asks for (``mkdtemp`` makes 0700, ``mkstemp`` 0600)."""
    mask = _umask()
    path = Path(path)
    os.chmod(path, 0o777 & ~mask)
    for root, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


def check_out_dir(out: str | os.PathLike, option: str = "--out") -> Path:
    """``out`` as a Path; a one-line error when it exists and is not a folder."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise _error(f"{option} {out} exists and is a file, not a folder; choose a folder")
    return out


def _same_path(a: Path, b: Path) -> bool:
    a, b = Path(a).expanduser(), Path(b).expanduser()
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(child: Path, parent: Path) -> bool:
    child, parent = Path(child).expanduser().resolve(), Path(parent).expanduser().resolve()
    return child == parent or parent in child.parents


def check_not_an_input(out: str | os.PathLike, inputs: dict | None, option: str = "--out") -> None:
    """A one-line error when ``out`` is (or, for a folder, holds or lies inside) one of the inputs.

    ``inputs`` maps an option name (``"--model"``) to its path (``None`` entries are skipped).
    Refused always, ``--overwrite`` or not: writing there would destroy what the command reads.
    """
    out = Path(out).expanduser()
    for name, path in (inputs or {}).items():
        if path is None or str(path) == "":
            continue
        path = Path(path).expanduser()
        if _same_path(out, path) or (out.is_dir() and _inside(path, out)) or (path.is_dir() and _inside(out, path)):
            raise _error(f"{option} {out} is also the input {name} {path}; writing there would destroy the input: "
                         f"choose another {option}")


def check_output_file(path: str | os.PathLike, *, inputs: dict | None = None, overwrite: bool = False,
                      option: str = "--out") -> Path:
    """The one check of a command's output *file*: never an input; an existing file only with ``--overwrite``.

    Returns the path. Write it with :func:`atomic_write_bytes` / :func:`atomic_write_text`, so a failed
    run never leaves half a file.
    """
    path = Path(path).expanduser()
    check_not_an_input(path, inputs, option)
    if path.is_dir():
        raise _error(f"{option} {path} is a folder; name a file")
    if path.exists() and not overwrite:
        raise _error(f"{option} {path} already exists; choose another path or pass --overwrite to replace it")
    return path


def check_output_dir(out: str | os.PathLike, *, inputs: dict | None = None, overwrite: bool = False,
                     own_run: bool = False, option: str = "--out") -> Path:
    """The one check of a command's output *folder*, for every command that writes one.

    Refused (one-line error): an output that is one of the ``inputs`` (always); a path that is a file;
    an existing non-empty folder, unless ``own_run`` (the caller recognised its own unfinished or
    resumable run there) or ``overwrite`` (then the folder's old contents are removed first, so the
    result never mixes with them). Returns the path; the folder itself is not created.
    """
    out = check_out_dir(out, option)
    check_not_an_input(out, inputs, option)
    if out.is_dir() and any(out.iterdir()) and not own_run:
        if not overwrite:
            raise _error(f"{option} {out} already exists and is not empty; pass --resume to continue a run of this "
                         "command there, choose a new folder, or pass --overwrite to replace it")
        shutil.rmtree(out)
    return out


def read_text_file(path: str | os.PathLike, what: str = "file") -> str:
    """A UTF-8 text file's contents; one-line errors for a binary file or a byte that is not UTF-8
    (naming the file and the line), so task, triple and question files are all read one way."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _error(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise _error(f"{what} {path} is a folder; name a file") from None
    if b"\x00" in data[:65536]:
        raise _error(f"{what} {path} is binary (it holds NUL bytes), not a text file; give a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise _error(f"{what} {path} is not UTF-8 (byte 0x{data[e.start]:02x} on line {line}); "
                     "convert it, e.g. iconv -f latin1 -t utf-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def _error(message: str):
    return LvBertError(message)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_staging(out: str | os.PathLike) -> None:
    """Remove ``.<name>.tmp-PID-*`` / ``.<name>.old-PID-*`` folders beside ``out`` left by killed runs.

    A folder whose process still runs is left alone; names without a PID (older lvbert) are
    always stale.
    """
    out = Path(out)
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(f".{glob_escape(out.name)}.*"):
        rest = p.name[len(out.name) + 2 :]
        kind, _, tail = rest.partition("-")
        if not (kind.startswith("tmp") or kind.startswith("old")) or not p.is_dir():
            continue
        pid = tail.split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _pid_alive(int(pid))):
            continue  # this process's own, or a run still going
        shutil.rmtree(p, ignore_errors=True)


def glob_escape(name: str) -> str:
    return glob.escape(name)


def replace_dir(staged: Path, out: Path) -> None:
    """Put the finished folder ``staged`` at ``out``; an older ``out`` is removed only after the swap."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(3)}")
        os.rename(out, old)
    os.rename(staged, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staging_folder(out: str | os.PathLike):
    """Write a folder atomically: yields a hidden sibling of ``out`` to fill; on success it becomes ``out``
    (with umask permissions), on any error it is removed. Stale staging folders of killed runs go first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        yield tmp
        fix_permissions(tmp)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
