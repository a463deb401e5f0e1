"""The encrypted registry and node identities."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from havel.errors import ConfigError, InputError, SecurityError, StorageError
from havel.provisioning import identity
from havel.provisioning import registry as registry_mod
from havel.provisioning.registry import Registry

FAST_N = 2**12  # scrypt cost for tests; the default (2**15) is for real registries


def ident(n: int = 1, key: bytes | None = None) -> identity.Identity:
    dev = identity.dev_eui_from_unique_id(bytes.fromhex(f"a4cf12fe0c{n:02x}"))
    return identity.Identity(
        name=identity.node_name("air", dev),
        dev_eui=dev,
        join_eui=0x70B3D57ED0000000,
        app_key=key or identity.new_app_key(),
        kit="air",
        board="heltec_wifi_lora_32_v3",
        codec="air",
        unique_id=f"a4cf12fe0c{n:02x}",
    )


def test_round_trip_file_mode_and_nothing_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "reg.json"
    reg = Registry.create(path, "correct horse", scrypt_n=FAST_N)
    a = ident(1, bytes(range(16)))
    reg.add(a)
    reg.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert "000102030405060708090a0b0c0d0e0f" not in raw.lower() and a.name not in raw
    again = Registry.open(path, "correct horse")
    assert again.entries == [a]
    assert again.find(a.dev_eui) == a and again.find_unique_id("a4cf12fe0c01") == a


def test_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reg.json"
    Registry.create(path, "correct horse", scrypt_n=FAST_N)
    with pytest.raises(SecurityError, match="wrong passphrase"):
        Registry.open(path, "correct hors")


def test_altered_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reg.json"
    reg = Registry.create(path, "pw", scrypt_n=FAST_N)
    reg.add(ident())
    reg.save()
    doc = json.loads(path.read_text())
    doc["kdf"]["n"] = FAST_N * 2  # even the header is authenticated
    path.write_text(json.dumps(doc))
    with pytest.raises(SecurityError):
        Registry.open(path, "pw")
    path.write_text("not json")
    with pytest.raises(SecurityError):
        Registry.open(path, "pw")


class KdfRan(Exception):
    pass


class NoScrypt:
    """Stands in for scrypt where the KDF must not run at all: a crafted cost is refused before it."""

    def __init__(self, **kw: object) -> None:
        raise KdfRan(kw)


@pytest.mark.parametrize(
    "change",
    [
        {"n": 2**22},  # took 22.7 s before the bound
        {"n": 2**40},
        {"n": 3 * 2**12},  # not a power of two
        {"n": 2**4},  # too cheap to protect the keys
        {"r": 4096},
        {"p": 2**16},
        {"n": 2**17, "r": 16, "p": 4},  # each within bounds, together 32 times the default work
        {"n": "32768"},
        {"n": True},
        {"name": "argon2id"},
        {"salt": "AAAA"},  # 3 bytes
        {"salt": "not base64!"},
        {"salt": None},
    ],
)
def test_crafted_kdf_cost_is_refused_before_the_kdf_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, object]
) -> None:
    path = tmp_path / "reg.json"
    Registry.create(path, "pw", scrypt_n=FAST_N)
    doc = json.loads(path.read_text())
    doc["kdf"].update(change)
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(registry_mod, "Scrypt", NoScrypt)
    with pytest.raises(SecurityError):
        Registry.open(path, "pw")


def test_kdf_header_missing_or_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reg.json"
    Registry.create(path, "pw", scrypt_n=FAST_N)
    doc = json.loads(path.read_text())
    for bad in (None, [], "scrypt"):
        doc["kdf"] = bad
        path.write_text(json.dumps(doc))
        with pytest.raises(SecurityError):
            Registry.open(path, "pw")
    path.write_text("[]")
    with pytest.raises(SecurityError):
        Registry.open(path, "pw")


def test_cost_out_of_bounds_cannot_be_created() -> None:
    with pytest.raises(SecurityError):
        Registry(Path("x.json"), "pw", scrypt_n=2**22)


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no registry"):
        Registry.open(tmp_path / "none.json", "pw")
    Registry.create(tmp_path / "r.json", "pw", scrypt_n=FAST_N)
    with pytest.raises(StorageError, match="exists already"):
        Registry.create(tmp_path / "r.json", "pw")
    with pytest.raises(InputError):
        Registry(tmp_path / "x.json", "")
    reg = Registry.open(tmp_path / "r.json", "pw")
    reg.add(ident(3))
    with pytest.raises(StorageError, match="registered already"):
        reg.add(ident(3))


def test_keys_are_not_in_reprs() -> None:
    key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    a = ident(1, key)
    assert "2b7e" not in repr(a).lower() and "redacted" in repr(a)


def test_dev_eui_from_chip_and_from_block() -> None:
    assert identity.dev_eui_from_unique_id(bytes.fromhex("a4cf12345678")) == 0xA4CF12FFFE345678
    assert identity.dev_eui_from_unique_id(bytes.fromhex("e66138529b3f2a21")) == 0xE66138529B3F2A21
    with pytest.raises(InputError):
        identity.dev_eui_from_unique_id(b"\x01\x02")
    block = "70B3D57ED0050000/60"
    assert identity.dev_eui_from_block(block, set()) == 0x70B3D57ED0050000
    used = {0x70B3D57ED0050000, 0x70B3D57ED0050001}
    assert identity.dev_eui_from_block(block, used) == 0x70B3D57ED0050002
    with pytest.raises(ConfigError, match="used up"):
        identity.dev_eui_from_block(block, {0x70B3D57ED0050000 + i for i in range(16)})
    with pytest.raises(ConfigError):
        identity.parse_block("70B3D57ED005/60")


def test_app_keys_are_random_and_16_bytes() -> None:
    keys = {identity.new_app_key() for _ in range(50)}
    assert len(keys) == 50 and all(len(k) == 16 for k in keys)


def test_board_config_matches_the_firmware_contract() -> None:
    a = ident(1, bytes(16))
    cfg = identity.board_config(
        a, {"interval_s": 300, "sensors": {"pm": "sds011"}}, app="air", board="heltec_wifi_lora_32_v3"
    )
    assert cfg["lorawan"] == {
        "activation": "otaa",
        "dev_eui": identity.eui_hex(a.dev_eui),
        "join_eui": "70B3D57ED0000000",
        "app_key": "00" * 16,
    }
    assert cfg["app"] == "air" and cfg["board"] == "heltec_wifi_lora_32_v3" and cfg["interval_s"] == 300
