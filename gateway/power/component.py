"""The power component of the daemon (``[power]`` in the gateway config, :class:`PowerSection`)::

    [power]
    ups = "roofups"            # NUT UPS name, "name@host:port" for another upsd (default port 3493)
    poll_s = 5                 # how often upsd is asked
    low_runtime_s = 600        # on battery, below this runtime ...
    low_charge_pct = 25        # ... or this charge the battery is low: flush, tell the platform, stop
    report_every_s = 300       # on battery: the runtime left as an event this often
    flush_timeout_s = 60       # at most this long waiting for the sinks to take the outbox
    shutdown_command = []      # optional, run after the flush, e.g. ["systemctl", "poweroff"] (upsmon
                               # usually powers the Pi off; see docs/roof.md)

Events (through the daemon's event listeners, so they are outbox records published on ``.../events``):
``power_on_battery`` (alarm class: mains lost, with charge and runtime), ``power_battery`` (every
``report_every_s`` on battery), ``power_low_battery`` (alarm class) then the clean stop,
``power_mains_back``, ``power_restored`` (at the first start after a low-battery stop, with its time),
``power_ups_unreachable`` / ``power_ups_back``. Status (``/status`` -> ``power``) and metrics
(``power_on_battery``, ``power_battery_charge_percent``, ``power_runtime_seconds``, ``power_reads_total``)
show the state and the runtime left.

The daemon is started again by systemd; ``havel gateway power-check`` (the unit's ``ExecStartPre``) keeps
it from starting while the battery is still low, so it starts, and drains its outbox, once mains is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from havel.gateway.power import nut
from havel.gateway.power.state import BATTERY, LOW, MAINS, UNKNOWN, Limits, Reading, event_for, reading
from havel.gateway.sections import PowerSection
from havel.gateway.setup.watchdog import emit

if TYPE_CHECKING:
    from havel.gateway.components import DaemonContext

log = logging.getLogger("havel.gateway.power")


STATE_FILE = "power-state.json"  # in the data directory: why and when the daemon last stopped for power
UNREACHABLE_AFTER = 3  # failed reads in a row before the UPS counts as unreachable (one may be a hiccup)


class PowerSettings:
    """The ``[power]`` section as the component uses it (also ``havel gateway power-check``)."""

    def __init__(self, s: PowerSection) -> None:
        self.ups = nut.parse_ups(s.ups)
        self.poll_s = s.poll_s
        self.limits = Limits(low_runtime_s=s.low_runtime_s, low_charge_pct=s.low_charge_pct)
        self.report_every_s = s.report_every_s
        self.flush_timeout_s = s.flush_timeout_s
        self.timeout_s = s.timeout_s
        self.shutdown_command: list[str] = list(s.shutdown_command)


class PowerComponent:
    """See the module docstring."""

    def __init__(self, ctx: DaemonContext, section: PowerSection) -> None:
        self.settings = PowerSettings(section)
        self.ctx = ctx
        self.gateway = ctx.gateway
        self.state = UNKNOWN
        self.reading: Reading | None = None
        self.since = time.time()
        self.last_error: str | None = None
        self.failures = 0
        self.reachable: bool | None = None
        self.shutting_down = False
        self._last_report = 0.0
        self._task: asyncio.Task[None] | None = None
        self._state_file = Path(ctx.config.data_dir) / STATE_FILE
        self._describe(ctx.metrics)

    def _describe(self, m: Any) -> None:
        m.describe("power_on_battery", "gauge", "1 while the gateway runs on its UPS battery")
        m.gauge_fn("power_on_battery", lambda: 1.0 if self.state in (BATTERY, LOW) else 0.0)
        m.describe("power_battery_charge_percent", "gauge", "UPS battery charge (battery.charge)")
        m.gauge_fn("power_battery_charge_percent", lambda: self._value("charge_pct"))
        m.describe("power_runtime_seconds", "gauge", "UPS runtime left on battery (battery.runtime)")
        m.gauge_fn("power_runtime_seconds", lambda: self._value("runtime_s"))
        m.describe("power_ups_reachable", "gauge", "1 while upsd answers for the UPS")
        m.gauge_fn("power_ups_reachable", lambda: 1.0 if self.reachable else 0.0)
        m.describe("power_reads_total", "counter", "UPS reads, by result (ok or NUT's error code)")

    def _value(self, key: str) -> dict[Any, float]:
        v = getattr(self.reading, key, None) if self.reading else None
        return {} if v is None else {(): float(v)}

    # ---------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._restored()
        self._task = asyncio.create_task(self._loop(), name="power")

    async def stop(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def health(self) -> dict[str, Any]:
        """The state for /status: mains, battery, low or unknown, with the last reading."""
        return {
            "ups": str(self.settings.ups),
            "state": self.state,
            "since": round(self.since, 3),
            "reachable": self.reachable,
            "last_error": self.last_error,
            **(self.reading.as_dict() if self.reading else {}),
        }

    # --------------------------------------------------------------------------------------- work
    async def _loop(self) -> None:
        while not self.shutting_down:
            try:
                await self.poll()
            except Exception:
                log.exception("power poll failed")
            await asyncio.sleep(self.settings.poll_s)

    async def poll(self) -> None:
        """Read the UPS once and act on what changed."""
        s = self.settings
        try:
            variables = await asyncio.to_thread(nut.list_vars, s.ups, timeout=s.timeout_s)
            r = reading(variables)
        except (nut.NutError, ValueError) as exc:
            code = exc.code if isinstance(exc, nut.NutError) else "status"
            self.ctx.metrics.inc("power_reads_total", result=code)
            self.last_error = str(exc)
            self.failures += 1
            if self.failures >= UNREACHABLE_AFTER and self.reachable is not False:
                self.reachable = False
                log.warning("UPS %s cannot be read: %s", s.ups, exc)
                emit(self.gateway, "power_ups_unreachable", {"ups": str(s.ups), "error": str(exc)})
            return
        self.ctx.metrics.inc("power_reads_total", result="ok")
        if self.reachable is False:
            emit(self.gateway, "power_ups_back", {"ups": str(s.ups)})
        self.reachable, self.failures, self.last_error = True, 0, None
        self.reading = r
        new = r.state(s.limits)
        event = event_for(self.state, new)
        if new != self.state:
            log.log(
                logging.WARNING if new != MAINS else logging.INFO,
                "power: %s -> %s (%s, charge %s %%, runtime %s s)",
                self.state,
                new,
                r.status,
                r.charge_pct,
                r.runtime_s,
            )
            self.state, self.since = new, time.time()
        now = time.monotonic()
        if event:
            self._last_report = now
            emit(self.gateway, event, {"ups": str(s.ups), **r.as_dict()})
        elif new == BATTERY and now - self._last_report >= s.report_every_s:
            self._last_report = now
            emit(self.gateway, "power_battery", {"ups": str(s.ups), **r.as_dict()})
        if new == LOW and not self.shutting_down:
            await self._shut_down(r)

    async def _shut_down(self, r: Reading) -> None:
        """Flush the outbox to the sinks (bounded), note why, run the shutdown command, stop the daemon."""
        self.shutting_down = True
        s = self.settings
        log.warning("power: battery low: flushing the outbox and stopping (at most %g s)", s.flush_timeout_s)
        deadline = time.monotonic() + s.flush_timeout_s
        depth = self._depth()
        while depth and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            depth = self._depth()
        self._write_state({"stopped": "low_battery", "at": time.time(), "outbox_left": depth, **r.as_dict()})
        log.warning(
            "power: outbox %s; stopping the gateway", "empty" if not depth else f"still holds {depth}"
        )
        if s.shutdown_command:
            await self._run_shutdown_command()
        self.gateway.request_stop()

    def _depth(self) -> int:
        """Records the sinks have not taken yet (the low-battery event among them)."""
        try:
            depth = int(self.ctx.outbox.depth())
            northbound = self.gateway.northbound
            return depth - (northbound.delivered_unrecorded() if northbound is not None else 0)
        except Exception as exc:  # a storage fault: nothing more to wait for
            log.error("power: cannot read the outbox depth: %s", exc)
            return 0

    async def _run_shutdown_command(self) -> None:
        cmd = self.settings.shutdown_command
        try:
            proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL)
            rc = await asyncio.wait_for(proc.wait(), 60)
            log.warning("power: %s exited with %s", " ".join(cmd), rc)
        except (OSError, TimeoutError) as exc:
            log.error("power: shutdown command %s failed: %s", cmd, exc)

    # ------------------------------------------------------------------------ across the restart
    def _write_state(self, doc: dict[str, Any]) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._state_file)
        except OSError as exc:
            log.error("power: cannot write %s: %s", self._state_file, exc)

    def _restored(self) -> None:
        """At start: when the last stop was for a low battery, say that power is back (and forget it)."""
        try:
            doc = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("power: %s cannot be read (%s); ignoring it", self._state_file, exc)
            doc = {}
        with contextlib.suppress(OSError):
            self._state_file.unlink()
        if isinstance(doc, dict) and doc.get("stopped") == "low_battery":
            at = doc.get("at")
            details = {"ups": str(self.settings.ups), "stopped_at": at, "outbox_left": doc.get("outbox_left")}
            if isinstance(at, int | float):
                details["down_s"] = round(time.time() - at, 1)
            log.info("power: started again after a low-battery stop")
            emit(self.gateway, "power_restored", details)


def check(section: PowerSection) -> tuple[bool, str]:
    """For ``havel gateway power-check``: (may the daemon start?, why). It may, unless the UPS reports a
    low battery on battery power; an unreachable upsd does not keep the gateway down."""
    s = PowerSettings(section)
    try:
        r = reading(nut.list_vars(s.ups, timeout=s.timeout_s))
    except (nut.NutError, ValueError) as exc:
        return True, f"UPS {s.ups} cannot be read ({exc}); starting anyway"
    state = r.state(s.limits)
    text = f"UPS {s.ups}: {state} ({r.status}, charge {r.charge_pct} %, runtime {r.runtime_s} s)"
    return state != LOW, text


__all__ = ["MAINS", "PowerComponent", "PowerSection", "PowerSettings", "check"]
