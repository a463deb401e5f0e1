"""What goes on the air for a downlink: the data frame (PHYPayload) of a class-A downlink and the
:class:`~havel.gateway.backends.base.DownlinkFrame` of each receive window, packed as a :class:`Transmission`
for the gateway backend (which puts it into its wire format)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from havel.codecs.lorawan import maccmds, phy
from havel.gateway.backends.base import DownlinkFrame
from havel.gateway.network.sessions import Session

__all__ = ["MAX_FOPTS", "Transmission", "data_frame", "fopts", "transmission"]

MAX_FOPTS = 15  # bytes of MAC commands a frame header carries


@dataclass
class Transmission:
    """A downlink ready for the backend: the first window's frame, the next one's as the fallback for when the
    concentrator reports that it could not send the first."""

    gateway_eui: int
    frame: DownlinkFrame
    fallback: DownlinkFrame | None
    dev_eui: int
    command_id: str | None
    airtime_s: float
    fallback_airtime_s: float
    window: str  # "RX1" or "RX2" (or "JOIN1"/"JOIN2")
    kind: str  # "data" or "join_accept"


def fopts(mac: list[dict[str, Any]]) -> bytes:
    """The MAC commands as the frame header's FOpts (what does not fit is left out)."""
    return maccmds.encode(mac, False)[:MAX_FOPTS] if mac else b""


def data_frame(
    s: Session,
    fcnt_down: int,
    *,
    confirmed: bool = False,
    fport: int | None = None,
    payload: bytes = b"",
    mac: bytes = b"",
    ack: bool,
    fpending: bool,
) -> bytes:
    """The PHYPayload of a downlink in session ``s`` with frame counter ``fcnt_down``."""
    return phy.build_data_frame(
        uplink=False,
        confirmed=confirmed,
        dev_addr=s.dev_addr,
        fcnt32=fcnt_down,
        fport=fport,
        payload=payload,
        fopts=mac,
        ack=ack,
        fpending=fpending,
        nwk_s_key=s.nwk_s_key,
        app_s_key=s.app_s_key,
    )


def transmission(
    gateway: int,
    data: bytes,
    usable: list[tuple[int, str, int, str, float]],
    powe: int,
    dev_eui: int,
    cmd_id: str | None,
    kind: str,
) -> Transmission:
    """The downlink in the first usable window ``(freq_hz, datr, tmst, name, airtime_s)``, the second (if
    any) as its fallback."""
    freq, datr, tmst, name, air = usable[0]
    frame = DownlinkFrame(data, freq, datr, tmst, powe)
    fallback, fb_air = None, 0.0
    if len(usable) > 1:
        f2, d2, t2, _, fb_air = usable[1]
        fallback = DownlinkFrame(data, f2, d2, t2, powe)
    return Transmission(gateway, frame, fallback, dev_eui, cmd_id, air, fb_air, name, kind)
