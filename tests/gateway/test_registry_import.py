"""``havel device import`` stores a whole file in one transaction: all devices or none, one commit."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from havel.cli import cli
from havel.errors import InputError
from havel.gateway import db
from havel.gateway.registry import Registry
from havel.gateway.registry_io import parse_import

NWK = "000102030405060708090A0B0C0D0E0F"
APPS = "0F0E0D0C0B0A09080706050403020100"


def records(n: int, first: int = 0, prefix: str = "node") -> list[dict[str, str]]:
    return [
        {
            "name": f"{prefix}-{i}",
            "dev_eui": f"70B3D57E{i:08X}",
            "codec": "water",
            "activation": "abp",
            "dev_addr": f"26{i:06X}",
            "nwk_s_key": NWK,
            "app_s_key": APPS,
        }
        for i in range(first, first + n)
    ]


def commits_during(conn: sqlite3.Connection, fn: object) -> int:
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        fn()  # type: ignore[operator]
    finally:
        conn.set_trace_callback(None)
    return sum(1 for s in seen if s.strip().upper() == "COMMIT")


def test_many_devices_are_one_commit_and_all_reach_the_cache(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    reg = Registry(conn)
    devices = parse_import(json.dumps(records(300)), "d.json")
    assert commits_during(conn, lambda: reg.import_devices(devices)) == 1
    assert reg.count() == 300
    assert [d.name for d in reg.by_dev_addr(0x26000007)] == ["node-7"]
    # another process (the daemon) sees them all after its refresh
    other = Registry(db.open_db(tmp_path / "havel.db"))
    assert other.count() == 300 and other.get(0x70B3D57E0000012B) is not None


def test_a_name_clash_late_in_the_file_imports_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = CliRunner().invoke
    first = tmp_path / "first.json"
    first.write_text(json.dumps(records(1, first=900, prefix="taken")))
    assert run(cli, ["device", "import", "--data-dir", str(data), str(first)]).exit_code == 0
    # 50 new devices, the last one under a name already registered to another DevEUI
    batch = records(50)
    batch[-1]["name"] = "taken-900"
    f = tmp_path / "batch.json"
    f.write_text(json.dumps(batch))
    r = run(cli, ["device", "import", "--data-dir", str(data), str(f)])
    assert isinstance(r.exception, InputError) and "taken-900" in str(r.exception)
    listed = json.loads(run(cli, ["device", "list", "--data-dir", str(data), "--json"]).output)
    assert [d["name"] for d in listed] == ["taken-900"]


def test_replace_keeps_the_epoch_rule_and_frees_the_old_names(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    reg = Registry(conn)
    reg.import_devices(parse_import(json.dumps(records(3)), "a.json"))
    with pytest.raises(InputError, match="already registered"):
        reg.import_devices(parse_import(json.dumps(records(3)), "a.json"))
    # the same DevEUIs under new names, one of them taking another replaced device's old name
    again = records(3, prefix="new")
    again[0]["name"] = "node-1"
    again[1]["name"] = "node-0"
    added, replaced = reg.import_devices(parse_import(json.dumps(again), "b.json"), replace=True)
    assert (added, replaced) == (0, 3)
    assert sorted(d.name for d in reg.devices()) == ["new-2", "node-0", "node-1"]
    # a replaced ABP device continues above its retired session epoch (message ids stay unique)
    assert all(d.session is not None and d.session.epoch == 1 for d in reg.devices())
