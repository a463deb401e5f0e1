"""Node identities: DevEUI from the chip or an EUI block, JoinEUI from config, AppKey from ``secrets``.

EUIs are Python ints (their big-endian value, as consoles print them); keys are 16 bytes. An
:class:`Identity`'s repr never shows the AppKey.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError, InputError


def eui_hex(v: int) -> str:
    return f"{v:016X}"


def parse_eui(text: str, what: str = "EUI") -> int:
    s = re.sub(r"[\s:-]", "", text)
    if not re.fullmatch(r"[0-9A-Fa-f]{16}", s):
        raise InputError(f"{what} {text!r} is not 8 bytes of hex (16 hex digits)")
    return int(s, 16)


def dev_eui_from_unique_id(uid: bytes) -> int:
    """EUI-64 from the chip's id: an 8-byte id as is; a 6-byte MAC (ESP32) as MAC[0:3] FFFE MAC[3:6]."""
    if len(uid) == 8:
        return int.from_bytes(uid, "big")
    if len(uid) == 6:
        return int.from_bytes(uid[:3] + b"\xff\xfe" + uid[3:], "big")
    raise InputError(
        f"the chip's unique id has {len(uid)} bytes; expected 6 (MAC) or 8",
        hint="configure an EUI block (eui_block) to assign DevEUIs instead",
    )


def parse_block(block: str) -> tuple[int, int]:
    """``"70B3D57ED0050000/52"`` -> (first EUI, count). The prefix length is in bits."""
    m = re.fullmatch(r"([0-9A-Fa-f]{16})/(\d{1,2})", block.strip())
    if not m:
        raise ConfigError(f"eui_block {block!r} must look like 70B3D57ED0050000/52 (EUI/prefix bits)")
    base, bits = int(m.group(1), 16), int(m.group(2))
    if not 24 <= bits <= 63:
        raise ConfigError(f"eui_block prefix length {bits} must be between 24 and 63 bits")
    size = 1 << (64 - bits)
    first = base & ~(size - 1)
    return first, size


def dev_eui_from_block(block: str, used: set[int]) -> int:
    """The lowest EUI of the block that is not in ``used``."""
    first, size = parse_block(block)
    for i in range(size):
        if first + i not in used:
            return first + i
    raise ConfigError(f"the EUI block {block} is used up ({size} EUIs)", hint="ask the city for a new block")


def new_app_key() -> bytes:
    return secrets.token_bytes(16)


@dataclass(frozen=True)
class Identity:
    name: str
    dev_eui: int
    join_eui: int
    app_key: bytes = field(repr=False)
    kit: str = ""
    board: str = ""
    codec: str = ""
    unique_id: str = ""
    created_at: str = ""

    def __repr__(self) -> str:
        return (
            f"Identity(name={self.name!r}, dev_eui={eui_hex(self.dev_eui)}, "
            f"join_eui={eui_hex(self.join_eui)}, "
            "app_key=<redacted>)"
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dev_eui": eui_hex(self.dev_eui),
            "join_eui": eui_hex(self.join_eui),
            "app_key": self.app_key.hex().upper(),
            "kit": self.kit,
            "board": self.board,
            "codec": self.codec,
            "unique_id": self.unique_id,
            "created_at": self.created_at,
            "activation": "otaa",
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Identity:
        try:
            key = bytes.fromhex(r["app_key"])
        except (KeyError, ValueError) as exc:
            raise InputError(f"registry entry {r.get('name')!r} has no valid app_key") from exc
        if len(key) != 16:
            raise InputError(f"registry entry {r.get('name')!r}: app_key must be 16 bytes")
        return cls(
            name=r["name"],
            dev_eui=parse_eui(r["dev_eui"], "dev_eui"),
            join_eui=parse_eui(r["join_eui"], "join_eui"),
            app_key=key,
            kit=r.get("kit", ""),
            board=r.get("board", ""),
            codec=r.get("codec", ""),
            unique_id=r.get("unique_id", ""),
            created_at=r.get("created_at", ""),
        )


def node_name(kit: str, dev_eui: int) -> str:
    """A short readable name: kit and the last 3 bytes of the DevEUI (printed on the label)."""
    return f"havel-{kit}-{dev_eui & 0xFFFFFF:06x}"


def board_config(
    ident: Identity, kit_settings: dict[str, Any], *, app: str, board: str, region: str = "EU868"
) -> dict[str, Any]:
    """The ``config.json`` the firmware reads at boot (firmware/config.py documents the keys): board, app,
    the OTAA identity under ``lorawan``, and the kit's settings (interval_s, sensors, thresholds)."""
    cfg: dict[str, Any] = {
        "board": board,
        "app": app,
        "name": ident.name,
        "region": region,
        "lorawan": {
            "activation": "otaa",
            "dev_eui": eui_hex(ident.dev_eui),
            "join_eui": eui_hex(ident.join_eui),
            "app_key": ident.app_key.hex().upper(),
        },
    }
    for k, v in kit_settings.items():
        cfg.setdefault(k, v)
    return cfg
