"""Write a file that holds secrets (keys, exports, the registry) so that only its owner can read it.

``os.open(path, O_CREAT, 0o600)`` sets the mode only when it creates the file: written over an existing
0644 file it keeps 0644. So the bytes go to a new temporary file (created 0600 next to the target, on the
same filesystem), which is fsynced and renamed over the target: the result is 0600 whatever was there
before, and a crash leaves either the old file or the new one, never half of it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from havel.errors import StorageError

MODE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, mode 0600, atomically; StorageError when it cannot."""
    if path.is_dir():
        raise StorageError(f"{path} is a folder", hint="give a file name")
    try:
        _write(path, data)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # the rename itself survives a power cut once the folder is synced
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
