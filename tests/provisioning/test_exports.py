"""Exports for the network servers; the Havel format goes through the gateway's own `havel device import`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from havel.errors import InputError
from havel.provisioning import exports, identity

KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")


def entries() -> list[identity.Identity]:
    out = []
    for i, kit in enumerate(("air", "temperature")):
        dev = 0xA4CF12FFFE0C0100 + i
        out.append(
            identity.Identity(
                name=identity.node_name(kit, dev),
                dev_eui=dev,
                join_eui=0x70B3D57ED0000000,
                app_key=KEY,
                kit=kit,
                board="heltec_wifi_lora_32_v3",
                codec=kit,
            )
        )
    return out


def havel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "havel.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("fmt", "suffix"), [("havel", ".json"), ("havel-csv", ".csv")])
def test_gateway_imports_the_export(tmp_path: Path, fmt: str, suffix: str) -> None:
    f = tmp_path / f"devices{suffix}"
    f.write_text(exports.export(entries(), fmt))
    data = tmp_path / "gw"
    r = havel("device", "import", str(f), "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    r = havel("device", "list", "--json", "--show-keys", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    got = {d["dev_eui"].upper(): d for d in json.loads(r.stdout)}
    for e in entries():
        d = got[identity.eui_hex(e.dev_eui)]
        assert d["name"] == e.name and d["codec"] == e.codec
        assert json.dumps(d).upper().count(KEY.hex().upper()) >= 1


def test_havel_format_is_the_contract() -> None:
    rows = json.loads(exports.to_havel_json(entries()))
    assert rows[0] == {
        "name": "havel-air-0c0100",
        "dev_eui": "A4CF12FFFE0C0100",
        "join_eui": "70B3D57ED0000000",
        "app_key": KEY.hex().upper(),
        "codec": "air",
        "activation": "otaa",
    }
    header = exports.to_havel_csv(entries()).splitlines()[0]
    assert header == "name,dev_eui,join_eui,app_key,codec,activation"


def test_chirpstack_csv() -> None:
    rows = list(csv.DictReader(io.StringIO(exports.to_chirpstack_csv(entries(), application_id="app-1"))))
    assert rows[0]["dev_eui"] == "a4cf12fffe0c0100" and rows[0]["nwk_key"] == KEY.hex()
    assert rows[0]["app_key"] == "" and rows[0]["application_id"] == "app-1"
    assert json.loads(rows[1]["tags"]) == {"havel_kit": "temperature", "codec": "temperature"}


def test_tts_json_stream() -> None:
    text = exports.to_tts_json(entries())
    dec = json.JSONDecoder()
    objs, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        obj, i = dec.raw_decode(text, i)
        objs.append(obj)
    assert len(objs) == 2
    o = objs[0]
    assert o["ids"] == {
        "device_id": "havel-air-0c0100",
        "dev_eui": "A4CF12FFFE0C0100",
        "join_eui": "70B3D57ED0000000",
    }
    assert o["root_keys"]["app_key"]["key"] == KEY.hex().upper() and o["supports_join"] is True
    assert o["frequency_plan_id"] == "EU_863_870_TTN" and o["lorawan_version"] == "MAC_V1_0_3"
    assert exports.tts_device_id("Havel Air #1 (Potsdam)") == "havel-air-1-potsdam"


def test_unknown_format() -> None:
    with pytest.raises(InputError, match="unknown export format"):
        exports.export(entries(), "loriot")
