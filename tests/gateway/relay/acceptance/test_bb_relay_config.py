"""Black-box: the legal guards and key rules of docs/relay.md, as an operator meets them in the commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import relay_bb_kit as k

APRS_OK = 'type = "aprs"\ncallsign = "DB0XYZ-10"\naddressee = "DB0KST-1"\nhost = "127.0.0.1"\nport = 1\n'


def gateway_config(folder: Path, path: str) -> Path:
    data = folder / "data"
    data.mkdir(exist_ok=True)
    if not (data / "relay.key").exists():
        r = k.havel("relay", "keygen", str(data / "relay.key"))
        assert r.returncode == 0, r.stderr
    config = folder / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw1"\ndata_dir = "{data}"\n[udp]\nport = {k.free_port(k.socket.SOCK_DGRAM)}\n'
        '[http]\nport = 0\n[relay]\nkey_file = "relay.key"\n'
        f"[[relay.path]]\n{path}"
        '[[sink]]\ntype = "mqtt"\nname = "platform"\nhost = "127.0.0.1"\nport = 1\ntls = false\n'
    )
    return config


def test_a_valid_aprs_path_passes_the_check(tmp_path: Path) -> None:
    r = k.havel("gateway", "check", "--config", str(gateway_config(tmp_path, APRS_OK)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "relay" in r.stdout


def test_no_callsign_no_start(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, 'type = "aprs"\naddressee = "DB0KST-1"\nhost = "127.0.0.1"\nport = 1\n')
    r = k.havel("gateway", "check", "--config", str(config))
    assert r.returncode != 0 and "callsign" in r.stderr, r.stdout + r.stderr
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    r = k.havel("gateway", "run", "--config", str(config), timeout=60)
    assert r.returncode != 0 and "callsign" in r.stderr, r.stdout + r.stderr
    after = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert after == before, "run refuses a bad config before it creates a file in the data directory"


@pytest.mark.parametrize(
    ("path", "word"),
    [
        (APRS_OK.replace("port = 1\n", "port = 1\nresend_s = 5\n"), "resend_s"),
        ('type = "reticulum"\namateur = true\nencrypt = true\nconfig_dir = "rns"\n', "encrypt"),
    ],
    ids=["aprs-resend-below-30s", "reticulum-amateur-encrypted"],
)
def test_rule_breaking_paths_are_refused(tmp_path: Path, path: str, word: str) -> None:
    r = k.havel("gateway", "check", "--config", str(gateway_config(tmp_path, path)))
    assert r.returncode != 0 and word in r.stderr, r.stdout + r.stderr


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, APRS_OK)
    key = tmp_path / "data" / "relay.key"
    text = key.read_text()
    assert len(text) == 65 and text.endswith("\n") and int(text, 16) >= 0, "64 hex digits and a line feed"
    key.chmod(0o644)
    r = k.havel("gateway", "check", "--config", str(config))
    assert r.returncode != 0 and "relay.key" in r.stderr, r.stdout + r.stderr
    assert text.strip() not in r.stdout + r.stderr, "the key itself must never be printed"


def receiver_config(folder: Path, kiss: str, key_mode: int = 0o600) -> Path:
    key = k.write_key(folder / "gw1.key", bytes(range(32)))
    key.chmod(key_mode)
    config = folder / "receiver.toml"
    config.write_text(
        f'data_dir = "{folder / "rx"}"\n[publish]\nhost = "127.0.0.1"\nport = {k.free_port()}\n'
        f'[[sender]]\nname = "DB0XYZ-10"\nkey_file = "{key}"\ngateway_id = "gw1"\n'
        f'[kiss]\nhost = "127.0.0.1"\nport = {k.free_port()}\n{kiss}'
    )
    return config


def test_the_receiver_sends_no_acks_without_a_callsign(tmp_path: Path) -> None:
    r = k.havel("relay", "receive", "--config", str(receiver_config(tmp_path, "ack = true\n")), "--no-live")
    assert r.returncode != 0 and "callsign" in r.stderr, r.stdout + r.stderr
    r = k.havel(
        "relay", "receive", "--config", str(receiver_config(tmp_path, "ack = false\n")), "--no-live",
        "--duration", "1",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_receiver_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    config = receiver_config(tmp_path, 'callsign = "DB0KST-1"\n', key_mode=0o644)
    r = k.havel("relay", "receive", "--config", str(config), "--no-live", "--duration", "1")
    assert r.returncode != 0 and "gw1.key" in r.stderr, r.stdout + r.stderr
