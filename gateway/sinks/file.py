"""The ``file`` sink: JSON Lines to a file or stdout (demo, debugging, offline sites).

Each message becomes one line ``{"topic": "...", "payload": {...}}`` in the sink's format (``json`` by
default, so the topic is the json-scheme topic). A record counts as delivered once its lines are written
and flushed (and fsync'ed with ``fsync = true``, for a file that must survive a power cut).

Config::

    [[sink]]
    type = "file"
    name = "log"            # optional, default "file"
    path = "-"              # "-" = stdout, else a file appended to (its folder is created)
    format = "json"         # json | sensorthings | fiware (with their keys, see havel.gateway.formats)
    fsync = false
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from havel.errors import ConfigError, StorageError

from ..formats import Formatter, make_formatter
from .base import Result, Sink

__all__ = ["FileSink"]

_KEYS = {"type", "name", "path", "format", "fsync", "prefix", "gateway_id", "sensorthings", "fiware"}


class FileSink(Sink):
    """JSON Lines writer; see the module docstring."""

    type = "file"

    def __init__(self, name: str, path: str | Path, formatter: Formatter, *, fsync: bool = False) -> None:
        super().__init__(name)
        self.path = str(path)
        self.formatter = formatter
        self.fsync = fsync
        self._fh: IO[str] | None = None

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> FileSink:
        """Build from a ``[[sink]]`` table (plus ``gateway_id`` passed in by the daemon)."""
        name = str(cfg.get("name", "file"))
        where = f"sink[{name}]"
        unknown = set(cfg) - _KEYS
        if unknown:
            raise ConfigError(
                f"{where}.{sorted(unknown)[0]} is not a known key", hint=", ".join(sorted(_KEYS))
            )
        path = cfg.get("path", "-")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.path must be a file path or '-' for stdout")
        fsync = cfg.get("fsync", False)
        if not isinstance(fsync, bool):
            raise ConfigError(f"{where}.fsync must be true or false")
        cfg = {"gateway_id": "gateway", **cfg}
        return cls(name, path, make_formatter(cfg, where=where), fsync=fsync)

    async def start(self) -> None:
        if self.path == "-":
            self._fh = sys.stdout
        else:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the sink's life
            except OSError as exc:
                self._set_connected(False, f"cannot open {self.path}: {exc.strerror}")
                raise StorageError(
                    f"file sink {self.name}: cannot open {self.path}: {exc.strerror}",
                    hint="check the path and its permissions",
                ) from None
        self._set_connected(True)

    async def stop(self, timeout: float = 5.0) -> None:
        fh, self._fh = self._fh, None
        if fh is not None and fh is not sys.stdout:
            fh.close()
        self._set_connected(False)

    def send(self, record: Any, buffered: bool) -> None:
        if self._fh is None:
            self._report(Result(record.id, False, "file sink is not open"))
            return
        try:
            messages = self.formatter(record, buffered)
            for m in messages:
                line = json.dumps({"topic": m.topic, "payload": json.loads(m.payload)}, ensure_ascii=False)
                self._fh.write(line + "\n")
            self._fh.flush()
            if self.fsync and self._fh is not sys.stdout:
                os.fsync(self._fh.fileno())
        except OSError as exc:
            self._report(Result(record.id, False, f"write failed: {exc.strerror or exc}"))
            return
        except Exception as exc:  # a record the format cannot express: report, never crash the loop
            self._report(Result(record.id, False, f"format failed: {exc}"))
            return
        self._report(Result(record.id, True))
