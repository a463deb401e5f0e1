"""The emergency switch: third-party traffic on amateur radio is legal only in a declared emergency.

The switch is on when the config says ``emergency = true`` or when the state file
``<data_dir>/relay-emergency.json`` says so (written by ``havel relay emergency on|off`` or by a signed
MQTT command on a path that still works). The file wins over the config when present, so the person on
duty can switch off what the config switched on. Relays read it before every transmission.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from havel.errors import StorageError

log = logging.getLogger("havel.relay.emergency")
STATE_FILE = "relay-emergency.json"


@dataclass(frozen=True)
class EmergencyState:
    on: bool
    source: str  # "config" | "cli" | "mqtt" | ...
    since: str | None = None
    at: float | None = None  # Unix time of the change (a command's own time when it came by MQTT)
    counter: int | None = None  # signature counter of the last command applied over MQTT


class EmergencySwitch:
    """Reads (cheaply, by mtime) and writes the emergency state of one data directory."""

    def __init__(self, data_dir: str | Path, *, config_default: bool = False) -> None:
        self.path = Path(data_dir) / STATE_FILE
        self.config_default = config_default
        self._cache: tuple[float, EmergencyState] | None = None

    def state(self) -> EmergencyState:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return EmergencyState(self.config_default, "config")
        if self._cache is not None and self._cache[0] == mtime:
            return self._cache[1]
        try:
            raw = json.loads(self.path.read_text())
            at, counter = raw.get("at"), raw.get("counter")
            st = EmergencyState(
                raw["on"] is True,
                str(raw.get("source", "file")),
                raw.get("since"),
                float(at) if type(at) in (int, float) else None,
                counter if type(counter) is int else None,
            )
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            # An unreadable switch means: not declared. Never transmit on a guess.
            log.error("emergency state file %s is unreadable: treating emergency as OFF", self.path)
            st = EmergencyState(False, "unreadable")
        self._cache = (mtime, st)
        return st

    def is_on(self) -> bool:
        return self.state().on

    def set(
        self, on: bool, source: str, *, at: float | None = None, counter: int | None = None
    ) -> EmergencyState:
        """Switch on or off (atomic write); logs the change.

        ``at``: the time of the decision (default now; a remote command's own time), ``counter``: the
        signature counter of a remote command. Both are kept, so that an older command arriving later
        (reordered or held back on the way) can be told apart and refused.
        """
        prev = self.state()
        when = time.time() if at is None else at
        st = EmergencyState(
            on,
            source,
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            max(when, prev.at or 0.0),
            counter if counter is not None else prev.counter,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        doc = {"on": st.on, "source": st.source, "since": st.since, "at": st.at, "counter": st.counter}
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps(doc) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StorageError(f"cannot write emergency state {self.path}: {exc.strerror}") from exc
        # mtime resolution can hide two writes within one tick: drop the cache.
        self._cache = None
        log.warning("emergency mode %s (by %s)", "ON" if on else "OFF", source)
        return st
