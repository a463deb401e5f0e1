"""Keeping a paho MQTT client's network thread alive.

paho runs callbacks in its network thread; an exception that escapes one ends that thread, and with it
every later message, while the process goes on as if nothing happened. The relay's handlers catch what
they can read and count the rest, so this should not happen; :class:`LoopWatchdog` is the second line:
it notices a dead network thread (``loop_start()`` succeeds only when none runs) and starts a new one,
counting the restart for the health report.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger("havel.relay.supervise")


class LoopWatchdog:
    """Starts ``client``'s network thread and restarts it whenever it has died."""

    def __init__(self, client: mqtt.Client, name: str, period_s: float = 1.0) -> None:
        self.client = client
        self.name = name
        self.period_s = period_s
        self.restarts = 0
        self.last_restart_at: float | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.client.loop_start()
        self._thread = threading.Thread(target=self._watch, name=f"watchdog-{self.name}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._halt.wait(self.period_s):
            # MQTT_ERR_INVAL: the network thread still runs. Success: it had died and runs again now.
            if self.client.loop_start() == mqtt.MQTT_ERR_SUCCESS:
                self.restarts += 1
                self.last_restart_at = time.time()
                log.error(
                    "%s: the MQTT network thread had died; restarted (%d so far)", self.name, self.restarts
                )

    def stop_watching(self) -> None:
        """Call before disconnecting: a thread that ends because of the disconnect is not restarted."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(5)

    def health(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "last_restart_at": self.last_restart_at}
