"""One roof's copy of a frame as the frame's copy list in Redis keeps it (``copies:<frame>``), so that
the roof that processes the frame lists every gateway of every roof that heard it."""

from __future__ import annotations

import json
from datetime import datetime

from havel.errors import InputError
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.network.reception import COUNTER_MODULO, Reception, format_time


def encode_copy(roof: str, c: Reception) -> str:
    """One roof's copy of a frame as the shared list keeps it (the frame's bytes are the list's key)."""
    r = c.rx
    return json.dumps(
        {
            "roof": roof,
            "gw": f"{c.gateway_eui:016X}",
            "tmst": r.tmst,
            "freq": r.freq_hz,
            "datr": r.datr,
            "chan": r.chan,
            "rssi": r.rssi,
            "snr": r.lsnr,
            "at": format_time(c.received_at),
            "src": c.time_source,
        }
    )


def decode_copy(text: str, data: bytes) -> tuple[str, Reception]:
    """(roof, copy) from a list entry; InputError names what is wrong with a damaged one."""
    try:
        o = json.loads(text)
        roof = o["roof"]
        if not isinstance(roof, str):
            raise TypeError("roof")
        rx = RxPacket(
            data=data,
            tmst=int(o["tmst"]) % COUNTER_MODULO,
            freq_hz=int(o["freq"]),
            datr=str(o["datr"]),
            chan=int(o["chan"]),
            rssi=float(o["rssi"]),
            lsnr=None if o["snr"] is None else float(o["snr"]),
        )
        at = datetime.fromisoformat(str(o["at"]).replace("Z", "+00:00"))
        src = str(o["src"])
        return roof, Reception(int(o["gw"], 16), rx, at, src if src in ("gps", "local") else "local")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InputError(f"damaged copy in the shared store ({type(exc).__name__}: {exc})") from None
