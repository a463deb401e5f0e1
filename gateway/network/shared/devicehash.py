"""A device and its session as the shared store keeps them (one hash per device), read back with a clear
error naming the key and field when an entry is damaged."""

from __future__ import annotations

from typing import Any

from havel.gateway.network.sessions import Device, Session
from havel.gateway.network.shared.connection import DamagedEntry


def _num(h: dict[str, str], key: str, field: str, *, optional: bool = False, real: bool = False) -> Any:
    raw = h.get(field)
    if raw is None or raw == "":
        if optional:
            return None
        raise DamagedEntry(f"shared store entry {key}: field {field} is missing")
    try:
        return float(raw) if real else int(raw)
    except ValueError:
        raise DamagedEntry(f"shared store entry {key}: field {field} is not a number: {raw[:40]!r}") from None


def _key16(h: dict[str, str], key: str, field: str, *, optional: bool = False) -> bytes | None:
    raw = h.get(field)
    if raw is None or raw == "":
        if optional:
            return None
        raise DamagedEntry(f"shared store entry {key}: field {field} is missing")
    try:
        b = bytes.fromhex(raw)
    except ValueError:
        b = b""
    if len(b) != 16:
        raise DamagedEntry(f"shared store entry {key}: field {field} is not a 16-byte key in hex")
    return b


def device_from_hash(key: str, dev_eui: int, h: dict[str, str]) -> Device:
    """A device from its hash; DamagedEntry names the key and field (a key's value never shows)."""
    activation = h.get("activation")
    if activation not in ("otaa", "abp"):
        raise DamagedEntry(f"shared store entry {key}: activation is {str(activation)[:20]!r}")
    name, codec = h.get("name"), h.get("codec")
    if not name or not codec:
        raise DamagedEntry(f"shared store entry {key}: name or codec is missing")
    session = None
    addr = h.get("dev_addr", "")
    if addr:
        try:
            dev_addr = int(addr, 16)
        except ValueError:
            raise DamagedEntry(f"shared store entry {key}: dev_addr is not hex: {addr[:20]!r}") from None
        nwk = _key16(h, key, "nwk_s_key")
        app = _key16(h, key, "app_s_key")
        assert nwk is not None and app is not None
        session = Session(
            dev_addr,
            nwk,
            app,
            _num(h, key, "fcnt_up", optional=True),
            _num(h, key, "fcnt_down", optional=True) or 0,
            _num(h, key, "epoch", optional=True) or 0,
        )
    join_eui = h.get("join_eui") or None
    try:
        join = int(join_eui, 16) if join_eui else None
    except ValueError:
        raise DamagedEntry(f"shared store entry {key}: join_eui is not hex") from None
    return Device(
        name=name,
        dev_eui=dev_eui,
        codec=codec,
        activation=activation,
        join_eui=join,
        app_key=_key16(h, key, "app_key", optional=True),
        session=session,
        rx1_delay=_num(h, key, "rx1_delay", optional=True) or 1,
        rx1_dr_offset=_num(h, key, "rx1_dr_offset", optional=True) or 0,
        rx2_dr=_num(h, key, "rx2_dr", optional=True) or 0,
        battery=_num(h, key, "battery", optional=True),
        battery_at=_num(h, key, "battery_at", optional=True, real=True),
        last_seen=_num(h, key, "last_seen", optional=True, real=True),
    )


def device_to_hash(dev: Device) -> dict[str, str]:
    """The hash of a device (keys in hex: the store must be private and its connection TLS, see the docs)."""
    s = dev.session
    return {
        "name": dev.name,
        "codec": dev.codec,
        "activation": dev.activation,
        "join_eui": f"{dev.join_eui:016X}" if dev.join_eui is not None else "",
        "app_key": dev.app_key.hex() if dev.app_key else "",
        "dev_addr": f"{s.dev_addr:08X}" if s else "",
        "nwk_s_key": s.nwk_s_key.hex() if s else "",
        "app_s_key": s.app_s_key.hex() if s else "",
        "fcnt_up": str(s.fcnt_up) if s and s.fcnt_up is not None else "",
        "fcnt_down": str(s.fcnt_down) if s else "0",
        "epoch": str(s.epoch) if s else "0",
        "rx1_delay": str(dev.rx1_delay),
        "rx1_dr_offset": str(dev.rx1_dr_offset),
        "rx2_dr": str(dev.rx2_dr),
    }
