"""The ``file`` sink: JSON Lines to a file or stdout (demo, debugging, offline sites).

Each message becomes one line ``{"topic": "...", "payload": {...}}`` in the sink's format (``json`` by
default, so the topic is the json-scheme topic). A record counts as delivered once its lines are written
and flushed (and fsync'ed with ``fsync = true``, for a file that must survive a power cut). A record's lines
are written in one unbuffered write; when that fails (disk full) the file is cut back to where it was, so
a reader never sees half a line or half a record, and the record stays in the outbox for the next try.

Config::

    [[sink]]
    type = "file"
    name = "log"            # optional, default "file"
    path = "-"              # "-" = stdout, else a file appended to (its folder is created)
    format = "json"         # json | sensorthings | fiware (with their keys, see havel.gateway.formats)
    fsync = false
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from havel.errors import StorageError
from havel.gateway.formats import Formatter, make_formatter
from havel.gateway.settings import key, keys_of, read
from havel.gateway.sinks.base import Result, Sink

__all__ = ["KEYS", "FileSink", "FileSinkSection"]


@dataclass(frozen=True)
class FileSinkSection:
    """A ``[[sink]]`` of type ``file`` (see the module docstring); ``format`` and the tables of the formats
    are read by their formatter (:func:`havel.gateway.formats.make_formatter`)."""

    type: str = key("file", choices=("file",))
    name: str = key("file")
    path: str = key("-")  # "-": standard output
    fsync: bool = key(False)
    format: str = key("json")
    prefix: str = key("havel")  # the json format's topic prefix
    gateway_id: str = key("gateway")  # set by the daemon from [gateway] id
    sensorthings: dict[str, Any] | None = None  # the sensorthings format's table
    fiware: dict[str, Any] | None = None  # the fiware format's table


KEYS = set(keys_of(FileSinkSection))


class FileSink(Sink):
    """JSON Lines writer; see the module docstring."""

    type = "file"

    def __init__(self, name: str, path: str | Path, formatter: Formatter, *, fsync: bool = False) -> None:
        super().__init__(name)
        self.path = str(path)
        self.formatter = formatter
        self.fsync = fsync
        self._fd: int | None = None  # the file (unbuffered, append); None for stdout or not open
        self._open = False

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> FileSink:
        """Build from a ``[[sink]]`` table (plus ``gateway_id`` passed in by the daemon); ConfigError names
        the key (``sink[log].fsync``)."""
        where = f"sink[{cfg.get('name', 'file')}]"
        section = read(FileSinkSection, cfg, where)
        formatter = make_formatter({**cfg, "gateway_id": section.gateway_id}, where=where)
        return cls(section.name, section.path, formatter, fsync=section.fsync)

    async def start(self) -> None:
        if self.path != "-":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                self._set_connected(False, f"cannot open {self.path}: {exc.strerror}")
                raise StorageError(
                    f"file sink {self.name}: cannot open {self.path}: {exc.strerror}",
                    hint="check the path and its permissions",
                ) from None
        self._open = True
        self._set_connected(True)

    async def stop(self, timeout: float = 5.0) -> None:
        fd, self._fd = self._fd, None
        self._open = False
        if fd is not None:
            os.close(fd)
        self._set_connected(False)

    def send(self, record: Any, buffered: bool) -> None:
        if not self._open:
            self._report(Result(record.id, False, "file sink is not open"))
            return
        try:
            messages = self.formatter(record, buffered)
            text = "".join(
                json.dumps({"topic": m.topic, "payload": json.loads(m.payload)}, ensure_ascii=False) + "\n"
                for m in messages
            )
        except Exception as exc:  # a record the format cannot express: report, never crash the loop
            self._report(Result(record.id, False, f"format failed: {exc}"))
            return
        try:
            self._write(text.encode())
        except OSError as exc:
            self._report(Result(record.id, False, f"write failed: {exc.strerror or exc}"))
            return
        self._report(Result(record.id, True))

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            sys.stdout.write(data.decode())
            sys.stdout.flush()
            return
        size = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:  # (a regular file takes it in one write; a short write is continued)
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):  # no half record left behind for a reader
                os.ftruncate(self._fd, size)
            raise
