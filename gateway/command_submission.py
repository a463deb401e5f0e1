"""Taking a downlink command (from MQTT, the demo or a test): queue it and store its result record.

The command goes to the downlink scheduler (or, on a roof of a shared network, to the shared store, where
the roof that hears the device sends it); its result (``queued`` or ``rejected``, later ``sent``, ``acked``
...) is an outbox record published on ``.../down/result``. When the database cannot take the command, it is
not queued: a ``rejected`` result with reason ``storage`` says so if the database takes that much.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from havel.codecs.lorawan.ids import eui_hex
from havel.errors import HavelError, StorageError
from havel.gateway import db
from havel.gateway.downlinks import DownlinkScheduler
from havel.gateway.metrics import Metrics
from havel.gateway.outbox import Outbox
from havel.gateway.storagehealth import StorageHealth

if TYPE_CHECKING:
    from havel.gateway.network.shared.daemon import SharedNetwork

__all__ = ["CommandSubmission"]

log = logging.getLogger("havel.gateway")


class CommandSubmission:
    """Queues downlink commands and stores their results; ``notify`` wakes the delivery after each."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        outbox: Outbox,
        downlinks: DownlinkScheduler,
        metrics: Metrics,
        health: StorageHealth,
        loop: asyncio.AbstractEventLoop,
        notify: Callable[[], None],
        shared: SharedNetwork | None = None,
        durable: Callable[[], bool] | None = None,
    ) -> None:
        self.conn = conn
        self.outbox = outbox
        self.downlinks = downlinks
        self.metrics = metrics
        self.health = health
        self.loop = loop
        self.notify = notify
        self.shared = shared
        # makes what was written durable (commits the open write batch); False when that failed
        self.durable = durable

    def submit(self, dev_eui: int, body: Any) -> dict[str, Any]:
        """Queue a downlink command (from the event loop's thread); the result record goes to the outbox.
        When the database fails, the command is not queued: a ``rejected`` result (reason ``storage``)
        says so if the database takes that much, and the StorageError is raised on."""
        if self.shared is not None:  # queued on the shared store: the roof that hears the device sends it
            result = self.shared.submit(dev_eui, body)
            with db.unit_of_work(self.conn):
                self.outbox.put(result)
            self._counted(dev_eui, result)
            return result
        try:
            with db.unit_of_work(self.conn):
                result = self.downlinks.submit(dev_eui, body)
                self.outbox.put(result)
        except StorageError as exc:
            try:
                with db.unit_of_work(self.conn):
                    self.outbox.put(self.downlinks.refuse_for_storage(dev_eui, body, str(exc)))
                self.metrics.inc("downlink_commands_total", state="rejected")
                self.notify()
            except StorageError:
                log.error("downlink command for %s: not even its rejection could be stored", eui_hex(dev_eui))
            raise
        # the result (published at once on MQTT) must not tell of a command the database could still lose
        if self.durable is not None and not self.durable():
            raise StorageError(f"downlink command for {eui_hex(dev_eui)}: the write batch with it was lost")
        self._counted(dev_eui, result)
        return result

    def _counted(self, dev_eui: int, result: dict[str, Any]) -> None:
        state = result["payload"]["state"]
        self.metrics.inc("downlink_commands_total", state=state)
        if state == "rejected":
            log.warning("downlink command for %s rejected: %s", eui_hex(dev_eui), result["payload"]["detail"])
        self.notify()

    def submit_threadsafe(self, dev_eui: int, body: Any) -> None:
        """The same from another thread (an MQTT client's)."""
        self.loop.call_soon_threadsafe(self.submit_logged, dev_eui, body)

    def submit_logged(self, dev_eui: int, body: Any) -> None:
        """:meth:`submit` where there is no caller to raise to (a command from MQTT): a command the database
        could not take is said in the log and in the storage health, not lost in the loop's handler."""
        try:
            self.submit(dev_eui, body)
        except StorageError as exc:
            self.health.failed("storing a downlink command", exc, f"command for {eui_hex(dev_eui)} not taken")
        except HavelError as exc:
            log.error("downlink command for %s not taken: %s", eui_hex(dev_eui), exc)
