"""Black-box: the operator's commands (docs/gateway.md "Operating it" and "The configuration", README,
`havel gateway|device ... --help`): `gateway status` and `gateway check` never write, the device registry
commands do what they say, and bad config or import files get a clear error, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from bb_kit import (
    Forwarder,
    Gateway,
    LoraPacket,
    Subscriber,
    abp_device,
    free_port,
    havel,
    key_file,
    otaa_device,
    wait_for,
    water_payload,
)


def _snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file below ``folder``: (mode, mtime_ns, sha256). SQLite's ``-shm`` file is left out: it is the
    WAL's shared-memory index, which any reader of a WAL database rebuilds after a crash (no data in it)."""
    out: dict[str, tuple[int, int, str]] = {}
    for p in sorted(folder.rglob("*")):
        if p.name.endswith("-shm"):
            continue
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[str(p.relative_to(folder))] = (st.st_mode, st.st_mtime_ns, digest)
    return out


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_status_and_check_never_write_to_the_data_directory(
    how: str,
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(41)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    for n in (1, 2):
        fwd.push_acked([fwd.rxpk(lora.uplink(dev, n, water_payload(n)))])
    subscriber.wait_json("/up", 2)
    running = gw.cli("gateway", "status")
    assert running.returncode == 0, running.stdout + running.stderr
    if how == "sigterm":
        gw.stop()
    else:
        gw.kill9()  # leaves SQLite's WAL behind: a read-only reader must still not write
    before = _snapshot(gw.data_dir)
    config_before = gw.config.read_bytes()

    offline = gw.cli("gateway", "status")
    assert offline.returncode == 3, offline.stdout + offline.stderr  # daemon not running
    as_json = gw.cli("gateway", "status", "--json")
    assert as_json.returncode == 3
    check = gw.cli("gateway", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Traceback" not in offline.stderr + as_json.stderr + check.stderr
    assert _snapshot(gw.data_dir) == before
    assert gw.config.read_bytes() == config_before
    # the offline status still reports what the database holds
    offline_status = json.loads(as_json.stdout)
    assert offline_status["state"] == "not running"
    assert offline_status["devices"] == 1


def test_check_and_status_create_nothing_for_a_new_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "not-yet"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw9"\ndata_dir = "{data}"\n[http]\nport = 0\n'
        f'[[sink]]\ntype = "file"\nname = "local"\npath = "{tmp_path / "out.jsonl"}"\n'
    )
    check = havel("gateway", "check", "--config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    status = havel("gateway", "status", "--config", str(config))
    assert status.returncode == 3, status.stdout + status.stderr
    assert not data.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.toml"]


def test_the_annotated_example_config_passes_check(tmp_path: Path, repo_root: Path) -> None:
    text = (repo_root / "gateway" / "gateway.example.toml").read_text()
    text = text.replace('data_dir = "/var/lib/havel"', f'data_dir = "{tmp_path / "data"}"')
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    check = havel("gateway", "check", "--config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "potsdam-roof-1" in check.stdout
    assert not (tmp_path / "data").exists()


def _config(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_bytes(body.encode() if isinstance(body, str) else body)
    return config


GOOD_HEAD = '[gateway]\nid = "gw1"\ndata_dir = "{data}"\n'
SINK = '[[sink]]\ntype = "mqtt"\nname = "platform"\nhost = "127.0.0.1"\nport = 1883\ntls = false\n'
BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("nan", GOOD_HEAD + "[network]\ndedup_window_ms = nan\n" + SINK, "dedup_window_ms"),
    ("inf", GOOD_HEAD + "[outbox]\nquota_mb = inf\n" + SINK, "quota_mb"),
    ("huge-int", GOOD_HEAD + "[udp]\nport = 99999999999999999999999\n" + SINK, "port"),
    ("nul", GOOD_HEAD + '[log]\nlevel = "info\\u0000"\n' + SINK, "level"),
    ("wrong-type", GOOD_HEAD + '[udp]\nport = "seventeen"\n' + SINK, "port"),
    ("port-range", GOOD_HEAD + "[udp]\nport = 70000\n" + SINK, "port"),
    ("sink-no-host", GOOD_HEAD + '[[sink]]\ntype = "mqtt"\nname = "platform"\n', "host"),
    ("unknown-sink", GOOD_HEAD + '[[sink]]\ntype = "carrier-pigeon"\nname = "x"\n', "type"),
    ("forwarder-batch", GOOD_HEAD + "[forwarder]\nbatch = -1\n" + SINK, "batch"),
    ("deep", GOOD_HEAD + "[network]\nx = " + "[" * 40 + "]" * 40 + "\n" + SINK, ""),
    ("bad-eui", GOOD_HEAD + '[udp]\nallowed_gateways = ["AA55"]\n' + SINK, "allowed_gateways"),
    ("bad-id", '[gateway]\nid = "gw/1#"\ndata_dir = "{data}"\n' + SINK, "id"),
    ("not-toml", "[gateway\nid = ", ""),
]


@pytest.mark.parametrize(("name", "body", "key"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_configs_are_refused_by_check_naming_the_key(
    name: str, body: str, key: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = _config(tmp_path, body.replace("{data}", str(data)))
    check = havel("gateway", "check", "--config", str(config))
    assert check.returncode != 0, check.stdout
    out = check.stdout + check.stderr
    assert "Traceback" not in out, out
    assert key in out, out


RUN_REFUSES = ["nan", "huge-int", "sink-no-host", "forwarder-batch", "deep"]


@pytest.mark.parametrize("name", RUN_REFUSES)
def test_run_refuses_a_bad_config_before_creating_the_data_directory(name: str, tmp_path: Path) -> None:
    body = dict((c[0], c[1]) for c in BAD_CONFIGS)[name]
    data = tmp_path / "data"
    config = _config(tmp_path, body.replace("{data}", str(data)))
    run = havel("gateway", "run", "--config", str(config), timeout=60)
    assert run.returncode != 0
    assert "Traceback" not in run.stdout + run.stderr
    assert not data.exists(), "run created the data directory for a config it refused"


def test_non_utf8_and_binary_config_files_get_an_error_not_a_traceback(tmp_path: Path) -> None:
    for i, blob in enumerate([b"\xff\xfe[gateway]\nid = 1\n", b"\x00" * 64, b'[gateway]\nid = "\xe9"\n']):
        config = tmp_path / f"c{i}.toml"
        config.write_bytes(blob)
        check = havel("gateway", "check", "--config", str(config))
        assert check.returncode != 0
        assert "Traceback" not in check.stdout + check.stderr, check.stderr


def test_device_add_list_export_import_remove_round_trip(tmp_path: Path) -> None:
    def cfg(folder: str) -> list[str]:
        return ["--data-dir", str(tmp_path / folder)]

    otaa = otaa_device(41)
    abp = abp_device(42)
    keys = tmp_path / "keys"
    app_key = key_file(keys, "otaa.key", otaa.app_key)
    r = havel(
        "device", "add", "--name", otaa.name, "--dev-eui", otaa.dev_eui, "--codec", "water", "--otaa",
        "--join-eui", otaa.join_eui, "--app-key-file", str(app_key), *cfg("a"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    # the NwkSKey from stdin ("-"), the AppSKey from a 0600 file
    r = havel(
        "device", "add", "--name", abp.name, "--dev-eui", abp.dev_eui, "--codec", "cooling", "--abp",
        "--dev-addr", abp.dev_addr, "--nwk-s-key-file", "-",
        "--app-s-key-file", str(key_file(keys, "abp.app", abp.app_s_key)), *cfg("a"),
        stdin=abp.nwk_s_key + "\n",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert abp.nwk_s_key not in r.stdout + r.stderr

    listed = json.loads(havel("device", "list", "--json", *cfg("a")).stdout)
    by_eui = {d["dev_eui"]: d for d in listed}
    assert set(by_eui) == {otaa.dev_eui, abp.dev_eui}
    assert by_eui[abp.dev_eui]["dev_addr"].upper() == abp.dev_addr.upper()
    table = havel("device", "list", *cfg("a")).stdout
    for secret in (otaa.app_key, abp.nwk_s_key, abp.app_s_key):
        assert secret.lower() not in table.lower()
        assert secret.lower() not in json.dumps(listed).lower()
    shown = havel("device", "list", "--json", "--show-keys", *cfg("a")).stdout.lower()
    assert otaa.app_key in shown and abp.nwk_s_key in shown

    redacted = havel("device", "export", *cfg("a"))
    assert redacted.returncode == 0
    assert otaa.app_key not in redacted.stdout.lower()
    export = tmp_path / "nodes.json"
    r = havel("device", "export", "--show-keys", "-o", str(export), *cfg("a"))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    csv_out = havel("device", "export", "--format", "csv", "--show-keys", *cfg("a")).stdout
    assert otaa.dev_eui in csv_out

    r = havel("device", "import", str(export), *cfg("b"))
    assert r.returncode == 0, r.stderr
    again = json.loads(havel("device", "list", "--json", "--show-keys", *cfg("b")).stdout)
    assert {d["dev_eui"] for d in again} == {otaa.dev_eui, abp.dev_eui}
    assert otaa.app_key in json.dumps(again).lower()
    # importing again refuses existing devices unless --replace
    r = havel("device", "import", str(export), *cfg("b"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    r = havel("device", "import", str(export), "--replace", *cfg("b"))
    assert r.returncode == 0, r.stderr
    # a CSV export imports too
    csv_file = tmp_path / "nodes.csv"
    csv_file.write_text(csv_out)
    r = havel("device", "import", str(csv_file), *cfg("c"))
    assert r.returncode == 0, r.stderr
    assert len(json.loads(havel("device", "list", "--json", *cfg("c")).stdout)) == 2

    r = havel("device", "remove", otaa.name, *cfg("b"))
    assert r.returncode == 0, r.stderr
    r = havel("device", "remove", abp.dev_eui, *cfg("b"))
    assert r.returncode == 0, r.stderr
    assert json.loads(havel("device", "list", "--json", *cfg("b")).stdout) == []
    r = havel("device", "remove", otaa.name, *cfg("b"))
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_device_add_refuses_a_key_file_other_users_can_read_and_warns_about_argv_keys(tmp_path: Path) -> None:
    dev = otaa_device(43)
    loose = tmp_path / "loose.key"
    loose.write_text(dev.app_key)
    loose.chmod(0o644)
    args = ["device", "add", "--name", dev.name, "--dev-eui", dev.dev_eui, "--codec", "water", "--otaa"]
    args += ["--join-eui", dev.join_eui, "--data-dir", str(tmp_path / "d")]
    r = havel(*args, "--app-key-file", str(loose))
    assert r.returncode != 0
    assert dev.app_key not in r.stdout + r.stderr
    r = havel(*args, "--app-key", dev.app_key)
    assert r.returncode == 0, r.stderr
    assert "warn" in r.stderr.lower()
    assert dev.app_key not in r.stdout


BAD_IMPORTS: list[tuple[str, bytes]] = [
    ("truncated.json", b'[{"name": "x",'),
    ("object.json", b'{"name": "x"}'),
    ("nan.json", b'[{"name": "x", "dev_eui": NaN}]'),
    ("deep.json", b"[" * 500 + b"]" * 500),
    ("deeper.json", b"[" * 5000 + b"]" * 5000),
    ("binary.json", b"\xff\xfe\x00\x01" * 100),
    ("latin1.csv", "name,dev_eui\nk\xfchlung,70B3D57ED0000001\n".encode("latin-1")),
    ("redacted.json", b""),  # filled in below from a redacted export
    ("bad-eui.json", b""),
    ("dup.json", b""),
    ("bad.csv", b"name,dev_eui\nx,not-hex\n"),
]


def test_bad_import_files_are_refused_whole_with_a_clear_error(tmp_path: Path) -> None:
    dev = otaa_device(44)
    good = {
        "name": dev.name, "dev_eui": dev.dev_eui, "join_eui": dev.join_eui, "app_key": dev.app_key,
        "codec": "water", "activation": "otaa", "dev_addr": None, "nwk_s_key": None, "app_s_key": None,
    }  # fmt: skip
    second = dict(good, name="second", dev_eui="70B3D57ED00300FF")
    files = dict(BAD_IMPORTS)
    files["redacted.json"] = json.dumps([second, dict(good, app_key="<redacted>")]).encode()
    files["bad-eui.json"] = json.dumps([second, dict(good, dev_eui="70B3")]).encode()
    files["dup.json"] = json.dumps([second, good, dict(good, name="other")]).encode()
    data = tmp_path / "data"
    for name, blob in files.items():
        path = tmp_path / name
        path.write_bytes(blob)
        r = havel("device", "import", str(path), "--data-dir", str(data))
        assert r.returncode != 0, (name, r.stdout)
        assert "Traceback" not in r.stdout + r.stderr, (name, r.stderr)
        assert r.stderr.strip(), name
        assert dev.app_key not in r.stdout + r.stderr, name
        # all records are checked first: nothing of a bad file is imported
        if data.exists():
            listed = havel("device", "list", "--json", "--data-dir", str(data))
            assert json.loads(listed.stdout) == [], name
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps([good]))
    assert havel("device", "import", str(ok), "--data-dir", str(data)).returncode == 0


def test_device_added_while_the_daemon_runs_is_served(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
    tmp_path: Path,
) -> None:
    gw = make_gateway()
    dev = abp_device(45)
    from bb_kit import add_device

    add_device(gw, dev, tmp_path)
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))])
    (up,) = subscriber.wait_json("/up", timeout=30)
    assert up["device"] == dev.name
    wait_for(lambda: gw.status()["devices"] >= 1, 30, "the status to count the device")


def test_a_second_daemon_on_the_same_data_directory_refuses_to_start(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    gw = make_gateway()
    other = tmp_path / "second.toml"
    text = gw.config.read_text()
    text = text.replace(f"port = {gw.udp_port}", f"port = {free_port(socket.SOCK_DGRAM)}", 1)
    text = text.replace(f"port = {gw.http_port}", f"port = {free_port()}", 1)
    other.write_text(text)
    r = havel("gateway", "run", "--config", str(other), timeout=60)
    assert r.returncode != 0
    assert "Traceback" not in r.stdout + r.stderr
    assert "running" in r.stderr, r.stderr
    assert gw.alive() and gw.http("/healthz")[0] == 200
