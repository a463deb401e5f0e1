"""Files and terminals that hold keys: 0600 exports over existing files, keys that stay out of the
process list (``havel device add --app-key-file``), and ``keys show --reveal`` on an 80-column terminal."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from havel.cli import cli
from havel.errors import InputError, SecurityError
from havel.provisioning import identity
from havel.provisioning.registry import Registry

APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
NWK = "000102030405060708090A0B0C0D0E0F"
APPS = "0F0E0D0C0B0A09080706050403020100"


def havel(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "havel", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def prov(tmp_path: Path) -> dict[str, str]:
    """Provisioning settings with a registry of two nodes (long kit names, as volunteers see them)."""
    cfg = tmp_path / "prov.json"
    cfg.write_text(json.dumps({"registry": "reg.json", "join_eui": "70B3D57ED0000000"}))
    reg = Registry.create(tmp_path / "reg.json", "pw", scrypt_n=2**12)
    for n, key in ((1, bytes.fromhex(APP_KEY)), (2, bytes.fromhex(NWK))):
        dev = 0x70B3D57ED0050000 + n
        reg.add(
            identity.Identity(
                name=identity.node_name("temperature", dev),
                dev_eui=dev,
                join_eui=0x70B3D57ED0000000,
                app_key=key,
                kit="temperature",
                board="heltec_wifi_lora_32_v3",
                codec="temperature",
            )
        )
    reg.save()
    return {**os.environ, "HAVEL_PROVISIONING_CONFIG": str(cfg), "HAVEL_REGISTRY_PASSPHRASE": "pw"}


# ------------------------------------------------------------------ files with keys: always 0600
@pytest.mark.parametrize("fmt", ["havel", "havel-csv", "chirpstack", "tts"])
def test_export_over_an_existing_0644_file_ends_0600(tmp_path: Path, prov: dict[str, str], fmt: str) -> None:
    out = tmp_path / "export.out"
    out.write_text("old contents\n")
    os.chmod(out, 0o644)
    r = havel("keys", "export", "--format", fmt, "--out", str(out), env=prov)
    assert r.returncode == 0, r.stderr
    assert "mode 0600" in r.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    assert APP_KEY in out.read_text().upper()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export")] == []  # no temp file left


def test_registry_saved_over_a_0644_file_ends_0600(tmp_path: Path) -> None:
    path = tmp_path / "reg.json"
    reg = Registry.create(path, "pw", scrypt_n=2**12)
    os.chmod(path, 0o644)
    reg.save()
    assert path.stat().st_mode & 0o777 == 0o600


def test_gateway_device_export_over_an_existing_0644_file_ends_0600(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    add = ["device", "add", "--data-dir", data, "--name", "p1", "--dev-eui", "70B3D57ED0000001"]
    key = tmp_path / "app.key"
    key.write_text(APP_KEY + "\n")
    key.chmod(0o600)
    r = CliRunner().invoke(
        cli,
        [*add, "--codec", "water", "--otaa", "--join-eui", "70B3D57ED000AB00", "--app-key-file", str(key)],
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "devices.json"
    out.write_text("[]")
    os.chmod(out, 0o644)
    r = CliRunner().invoke(cli, ["device", "export", "--data-dir", data, "--show-keys", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_mode & 0o777 == 0o600 and APP_KEY in out.read_text()


# ------------------------------------------------------------------ keys never on the command line
def add_args(data: str, *extra: str) -> list[str]:
    return [
        "device",
        "add",
        "--data-dir",
        data,
        "--name",
        "pegel-1",
        "--dev-eui",
        "70B3D57ED0000001",
        "--codec",
        "water",
        *extra,
    ]


def stored_keys(data: str) -> dict[str, str]:
    r = CliRunner().invoke(cli, ["device", "list", "--data-dir", data, "--json", "--show-keys"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows) == 1
    return {k: rows[0][k] for k in ("app_key", "nwk_s_key", "app_s_key") if rows[0].get(k)}


def test_device_add_reads_the_app_key_from_a_file_or_stdin(tmp_path: Path) -> None:
    otaa = ("--otaa", "--join-eui", "70B3D57ED000AB00")
    key = tmp_path / "app.key"
    key.write_text(APP_KEY.lower() + "\n")
    key.chmod(0o600)
    data = str(tmp_path / "a")
    r = havel(*add_args(data, *otaa, "--app-key-file", str(key)))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no warning: the key was never in argv
    assert stored_keys(data) == {"app_key": APP_KEY}

    data = str(tmp_path / "b")
    r = havel(*add_args(data, *otaa, "--app-key-file", "-"), stdin=APP_KEY + "\n")
    assert r.returncode == 0, r.stderr
    assert stored_keys(data) == {"app_key": APP_KEY}


def test_device_add_abp_session_keys_from_files(tmp_path: Path) -> None:
    nwk, apps = tmp_path / "nwk.key", tmp_path / "apps.key"
    for p, k in ((nwk, NWK), (apps, APPS)):
        p.write_text(k)
        p.chmod(0o600)
    data = str(tmp_path / "d")
    r = havel(
        *add_args(
            data, "--abp", "--dev-addr", "26011BDA", "--nwk-s-key-file", str(nwk), "--app-s-key-file", "-"
        ),
        stdin=APPS,
    )
    assert r.returncode == 0, r.stderr
    assert stored_keys(data) == {"nwk_s_key": NWK, "app_s_key": APPS}


def test_device_add_app_key_on_the_command_line_still_works_but_warns(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    r = havel(*add_args(data, "--otaa", "--join-eui", "70B3D57ED000AB00", "--app-key", APP_KEY))
    assert r.returncode == 0, r.stderr
    assert "process list" in r.stderr and "--app-key-file" in r.stderr
    assert APP_KEY not in r.stderr
    assert stored_keys(data) == {"app_key": APP_KEY}


def test_device_add_key_file_problems_are_clear_errors(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    otaa = ("--otaa", "--join-eui", "70B3D57ED000AB00")
    open_key = tmp_path / "open.key"
    open_key.write_text(APP_KEY)
    open_key.chmod(0o644)
    cases: list[tuple[tuple[str, ...], type[Exception]]] = [
        (("--app-key-file", str(open_key)), SecurityError),  # readable by others
        (("--app-key-file", str(tmp_path / "missing.key")), InputError),
        (("--app-key-file", str(open_key), "--app-key", APP_KEY), InputError),  # both
    ]
    for extra, error in cases:
        r = CliRunner().invoke(cli, add_args(data, *otaa, *extra))
        assert isinstance(r.exception, error), (extra, r.output)
    r = CliRunner().invoke(
        cli,
        add_args(data, "--abp", "--dev-addr", "26011BDA", "--nwk-s-key-file", "-", "--app-s-key-file", "-"),
        input=NWK + "\n",
    )
    assert isinstance(r.exception, InputError)  # two keys cannot both come from stdin
    open_key.chmod(0o600)
    bad = tmp_path / "short.key"
    bad.write_text("1234")
    bad.chmod(0o600)
    r = CliRunner().invoke(cli, add_args(data, *otaa, "--app-key-file", str(bad)))
    assert isinstance(r.exception, InputError)
    assert json.loads(CliRunner().invoke(cli, ["device", "list", "--data-dir", data, "--json"]).output) == []


@pytest.mark.timeout(60)
def test_device_add_asks_for_the_app_key_on_a_terminal(tmp_path: Path) -> None:
    """No key option at all: on a terminal the key is asked for with a hidden prompt (not echoed)."""
    data = str(tmp_path / "d")
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "havel", *add_args(data, "--otaa", "--join-eui", "70B3D57ED000AB00")],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
        )
        seen = b""
        deadline = time.monotonic() + 45
        while b"AppKey" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                seen += os.read(master, 1024)
        assert b"AppKey" in seen, seen
        os.write(master, APP_KEY.encode() + b"\r")
        assert proc.wait(timeout=45) == 0
        while select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 1024)
            except OSError:
                break
    finally:
        os.close(master)
        os.close(slave)
    assert APP_KEY.encode() not in seen  # hidden input
    assert stored_keys(data) == {"app_key": APP_KEY}


# ------------------------------------------------------------------ keys show on a narrow terminal
@pytest.mark.parametrize("columns", ["80", "60"])
def test_keys_show_reveal_keeps_keys_whole_on_a_narrow_terminal(prov: dict[str, str], columns: str) -> None:
    r = havel("keys", "show", "--reveal", env={**prov, "COLUMNS": columns})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for key, eui in ((APP_KEY, "70B3D57ED0050001"), (NWK, "70B3D57ED0050002")):
        # each value whole on one line, with nothing glued to it (copyable by double-click)
        assert any(line.split()[-1:] == [key] for line in lines), r.stdout
        assert any(line.split()[-1:] == [eui] for line in lines), r.stdout
    assert "…" not in r.stdout
    assert all(len(line) <= int(columns) for line in lines)


def test_keys_show_without_reveal_keeps_euis_whole_and_hides_keys(prov: dict[str, str]) -> None:
    r = havel("keys", "show", env={**prov, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert "70B3D57ED0050001" in r.stdout and "70B3D57ED0050002" in r.stdout
    assert "havel-temperature-050001" in r.stdout and "…" not in r.stdout  # names whole at 80 columns
    assert APP_KEY not in r.stdout and NWK not in r.stdout and "--reveal" in r.stdout
