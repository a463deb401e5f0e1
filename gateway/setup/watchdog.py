"""The forwarder watchdog: when a packet forwarder falls silent, restart it with a concentrator reset.

A daemon component (``[watchdog]`` in the gateway config, :class:`~havel.gateway.sections.WatchdogSection`)::

    [watchdog]
    restart_command = ["systemctl", "restart", "havel-pktfwd.service"]   # runs the reset script too
    first_after_s = 0        # wait this long after the silence alarm before the first restart
    backoff_s = 60           # then wait this long for the forwarder to come back, doubling each time ...
    backoff_max_s = 1800     # ... up to this
    max_restarts = 5         # restarts per silence; then it gives up (an alarm) until the forwarder is back
    timeout_s = 120          # a restart command still running after this is killed (counted as failed)

It listens to the daemon's ``forwarder_silent`` / ``forwarder_back`` events (the silence alarm of
:mod:`havel.gateway.backends.semtech_udp.forwarders`). Each step is an event of its own (``forwarder_restart``
with the attempt, the command's exit status and the last line it printed; ``forwarder_restart_gave_up``),
counted in ``forwarder_restarts_total{result}`` and shown by :meth:`WatchdogComponent.health`. The command is
an argument vector (no shell); tests run a real script in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from havel.gateway.sections import WatchdogSection

if TYPE_CHECKING:
    from havel.gateway.components import DaemonContext

log = logging.getLogger("havel.gateway.watchdog")


def emit(gateway: Any, event: str, details: dict[str, Any]) -> None:
    """Hand a gateway event to the daemon's event listeners (the northbound component stores it in the
    outbox, whence it goes out on ``.../events``); one failing listener does not stop the others."""
    for listener in list(gateway.event_listeners):
        try:
            listener(event, details)
        except Exception:
            log.exception("event listener failed on %s", event)


class WatchdogComponent:
    """See the module docstring."""

    def __init__(self, ctx: DaemonContext, s: WatchdogSection) -> None:
        self.command: list[str] = list(s.restart_command)
        self.first_after_s = s.first_after_s
        self.backoff_s = s.backoff_s
        self.backoff_max_s = s.backoff_max_s
        self.max_restarts = s.max_restarts
        self.timeout_s = s.timeout_s
        self.gateway = ctx.gateway
        self.metrics = ctx.metrics
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._state: dict[str, dict[str, Any]] = {}  # per gateway EUI: what the watchdog is doing
        self._started = False
        ctx.gateway.event_listeners.append(self._on_event)
        self.metrics.describe(
            "forwarder_restarts_total",
            "counter",
            "packet forwarder restarts by the watchdog, by result (ok, failed, timeout) and gave_up",
        )

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def health(self) -> dict[str, Any]:
        """Per silent forwarder: state (waiting, restarting, gave_up), attempts, the last result."""
        return {"command": self.command, "forwarders": {k: dict(v) for k, v in self._state.items()}}

    # ------------------------------------------------------------------------------------------
    def _on_event(self, event: str, details: dict[str, Any]) -> None:
        if not self._started or event not in ("forwarder_silent", "forwarder_back"):
            return
        eui = str(details.get("gateway"))
        if event == "forwarder_silent":
            if eui not in self._tasks:
                self._state[eui] = {"state": "waiting", "attempts": 0, "since": time.time()}
                self._tasks[eui] = asyncio.get_running_loop().create_task(
                    self._recover(eui), name=f"wd-{eui}"
                )
            return
        task = self._tasks.pop(eui, None)
        if task is not None:
            task.cancel()
        st = self._state.pop(eui, None)
        if st and st.get("attempts"):
            log.info("packet forwarder %s is back after %d restart(s)", eui, st["attempts"])

    async def _recover(self, eui: str) -> None:
        st = self._state[eui]
        wait = self.first_after_s
        try:
            for attempt in range(1, self.max_restarts + 1):
                st.update(state="waiting", next_at=time.time() + wait)
                await asyncio.sleep(wait)
                st.update(state="restarting", attempts=attempt, next_at=None)
                result, status, last = await self._run()
                self.metrics.inc("forwarder_restarts_total", result=result)
                st["last"] = {"result": result, "exit_status": status, "output": last, "at": time.time()}
                log.warning(
                    "packet forwarder %s silent: restart %d of %d %s (exit status %s)%s",
                    eui,
                    attempt,
                    self.max_restarts,
                    result,
                    status,
                    f": {last}" if last else "",
                )
                emit(
                    self.gateway,
                    "forwarder_restart",
                    {
                        "gateway": eui,
                        "attempt": attempt,
                        "of": self.max_restarts,
                        "result": result,
                        "exit_status": status,
                        "output": last,
                    },
                )
                wait = min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)
            # the last restart gets its wait too before the watchdog gives up
            st.update(state="waiting", next_at=time.time() + wait)
            await asyncio.sleep(wait)
            st.update(state="gave_up", next_at=None)
            self.metrics.inc("forwarder_restarts_total", result="gave_up")
            log.error("packet forwarder %s still silent after %d restarts: giving up", eui, self.max_restarts)
            emit(self.gateway, "forwarder_restart_gave_up", {"gateway": eui, "restarts": self.max_restarts})
        finally:
            if self._tasks.get(eui) is asyncio.current_task():
                # gave up: no task, but the state stays visible until the forwarder is back
                del self._tasks[eui]

    async def _run(self) -> tuple[str, int | None, str]:
        """Run the restart command: (ok | failed | timeout, exit status, its last output line)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            return "failed", None, f"cannot run {self.command[0]}: {exc.strerror}"
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return "timeout", None, f"still running after {self.timeout_s:g} s: killed"
        lines = out.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1][:200] if lines else ""
        return ("ok" if proc.returncode == 0 else "failed"), proc.returncode, last
