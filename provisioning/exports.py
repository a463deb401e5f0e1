"""Export registry entries for a network server: Havel's gateway, ChirpStack, The Things Stack.

- ``havel``: the gateway's ``havel device import`` format: a JSON list of objects, or CSV with
  the header ``name,dev_eui,join_eui,app_key,codec,activation``; EUIs big-endian hex, keys hex.
- ``chirpstack``: CSV, one device per line: ``dev_eui,join_eui,name,description,nwk_key,app_key,
  device_profile_id,application_id,tags``. For LoRaWAN 1.0.x ChirpStack keeps the root key in the
  ``nwk_key`` field (its UI labels it "Application key"), so the AppKey goes there; ``app_key`` stays empty.
- ``tts``: The Things Stack end-device JSON, one object per device, as a JSON stream (objects one after the
  other), which its Console and ``ttn-lw-cli end-devices create`` import.
"""

from __future__ import annotations

import csv
import io
import json
import re

from havel.errors import InputError
from havel.provisioning.identity import Identity, eui_hex

HAVEL_FIELDS = ["name", "dev_eui", "join_eui", "app_key", "codec", "activation"]
CHIRPSTACK_FIELDS = [
    "dev_eui",
    "join_eui",
    "name",
    "description",
    "nwk_key",
    "app_key",
    "device_profile_id",
    "application_id",
    "tags",
]
FORMATS = ("havel", "havel-csv", "chirpstack", "tts")


def havel_records(entries: list[Identity]) -> list[dict[str, str]]:
    return [
        {
            "name": e.name,
            "dev_eui": eui_hex(e.dev_eui),
            "join_eui": eui_hex(e.join_eui),
            "app_key": e.app_key.hex().upper(),
            "codec": e.codec,
            "activation": "otaa",
        }
        for e in entries
    ]


def to_havel_json(entries: list[Identity]) -> str:
    return json.dumps(havel_records(entries), indent=1) + "\n"


def to_havel_csv(entries: list[Identity]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HAVEL_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(havel_records(entries))
    return buf.getvalue()


def to_chirpstack_csv(
    entries: list[Identity], *, device_profile_id: str = "", application_id: str = ""
) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CHIRPSTACK_FIELDS, lineterminator="\n")
    w.writeheader()
    for e in entries:
        w.writerow(
            {
                "dev_eui": eui_hex(e.dev_eui).lower(),
                "join_eui": eui_hex(e.join_eui).lower(),
                "name": e.name,
                "description": f"Havel {e.kit} kit on {e.board}".strip(),
                "nwk_key": e.app_key.hex(),
                "app_key": "",
                "device_profile_id": device_profile_id,
                "application_id": application_id,
                "tags": json.dumps({"havel_kit": e.kit, "codec": e.codec}),
            }
        )
    return buf.getvalue()


def tts_device_id(name: str) -> str:
    """TTS device ids: lower-case letters, digits and single hyphens, at most 36 characters."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s[:36].strip("-") or "device"


def to_tts_json(entries: list[Identity], *, frequency_plan_id: str = "EU_863_870_TTN") -> str:
    out = []
    for e in entries:
        out.append(
            json.dumps(
                {
                    "ids": {
                        "device_id": tts_device_id(e.name),
                        "dev_eui": eui_hex(e.dev_eui),
                        "join_eui": eui_hex(e.join_eui),
                    },
                    "name": e.name,
                    "description": f"Havel {e.kit} kit",
                    "lorawan_version": "MAC_V1_0_3",
                    "lorawan_phy_version": "PHY_V1_0_3_REV_A",
                    "frequency_plan_id": frequency_plan_id,
                    "supports_join": True,
                    "root_keys": {"app_key": {"key": e.app_key.hex().upper()}},
                },
                indent=1,
            )
        )
    return "\n".join(out) + "\n"


def export(entries: list[Identity], fmt: str) -> str:
    if fmt == "havel":
        return to_havel_json(entries)
    if fmt == "havel-csv":
        return to_havel_csv(entries)
    if fmt == "chirpstack":
        return to_chirpstack_csv(entries)
    if fmt == "tts":
        return to_tts_json(entries)
    raise InputError(f"unknown export format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
