"""The ``txpk`` JSON object of a PULL_RESP: one downlink as the packet forwarder is to send it."""

from __future__ import annotations

import base64
from typing import Any

from havel.gateway.backends.base import DownlinkFrame
from havel.gateway.backends.semtech_udp.gwmp import TMST_MODULO, GwmpError, decode_base64


def build_txpk(
    *,
    data: bytes,
    freq_hz: int,
    datr: str,
    tmst: int | None = None,
    immediate: bool = False,
    powe: int = 14,
    rfch: int = 0,
    codr: str = "4/5",
) -> dict[str, Any]:
    """A LoRaWAN downlink txpk: inverted polarity, no CRC, sent at ``tmst`` (wraps) or immediately."""
    if tmst is None and not immediate:
        raise GwmpError("a txpk needs tmst or immediate", reason="txpk")
    txpk: dict[str, Any] = {
        "freq": freq_hz / 1_000_000,
        "rfch": rfch,
        "powe": powe,
        "modu": "LORA",
        "datr": datr,
        "codr": codr,
        "ipol": True,
        "ncrc": True,
        "size": len(data),
        "data": base64.b64encode(data).decode(),
    }
    if immediate:
        txpk["imme"] = True
    else:
        assert tmst is not None
        txpk["tmst"] = tmst % TMST_MODULO
    return txpk


def txpk_of(frame: DownlinkFrame) -> dict[str, Any]:
    """The txpk of a backend-neutral downlink frame (sent immediately when it has no ``tmst``)."""
    return build_txpk(
        data=frame.data,
        freq_hz=frame.freq_hz,
        datr=frame.datr,
        tmst=frame.tmst,
        immediate=frame.tmst is None,
        powe=frame.power_dbm,
    )


def txpk_data(txpk: dict[str, Any]) -> bytes:
    """The PHYPayload bytes of a txpk (used by the simulator)."""
    data = txpk.get("data")
    if not isinstance(data, str):
        raise GwmpError("txpk has no data", reason="txpk")
    try:
        return decode_base64(data)
    except ValueError:  # (binascii.Error is one)
        raise GwmpError("txpk data is not valid base64", reason="txpk") from None
