"""User-facing errors: the CLI prints them as one line and exits with status 2.

File-system failures (a full disk, a read-only folder, a path that is a file) are not
the user's typing mistakes but are just as little a bug: :func:`write_failure` turns
them, whichever library raised them, into one line (exit status 1).
"""

from __future__ import annotations

import errno

_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system (or the file-size limit)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EISDIR: "a folder is in the way of a file",
    errno.EEXIST: "a file is in the way",
}
# Libraries that write through their own code say it in words (safetensors: IoError(Os { code: 28 ...}),
# torch.save: "file write failed").
_WRITE_WORDS = ("no space left", "file too large", "read-only file system", "file write failed", "storagefull",
                "quota exceeded", "filetoolarge", "readonlyfilesystem")
# torch.save's zip writer does not say why a write came up short: its stream fails ("basic_ios::clear: iostream
# error") and then "[enforce fail at inline_container.cc:N] . unexpected pos N vs M" (the bytes written fell short).
_TORCH_SHORT_WRITE = ("unexpected pos", "basic_ios::clear")


class LvBertError(Exception):
    """A mistake in the user's input (bad argument, missing file, ...).

    The message must say what is wrong and how to fix it, in one line.
    """


def write_failure(e: BaseException) -> str | None:
    """One line for an exception that is a failed file-system write or read, else None."""
    if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
        where = f" ({e.filename})" if e.filename else ""
        return f"cannot write{where}: {_WRITE_ERRNOS[e.errno]}; free space or choose another --out"
    text = str(e).lower()
    if isinstance(e, RuntimeError) and any(w in text for w in _TORCH_SHORT_WRITE):
        return ("cannot write: torch.save could not write its whole file (no space left on the device, or a quota or "
                "file-size limit); free space or choose another --out")  # fmt: skip
    if isinstance(e, (RuntimeError, OSError)) or type(e).__name__ == "SafetensorError":
        if any(w in text for w in _WRITE_WORDS):
            first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            return f"cannot write: {first}; free space or choose another --out"
    return None
