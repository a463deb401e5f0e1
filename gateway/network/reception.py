"""What the network server is fed: one concentrator's reception of one frame, free of the protocol it came by.

A gateway backend (the Semtech UDP packet forwarder's GWMP in ``havel.gateway.backends.semtech_udp``; others
could follow, as ChirpStack has gateway backends for several protocols) turns what it receives into a
:class:`Reception`: the frame's bytes and radio metadata as a :class:`RadioFrame`, the concentrator's EUI, the
receive time and where that time came from. The network server reads nothing else, so it never depends on a
backend's wire types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

# the concentrator's microsecond counter (``tmst``) is 32 bits: it wraps every ~71.6 minutes
COUNTER_MODULO = 1 << 32


class RadioFrame(Protocol):
    """One received frame and its radio metadata, in units that say what they are (a backend's packet type
    provides these attributes; ``havel.gateway.backends.semtech_udp.rxpk.RxPacket`` does)."""

    data: bytes  # the PHYPayload
    tmst: int  # the concentrator's microsecond counter at the end of the reception (32 bits, wraps)
    freq_hz: int
    datr: str  # LoRa data rate as "SF7BW125"
    chan: int
    rssi: float
    lsnr: float | None
    time: datetime | None  # the concentrator's receive time, GPS-synced when ``tmms`` is set
    tmms: int | None  # GPS time in ms since 1980-01-06, present only with a GPS fix

    @property
    def crc_ok(self) -> bool: ...


_EUI_TEXT: dict[int, str] = {}  # concentrator EUI -> its hex text (a roof has a few concentrators)


@dataclass
class Reception:
    """One copy of a frame as one concentrator heard it, with its receive time and where that came from."""

    gateway_eui: int
    rx: RadioFrame
    received_at: datetime
    time_source: str  # "gps" (time from a GPS-synced concentrator) or "local" (this machine's clock)
    journal_id: int | None = None  # its row in the intake journal (deleted when the frame is stored)
    replayed: bool = False  # taken from the journal after a restart: its receive windows are gone
    # the datagram it came in, its index in that datagram, and this machine's receive time (unix): what the
    # daemon journals (one row per datagram)
    origin: tuple[bytes, int, float] | None = None

    def rx_info(self) -> dict[str, Any]:
        """The entry of the message's ``rx`` list."""
        r = self.rx
        gateway = _EUI_TEXT.get(self.gateway_eui)
        if gateway is None:
            gateway = f"{self.gateway_eui:016X}"
            if len(_EUI_TEXT) < 10_000:
                _EUI_TEXT[self.gateway_eui] = gateway
        return {
            "gateway": gateway,
            "rssi": r.rssi,
            "snr": r.lsnr,
            "freq": r.freq_hz / 1e6,
            "datr": r.datr,
            "chan": r.chan,
            "tmst": r.tmst,
        }


def reception(gateway_eui: int, rx: RadioFrame, now: datetime) -> Reception:
    """Pick the receive time: the frame's ``time`` when the concentrator has GPS time (``tmms`` comes only
    with a GPS fix), else ``now`` from the local clock."""
    if rx.time is not None and rx.tmms is not None:
        return Reception(gateway_eui, rx, rx.time, "gps")
    return Reception(gateway_eui, rx, now, "local")


def format_time(dt: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a ``Z``, e.g. ``2026-11-26T09:00:00.123Z``: the time format of
    every published message (docs/mqtt.md). The one formatter for message times: use it, do not write
    another."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def format_wire_time(dt: datetime) -> str:
    """RFC 3339 UTC with microseconds: the packet forwarder's own precision, kept where its times are
    written back (GWMP datagrams, the intake journal), never in a published message."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
