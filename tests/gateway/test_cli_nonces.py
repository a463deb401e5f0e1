"""``havel device remove``, ``device import --replace`` and ``device forget-nonces``: the DevNonces a device
used outlive its registry entry, and clearing them is a command of its own that says what it clears."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from havel.cli import cli
from havel.gateway import db
from havel.gateway.network.sessions import Session
from havel.gateway.registry import Registry

APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
EUI = "70B3D57ED0000001"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def used(data: Path, nonce: int) -> bool:
    reg = Registry(db.open_db(data / "havel.db"))
    try:
        return reg.dev_nonce_used(int(EUI, 16), nonce)
    finally:
        reg.conn.close()


def join_once(data: Path, nonce: int) -> None:
    """What the network server records for an accepted join-request."""
    reg = Registry(db.open_db(data / "havel.db"))
    try:
        with reg.transaction():
            reg.activate(
                int(EUI, 16),
                Session(0x26000001, bytes(16), bytes(16)),
                nonce,
                rx1_delay=1,
                rx1_dr_offset=0,
                rx2_dr=0,
            )
    finally:
        reg.conn.close()


def test_remove_and_import_replace_keep_dev_nonces_forget_nonces_clears_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record = {
        "name": "pegel-1",
        "dev_eui": EUI,
        "join_eui": "70B3D57ED000AB00",
        "app_key": APP_KEY,
        "codec": "water",
        "activation": "otaa",
    }
    nodes = tmp_path / "nodes.json"
    nodes.write_text(json.dumps([record]))
    assert run("device", "import", str(nodes), "--data-dir", str(data)).exit_code == 0
    join_once(data, 7)

    r = run("device", "import", str(nodes), "--replace", "--data-dir", str(data))
    assert r.exit_code == 0, r.output
    assert used(data, 7)  # a recorded join-request with DevNonce 7 stays refused

    r = run("device", "remove", "pegel-1", "--data-dir", str(data))
    assert r.exit_code == 0, r.output
    assert "1 used DevNonce(s) are kept" in r.output and "forget-nonces" in r.output
    assert used(data, 7)

    # the device is gone: cleared by its DevEUI, and the command says what it did
    r = run("device", "forget-nonces", EUI, "--data-dir", str(data))
    assert r.exit_code == 0, r.output
    assert f"cleared 1 used DevNonce(s) of {EUI}" in r.output and "accepted again" in r.output
    assert not used(data, 7)
    r = run("device", "forget-nonces", "not-a-device", "--data-dir", str(data))
    assert r.exit_code != 0
