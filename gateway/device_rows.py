"""The ``devices`` table, row by row: every device read at once, one checked device inserted or deleted
inside the caller's unit of work, the checks a device passes before it is stored, and the database files
kept readable by their owner only (they hold the devices' keys)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from typing import Any

from havel.codecs.lorawan.ids import eui_hex
from havel.errors import InputError
from havel.gateway.network.sessions import Device, Session

ACTIVATIONS = ("otaa", "abp")


def load_devices(conn: sqlite3.Connection) -> list[Device]:
    """Every registered device with its session."""
    rows = conn.execute(
        "SELECT name, dev_eui, codec, activation, join_eui, app_key, dev_addr, nwk_s_key, app_s_key, "
        "fcnt_up, fcnt_down, rx1_delay, rx1_dr_offset, rx2_dr, rx2_freq_hz, battery, battery_at, "
        "last_seen, session_epoch "
        "FROM devices"
    ).fetchall()
    out = []
    for r in rows:
        session = None
        if r[6] is not None and r[7] is not None and r[8] is not None:
            session = Session(int(r[6]), bytes(r[7]), bytes(r[8]), r[9], int(r[10]), int(r[18]))
        out.append(
            Device(
                name=r[0],
                dev_eui=int(r[1], 16),
                codec=r[2],
                activation=r[3],
                join_eui=int(r[4], 16) if r[4] else None,
                app_key=bytes(r[5]) if r[5] is not None else None,
                session=session,
                rx1_delay=r[11],
                rx1_dr_offset=r[12],
                rx2_dr=r[13],
                rx2_freq_hz=r[14],
                battery=r[15],
                battery_at=r[16],
                last_seen=r[17],
            )
        )
    return out


def insert_device(conn: sqlite3.Connection, dev: Device) -> Device:
    """INSERT one checked device inside the open transaction; returns it as stored (session epoch)."""
    # a DevEUI registered before: continue above its last session epoch (message ids stay unique)
    row = conn.execute("SELECT epoch + 1 FROM retired_epochs WHERE dev_eui = ?", (dev.eui_hex,)).fetchone()
    epoch = int(row[0]) if row else 0
    if epoch and dev.session is not None:
        dev = replaced(dev, {"session": replaced(dev.session, {"epoch": epoch})})
    s = dev.session
    conn.execute(
        "INSERT INTO devices (dev_eui, name, join_eui, codec, activation, app_key, dev_addr, "
        "nwk_s_key, app_s_key, fcnt_up, fcnt_down, rx1_delay, rx1_dr_offset, rx2_dr, rx2_freq_hz, "
        "session_epoch, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            dev.eui_hex,
            dev.name,
            eui_hex(dev.join_eui) if dev.join_eui is not None else None,
            dev.codec,
            dev.activation,
            dev.app_key,
            s.dev_addr if s else None,
            s.nwk_s_key if s else None,
            s.app_s_key if s else None,
            s.fcnt_up if s else None,
            s.fcnt_down if s else 0,
            dev.rx1_delay,
            dev.rx1_dr_offset,
            dev.rx2_dr,
            dev.rx2_freq_hz,
            epoch,
            time.time(),
        ),
    )
    return dev


def delete_device(conn: sqlite3.Connection, dev_eui: int) -> None:
    """DELETE one device inside the open transaction, keeping its epoch and its queued commands aside."""
    conn.execute(
        "INSERT OR REPLACE INTO retired_epochs SELECT dev_eui, session_epoch FROM devices WHERE dev_eui = ?",
        (eui_hex(dev_eui),),
    )
    # its queued commands go aside (the daemon publishes their "failed" result): a device added
    # again under this DevEUI is another device and must not get them
    conn.execute(
        "INSERT INTO downlinks_removed (dev_eui, id, seq, device, request, fcnt_down) "
        "SELECT q.dev_eui, q.id, q.seq, d.name, q.request, q.fcnt_down FROM downlinks q "
        "LEFT JOIN devices d ON d.dev_eui = q.dev_eui WHERE q.dev_eui = ? ORDER BY q.created_at",
        (eui_hex(dev_eui),),
    )
    conn.execute("DELETE FROM downlinks WHERE dev_eui = ?", (eui_hex(dev_eui),))
    conn.execute("DELETE FROM devices WHERE dev_eui = ?", (eui_hex(dev_eui),))


def validate(dev: Device) -> None:
    """InputError (or CodecError) when the device cannot be stored as it is."""
    if not dev.name or len(dev.name) > 64:
        raise InputError("device name must have 1 to 64 characters")
    if dev.activation not in ACTIVATIONS:
        raise InputError(f"activation {dev.activation!r} is not otaa or abp")
    from havel.codecs.payload import get_codec  # deferred: the codec package is B's, imported on use

    get_codec(dev.codec)  # CodecError names the unknown codec
    if dev.activation == "otaa":
        if dev.join_eui is None or dev.app_key is None:
            raise InputError(f"OTAA device {dev.name!r} needs join_eui and app_key")
    elif dev.session is None:
        raise InputError(f"ABP device {dev.name!r} needs dev_addr, nwk_s_key and app_s_key")


def keep_private(conn: sqlite3.Connection) -> None:
    """The database holds keys: make its files readable by their owner only (SQLite gives the -wal and
    -shm files the database file's permissions)."""
    row = next((r for r in conn.execute("PRAGMA database_list") if r[1] == "main"), None)
    if row is None or not row[2]:
        return  # in-memory
    for suffix in ("", "-wal", "-shm"):
        path = row[2] + suffix
        with contextlib.suppress(OSError):
            if os.path.exists(path) and os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)


def replaced(obj: Any, changes: dict[str, Any]) -> Any:
    """A copy of a frozen, slotted dataclass (``Device``, ``Session``) with some fields changed: what
    dataclasses.replace does, without its per-call field introspection and ``__post_init__`` (this runs
    for every uplink; a field derived in ``__post_init__`` is copied, so its source must not change here)."""
    cls = type(obj)
    names = _SLOTS.get(cls)
    if names is None:
        names = _SLOTS[cls] = tuple(cls.__slots__)
    new = object.__new__(cls)
    for name in names:
        # (a frozen dataclass refuses its own setattr, not object's)
        object.__setattr__(new, name, changes[name] if name in changes else getattr(obj, name))
    return new


_SLOTS: dict[type, tuple[str, ...]] = {}
