"""Which daemon runs on a data directory: an exclusive lock on ``<data_dir>/havel.lock`` that also says
where to reach it.

The daemon holds ``flock(LOCK_EX)`` on the file for as long as it runs (the kernel drops the lock when the
process ends, however it ends: no stale pid file) and writes a small JSON document into it: its pid, its
HTTP address and the sinks it delivers to. Commands that look (``havel gateway status``) find the daemon
from the data directory alone, whatever config they were given; commands that change the database behind
the daemon's back (restore, discarding a sink's records) refuse while it runs. A second daemon on the same
data directory is refused at start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from pathlib import Path
from typing import Any

from havel.errors import ConfigError

__all__ = ["LOCK_NAME", "RunLock", "ask_to_commit", "running"]

LOCK_NAME = "havel.lock"


class RunLock:
    """The daemon's side: :meth:`acquire` at start, :meth:`update` when its addresses are known,
    :meth:`release` at stop."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, info: dict[str, Any]) -> None:
        """Take the lock (ConfigError when another daemon holds it) and publish ``info``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = running(self.path.parent) or {}
            raise ConfigError(
                f"another gateway (pid {other.get('pid', '?')}) is running on {self.path.parent}",
                hint="stop it first, or give this one its own data_dir",
            ) from None
        self._fd = fd
        self.update(info)

    def update(self, info: dict[str, Any]) -> None:
        """Replace the published document."""
        if self._fd is None:
            return
        data = json.dumps({"pid": os.getpid(), **info}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # (closing drops the lock)
        self._fd = None


def running(data_dir: Path) -> dict[str, Any] | None:
    """The document of the daemon running on ``data_dir``, or None when none runs. Reads only: the file
    is neither created nor changed."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a daemon runs
            raw = os.pread(fd, 65536, 0)
            try:
                doc = json.loads(raw) if raw else {}
            except ValueError:
                doc = {}
            return doc if isinstance(doc, dict) else {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def ask_to_commit(data_dir: Path) -> bool:
    """Before writing the database behind a running daemon: ask it (SIGUSR1) to commit its open write batch
    and to begin none for a while (:mod:`havel.gateway.write_batch`), so that this process's write does not
    wait for the batch's lock until it times out. Only a daemon whose run lock says it takes the signal is
    sent it. False when none was asked."""
    doc = running(data_dir)
    pid = doc.get("pid") if doc else None
    if not doc or doc.get("commit_signal") != "SIGUSR1":  # (no batches, or a daemon that set no handler:
        return False  # SIGUSR1 would end it)
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError:
        return False
    return True
