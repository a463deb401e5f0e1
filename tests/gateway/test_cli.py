"""``havel device ...`` and ``havel gateway ...`` as a person types them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.gateway_run import InProcessGateway, write_config

from havel.cli import cli
from havel.errors import CodecError, InputError
from havel.gateway import config

APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
NWK = "000102030405060708090A0B0C0D0E0F"
APPS = "0F0E0D0C0B0A09080706050403020100"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def havel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "havel", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def data(tmp_path: Path) -> str:
    return str(tmp_path / "data")


def add_otaa(data: str, name: str = "pegel-1", eui: str = "70B3D57ED0000001") -> Result:
    return run(
        "device",
        "add",
        "--data-dir",
        data,
        "--name",
        name,
        "--dev-eui",
        eui,
        "--codec",
        "water",
        "--otaa",
        "--join-eui",
        "70B3D57ED000AB00",
        "--app-key",
        APP_KEY,
    )


def test_add_list_remove_and_keys_stay_hidden(data: str) -> None:
    assert add_otaa(data).exit_code == 0
    r = run(
        "device",
        "add",
        "--data-dir",
        data,
        "--name",
        "cool-1",
        "--dev-eui",
        "70b3d57ed0000002",
        "--codec",
        "cooling",
        "--abp",
        "--dev-addr",
        "26011BDA",
        "--nwk-s-key",
        NWK,
        "--app-s-key",
        APPS,
    )
    assert r.exit_code == 0, r.output
    listing = run("device", "list", "--data-dir", data)
    assert "pegel-1" in listing.output and "26011BDA" in listing.output and "(not joined)" in listing.output
    assert APP_KEY not in listing.output and NWK not in listing.output
    shown = json.loads(run("device", "list", "--data-dir", data, "--json", "--show-keys").output)
    assert {d["name"]: d["app_key"] for d in shown}["pegel-1"] == APP_KEY
    hidden = json.loads(run("device", "list", "--data-dir", data, "--json").output)
    assert {d["name"]: d["nwk_s_key"] for d in hidden}["cool-1"] == "<redacted>"
    assert run("device", "remove", "--data-dir", data, "pegel-1").exit_code == 0
    assert run("device", "remove", "--data-dir", data, "70B3D57ED0000002").exit_code == 0
    assert json.loads(run("device", "list", "--data-dir", data, "--json").output) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--otaa", "--join-eui", "70B3D57ED000AB00"], InputError),  # no app key
        (["--otaa", "--join-eui", "70B3D57ED000AB00", "--app-key", "1234"], InputError),  # short key
        (["--abp", "--dev-addr", "26011BDA", "--nwk-s-key", NWK], InputError),  # no AppSKey
        (["--otaa", "--join-eui", "XYZ", "--app-key", APP_KEY], InputError),  # not hex
        ([], InputError),  # neither
    ],
)
def test_bad_add_arguments_are_refused(data: str, args: list[str], error: type) -> None:
    r = run(
        "device",
        "add",
        "--data-dir",
        data,
        "--name",
        "x",
        "--dev-eui",
        "70B3D57ED0000001",
        "--codec",
        "water",
        *args,
    )
    assert isinstance(r.exception, error)


def test_unknown_codec_duplicates_and_unknown_device(data: str) -> None:
    r = run(
        "device",
        "add",
        "--data-dir",
        data,
        "--name",
        "x",
        "--dev-eui",
        "70B3D57ED0000001",
        "--codec",
        "nope",
        "--otaa",
        "--join-eui",
        "70B3D57ED000AB00",
        "--app-key",
        APP_KEY,
    )
    assert isinstance(r.exception, CodecError)
    assert add_otaa(data).exit_code == 0
    assert isinstance(add_otaa(data).exception, InputError)  # same DevEUI
    assert isinstance(add_otaa(data, eui="70B3D57ED0000009").exception, InputError)  # same name
    assert isinstance(run("device", "remove", "--data-dir", data, "ghost").exception, InputError)


def test_import_export_roundtrip_json_and_csv(data: str, tmp_path: Path) -> None:
    devices = [
        {
            "name": "t-1",
            "dev_eui": "70B3D57ED0000011",
            "join_eui": "70B3D57ED000AB00",
            "app_key": APP_KEY,
            "codec": "temperature",
            "activation": "otaa",
        },
        {
            "name": "c-1",
            "dev_eui": "70B3D57ED0000012",
            "codec": "cooling",
            "activation": "abp",
            "dev_addr": "26011BDB",
            "nwk_s_key": NWK,
            "app_s_key": APPS,
        },
    ]
    src = tmp_path / "devices.json"
    src.write_text(json.dumps(devices))
    r = run("device", "import", "--data-dir", data, str(src))
    assert r.exit_code == 0 and "2 new" in r.output
    out = tmp_path / "export.csv"
    r = run("device", "export", "--data-dir", data, "--format", "csv", "--show-keys", "-o", str(out))
    assert r.exit_code == 0 and oct(out.stat().st_mode & 0o777) == "0o600"
    other = str(tmp_path / "other")
    assert run("device", "import", "--data-dir", other, str(out)).exit_code == 0
    back = json.loads(run("device", "export", "--data-dir", other, "--show-keys").output)
    assert sorted(back, key=lambda d: d["name"]) == sorted(
        [
            {
                **d,
                **{
                    k: None
                    for k in ("join_eui", "dev_addr", "nwk_s_key", "app_s_key", "app_key")
                    if k not in d
                },
            }
            for d in devices
        ],
        key=lambda d: d["name"],
    )
    redacted = run("device", "export", "--data-dir", other).output
    assert APP_KEY not in redacted and "<redacted>" in redacted
    # importing again clashes unless --replace
    assert isinstance(run("device", "import", "--data-dir", other, str(out)).exception, InputError)
    assert "2 replaced" in run("device", "import", "--data-dir", other, "--replace", str(out)).output


@pytest.mark.parametrize(
    ("content", "name"),
    [
        ('[{"name": "a", "dev_eui": "70B3D57ED0000011", "codec": "water", "activation": "otaa"}]', "x.json"),
        ('[{"name": "a", "dev_eui": "70B3", "codec": "water", "activation": "abp"}]', "x.json"),
        ("name,dev_eui\na,70B3D57ED0000011\n", "x.csv"),
        ("just some words", "x.csv"),
        ("{not json", "x.json"),
    ],
)
def test_bad_import_files_store_nothing(data: str, tmp_path: Path, content: str, name: str) -> None:
    f = tmp_path / name
    f.write_text(content)
    assert isinstance(run("device", "import", "--data-dir", data, str(f)).exception, InputError)
    assert json.loads(run("device", "list", "--data-dir", data, "--json").output) == []


def test_errors_are_one_line_with_exit_status_1(data: str) -> None:
    p = havel(
        "device",
        "add",
        "--data-dir",
        data,
        "--name",
        "x",
        "--dev-eui",
        "70B3D57ED0000001",
        "--codec",
        "water",
        "--otaa",
        "--join-eui",
        "70B3D57ED000AB00",
        "--app-key",
        "00",
    )
    assert p.returncode == 1 and p.stderr.startswith("havel: error:") and "--app-key" in p.stderr
    p = havel("gateway", "run", "--config", "/nonexistent/gateway.toml")
    assert p.returncode == 1 and "does not exist" in p.stderr


def test_gateway_status_running_and_not_running(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    r = run("gateway", "status", "--config", str(cfg_path))
    assert r.exit_code == 3 and "not running" in r.output
    with InProcessGateway(config.load(cfg_path)):
        r = run("gateway", "status", "--config", str(cfg_path), "--json")
        assert r.exit_code == 0, r.output
        st = json.loads(r.output)
        assert st["state"] == "ok" and st["gateway_id"] == "gw-test" and st["sinks"]["file"]["state"] == "up"
        human = run("gateway", "status", "--config", str(cfg_path))
        assert "gw-test" in human.output and "no packet forwarder has spoken yet" in human.output
        assert "downlinks: 0 queued" in human.output and "ADR: 0 asked" in human.output
    assert run("gateway", "check", "--config", str(cfg_path)).exit_code == 0


def test_import_the_provisioning_tools_csv(data: str, tmp_path: Path) -> None:
    # the header `havel keys export --format havel-csv` writes (provisioning/exports.py, contract D)
    f = tmp_path / "kit.csv"
    f.write_text(
        "name,dev_eui,join_eui,app_key,codec,activation\n"
        f"pegel-havel-1,70B3D57ED0000A01,70B3D57ED000AB00,{APP_KEY},water,otaa\n"
        f"cool-lustgarten,70b3d57ed0000a02,70B3D57ED000AB00,{APP_KEY.lower()},cooling,OTAA\n"
    )
    assert run("device", "import", "--data-dir", data, str(f)).exit_code == 0
    listed = {d["name"]: d for d in json.loads(run("device", "list", "--data-dir", data, "--json").output)}
    assert (
        listed["cool-lustgarten"]["dev_eui"] == "70B3D57ED0000A02"
        and listed["pegel-havel-1"]["codec"] == "water"
    )


def test_the_database_with_the_keys_is_private(data: str) -> None:
    assert add_otaa(data).exit_code == 0
    for f in Path(data).glob("havel.db*"):
        assert f.stat().st_mode & 0o077 == 0, f


def test_gateway_status_tells_repeats_from_rejections(capsys: pytest.CaptureFixture[str]) -> None:
    from havel.gateway.cli.status import print_status

    up = {"received": 12, "accepted": 9, "retransmitted": 2, "rejected": {"mic": 1}, "last_at": None}
    print_status({"gateway_id": "gw", "state": "ok", "uplinks": up})
    out = capsys.readouterr().out
    assert "9 accepted, 2 sent again; rejected: mic 1" in out
    print_status({"gateway_id": "gw", "state": "ok", "uplinks": {**up, "retransmitted": 0, "rejected": {}}})
    out = capsys.readouterr().out
    assert "9 accepted; rejected: none" in out and "sent again" not in out


def test_gateway_status_counts_delivered_records_apart_from_waiting_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from havel.gateway.cli.status import print_status

    ob = {"depth": 21, "delivered": 21, "bytes": 9000, "dropped": {}}
    print_status({"gateway_id": "gw", "state": "ok", "outbox": ob})
    assert "outbox: 0 waiting (and 21 delivered, deleted within seconds)" in capsys.readouterr().out
    print_status({"gateway_id": "gw", "state": "ok", "outbox": {**ob, "delivered": 0}})
    out = capsys.readouterr().out
    assert "outbox: 21 waiting," in out and "delivered" not in out
