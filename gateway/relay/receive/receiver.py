"""``havel relay receive``: the crisis centre's end of the disaster relay.

Listens on the configured paths (a KISS TNC, MQTT, Reticulum), verifies each message's signature and
counter (forgeries and replays are rejected and counted), drops duplicates by message id (a record may
arrive over several paths, and again after a resend), and republishes the rest into a local MQTT broker in
the gateway's json scheme with a ``via`` field naming the path. The config is described in
:mod:`.config`; :class:`Receiver` starts and stops the parts together:

- :mod:`.core`: verification of envelopes, dedup, republishing, the counters;
- :mod:`.aprs_frames`: APRS frames (messages, signed telemetry and its definitions);
- :mod:`.kiss_listener`, :mod:`.mqtt_listener` (and the Reticulum listener of the relay): the paths in;
- :mod:`.publisher`: the local broker.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from havel.gateway.mqtt import LoopThread
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.core import ReceiverCore
from havel.gateway.relay.receive.kiss_listener import KissListener
from havel.gateway.relay.receive.mqtt_listener import MqttListener
from havel.gateway.relay.receive.publisher import Publisher


class Receiver:
    """All listeners plus the publisher, started and stopped together."""

    def __init__(self, cfg: ReceiverConfig) -> None:
        self.cfg = cfg
        self.loop = LoopThread("receiver-mqtt")  # the publisher's and the listener's MQTT clients
        self.publisher = Publisher(cfg.publish, loop=self.loop)
        self.core = ReceiverCore(cfg, self.publisher)
        self.kiss = KissListener(self.core, cfg.kiss) if cfg.kiss else None
        self.mqtt = MqttListener(self.core, cfg.mqtt, cfg.mqtt_topic, self.loop) if cfg.mqtt else None
        self.rns: Any = None
        if cfg.reticulum:
            from havel.gateway.relay.reticulum_relay import ReticulumListener  # optional extra

            self.rns = ReticulumListener(self.core, cfg.reticulum, cfg.data_dir)

    def start(self) -> Receiver:
        self.publisher.start()
        for part in (self.kiss, self.mqtt, self.rns):
            if part is not None:
                part.start()
        return self

    def stop(self) -> None:
        for part in (self.kiss, self.mqtt, self.rns):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        with contextlib.suppress(Exception):
            self.publisher.stop()
        self.loop.close()

    def wait_ready(self, timeout: float = 10.0) -> list[str]:
        """Wait until every listener is connected (TNC, MQTT subscription, RNS node); the ready ones."""
        deadline = time.monotonic() + timeout
        ready: list[str] = []
        if self.kiss is not None and self.kiss.connected.wait(max(0.0, deadline - time.monotonic())):
            ready.append("kiss")
        if self.mqtt is not None and self.mqtt.subscribed.wait(max(0.0, deadline - time.monotonic())):
            ready.append("mqtt")
        if self.rns is not None and self.rns.destination_hash:
            ready.append(f"reticulum {self.rns.destination_hash}")
        return ready

    def health(self) -> dict[str, Any]:
        """The listeners' state (connected, restarts) and the counters, for the status output."""
        out: dict[str, Any] = {"counters": {k: self.core.total(k) for k in self.core.COUNTERS}}
        for name, part in (("kiss", self.kiss), ("mqtt", self.mqtt), ("reticulum", self.rns)):
            if part is not None:
                out[name] = part.health()
        if self.core.verifier.state_lost:
            out["counter_state"] = "lost: accepting only messages stamped after the start"
        return out

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
