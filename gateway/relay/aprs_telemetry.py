"""APRS telemetry of the relay: state records feed up to five analog channels, sent as a signed ``T#``
report, preceded by the signed definitions (PARM., UNIT., EQNS., BITS.) whenever they are due: before the
first report of each emergency, then again once the last were sent ``every_s`` ago."""

from __future__ import annotations

import math
from collections.abc import Callable

from havel.gateway.relay import aprs
from havel.gateway.relay.aprs_config import TelemetryChannel
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.signing import Signer

CHANNEL = "aprs"  # the signing channel of everything the APRS relay sends


class TelemetryReports:
    """The latest value of each channel and where the definitions stand. Used from the relay's thread
    (:meth:`feed` also from ``offer()``: it only stores floats)."""

    def __init__(
        self,
        callsign: str,
        channels: list[TelemetryChannel],
        signer: Signer,
        *,
        every_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.callsign = callsign
        self.channels = channels
        self.signer = signer
        self.every_s = every_s
        self.clock = clock
        self.values: list[float | None] = [None] * len(channels)
        self.seq = 0
        self.sent_at: float | None = None  # when the last full set of definitions went out
        self.todo: list[str] = []  # definition texts still to send before the next report

    def feed(self, rec: RelayRecord) -> bool:
        """Take the record's values of the channels it feeds; whether it fed any."""
        hit = False
        for i, ch in enumerate(self.channels):
            v = rec.data.get(ch.field)
            if (
                ch.dev_eui == rec.dev_eui
                and isinstance(v, int | float)
                and not isinstance(v, bool)
                and math.isfinite(v)
            ):
                self.values[i] = float(v)
                hit = True
        return hit

    def new_emergency(self) -> None:
        """An emergency began: the definitions go again before its first report."""
        self.sent_at = None

    def due(self) -> bool:
        """Before the first report of every emergency, and again once the last were sent an hour ago."""
        return self.sent_at is None or self.clock() - self.sent_at >= self.every_s

    def definition_texts(self) -> list[str]:
        """PARM., UNIT., EQNS. and the signed BITS. (its title carries the signature over all four)."""
        msgs = aprs.definition_messages(self.callsign, [c.channel for c in self.channels])
        defs = [m.text for m in msgs]
        sig = self.signer.sign(CHANNEL, aprs.definitions_body(defs).encode())
        defs[3] = f"{defs[3]} {sig}"
        return defs

    def sent_one(self, now: float) -> None:
        """The first definition of :attr:`todo` went out at ``now``."""
        self.todo.pop(0)
        if not self.todo:
            self.sent_at = now  # the hour counts from the last sending, not the queueing

    def report(self) -> str:
        """The next signed ``T#`` report of the channels' latest values."""
        analog = [
            c.channel.raw(v) if v is not None else 0 for c, v in zip(self.channels, self.values, strict=True)
        ]
        analog += [0] * (5 - len(analog))
        self.seq = (self.seq + 1) % 1000
        report = aprs.Telemetry(self.seq, (analog[0], analog[1], analog[2], analog[3], analog[4])).encode()
        sig = self.signer.sign(CHANNEL, report.encode())
        return f"{report} {sig}"
