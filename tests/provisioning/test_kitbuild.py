"""`havel kit build` end to end on the virtual board: stop at a wiring fault, resume after the fix."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from serial.tools.list_ports_common import ListPortInfo

from havel.provisioning import bundle, kitbuild, signing
from havel.provisioning.kits import firmware_dir, load_kit
from havel.provisioning.registry import Registry
from havel.provisioning.settings import Settings
from havel.provisioning.transport import Board

from .conftest import scenario


def fake_ports(path: str) -> Callable[[], list[ListPortInfo]]:
    def ports() -> list[ListPortInfo]:
        p = ListPortInfo(path, skip_link_detection=True)
        p.vid, p.pid, p.description = 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller"
        return [p]

    return ports


def restage(vb: Any, sc: dict[str, Any]) -> None:
    """The volunteer fixes the wiring: new wiring on the same board (flash contents stay)."""
    with Board(vb.path) as link:
        link.exec(f"f = open('/_vboard/scenario.json', 'w')\nf.write({json.dumps(sc)!r})\nf.close()")
        link.soft_reset()


@pytest.mark.timeout(120)
def test_kit_build_stops_at_the_fault_and_resumes(
    tmp_path: Path, signing_key: Any, start_board: Callable[..., Any]
) -> None:
    kit = load_kit("air")
    board = kit.board()
    vb = start_board(scenario.build(kit, board, {"bmp280"}))
    pub = tmp_path / "city.pub"
    from cryptography.hazmat.primitives import serialization

    pub.write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    bdir = tmp_path / "bundle"
    # The repository's real firmware, as the city would build it for this board's radio.
    assert board.radio is not None
    manifest = bundle.build_bundle(
        firmware_dir(), "air", bdir, signing_key=signing_key, radios=[board.radio.chip]
    )
    settings = Settings(
        registry=tmp_path / "registry.json",
        state_dir=tmp_path / "state",
        label_dir=tmp_path / "labels",
        trusted_keys=[pub],
        join_eui=0x70B3D57ED0000000,
    )
    opts = kitbuild.BuildOptions(kit="air", bundle_dir=bdir)
    questions: list[str] = []

    def confirm(q: str) -> bool:
        questions.append(q)
        return True

    def run() -> kitbuild.BuildResult:
        con = Console(record=True, width=160)
        res = kitbuild.build(
            opts,
            settings,
            confirm=confirm,
            passphrase=lambda: "lab passphrase",
            console=con,
            list_ports=fake_ports(vb.path),
        )
        res.steps["_output"] = con.export_text()
        return res

    first = run()
    assert not first.ok and first.steps["check"] == "failed"
    assert first.flash_report is not None and len(first.flash_report.copied) == len(manifest.files)
    assert "BMP280" in first.steps["_output"] and "continues at the check" in first.steps["_output"]
    assert not settings.registry.exists()  # nothing registered for a kit that failed its check
    state = json.loads((settings.state_dir / "kit-air.json").read_text())
    assert state["done"] == ["board", "micropython", "flash"]

    restage(vb, scenario.build(kit, board, set()))
    second = run()
    assert second.ok, second.steps["_output"]
    assert second.flash_report is not None and second.flash_report.copied == []  # resumed: nothing to copy
    assert second.dev_eui == "A4CF12FFFEFE0C01"  # MAC a4cf12fe0c01 as EUI-64
    reg = Registry.open(settings.registry, "lab passphrase")
    assert [e.name for e in reg.entries] == [second.name]
    entry = reg.entries[0]
    assert entry.unique_id == "a4cf12fe0c01" and entry.codec == "air"
    assert settings.registry.stat().st_mode & 0o777 == 0o600
    assert [Path(p).suffix for p in second.labels] == [".svg", ".png"]
    assert entry.app_key.hex() not in second.steps["_output"].lower()  # keys never printed
    assert any("registry" in q for q in questions)

    # The board now holds config.json and board.json that the firmware's own checker accepts.
    with Board(vb.path) as link:
        cfg = json.loads(link.call("fsutil", "hv_read_text", "config.json"))
        board_json = json.loads(link.call("fsutil", "hv_read_text", "board.json"))
    assert cfg["lorawan"]["app_key"] == entry.app_key.hex().upper()
    assert board_json["name"] == board.name
    # ...and the firmware's own config.py, flashed as .mpy, loads both on the board without complaint.
    with Board(vb.path) as link:
        out = link.exec(
            "import config\ncfg, b = config.load()\nprint(cfg['app'], b['name'], cfg['interval_s'])"
        )
    assert out.decode().split() == ["air", board.name, "300"]

    third = run()  # same board again: same identity, nothing new in the registry
    assert third.ok and third.dev_eui == second.dev_eui
    assert len(Registry.open(settings.registry, "lab passphrase").entries) == 1


@pytest.mark.timeout(90)
def test_kit_build_on_a_board_without_micropython(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No REPL answers: the build wants to install MicroPython, checks the image, asks, then runs the real
    esptool, which finds no ESP32 bootloader on this port and says what to do."""
    import hashlib
    import os

    from havel.errors import ConfigError, HavelError, TransportError
    from havel.provisioning import micropython_install

    monkeypatch.setattr(micropython_install, "CONNECT_ATTEMPTS", 1)
    monkeypatch.setattr(kitbuild, "PROBE_TIMEOUT_S", 0.5)
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        img = tmp_path / "ESP32_GENERIC_S3-v1.29.0.bin"
        img.write_bytes(b"\xe9" + bytes(8191))
        settings = Settings(registry=tmp_path / "r.json", state_dir=tmp_path / "s", label_dir=tmp_path / "l")
        opts = kitbuild.BuildOptions(kit="air", bundle_dir=tmp_path / "none")

        def run(answer: bool) -> kitbuild.BuildResult:
            return kitbuild.build(
                opts,
                settings,
                confirm=lambda q: answer,
                passphrase=lambda: "pw",
                console=Console(file=open(os.devnull, "w")),
                list_ports=fake_ports(path),
            )

        with pytest.raises(ConfigError, match="no MicroPython image for ESP32_GENERIC_S3"):
            run(True)
        settings.micropython_images = {"ESP32_GENERIC_S3": {"path": str(img), "sha256": "0" * 64}}
        with pytest.raises(HavelError, match="damaged"):
            run(True)
        settings.micropython_images["ESP32_GENERIC_S3"]["sha256"] = hashlib.sha256(
            img.read_bytes()
        ).hexdigest()
        with pytest.raises(HavelError, match="stopped without changing the board"):
            run(False)
        with pytest.raises(TransportError, match=r"esptool failed: .*Failed to connect to ESP32-S3") as err:
            run(True)
        assert "BOOT" in str(err.value)
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.timeout(180)
def test_cli_kit_build_hint_names_its_own_option_and_new_passphrase_is_asked_twice(
    tmp_path: Path, kit_board: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A volunteer's first `havel kit build`: no trusted key configured, so the hint must name an option
    that `kit build` really has; then a new registry, whose passphrase is asked twice (a typo in the
    first answer is caught), and a second run that asks once."""
    import click
    from click.testing import CliRunner

    from havel.cli import cli
    from havel.errors import SecurityError

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
            {"registry": "reg.json", "state_dir": "state", "label_dir": "labels", "bundle_dir": "bundles"}
        )
    )
    monkeypatch.setenv("HAVEL_PROVISIONING_CONFIG", str(cfg))
    monkeypatch.delenv("HAVEL_REGISTRY_PASSPHRASE", raising=False)
    args = ["kit", "build", "--kit", "temperature", "--port", vb.path, "--yes"]

    r = CliRunner().invoke(cli, args)
    assert isinstance(r.exception, SecurityError), r.output
    hint = r.exception.hint or ""
    named = re.findall(r"--[a-z][a-z-]*", hint)
    kit_build = cli.get_command(click.Context(cli), "kit")
    assert isinstance(kit_build, click.Group)
    build_cmd = kit_build.get_command(click.Context(kit_build), "build")
    assert build_cmd is not None
    have = {o for p in build_cmd.params for o in p.opts}
    assert named and set(named) <= have, (named, have)

    # Following the hint: --trust city.pub. The first passphrase has a typo, so it is asked again.
    r = CliRunner().invoke(cli, [*args, "--trust", str(pub)], input="corect\ncorrect\ncorrect\ncorrect\n")
    assert r.exit_code == 0, (r.output, r.exception)
    assert r.output.count("Repeat for confirmation") == 2 and "do not match" in r.output
    reg = Registry.open(tmp_path / "reg.json", "correct")
    assert len(reg.entries) == 1

    # The registry exists now: one question, no confirmation.
    r = CliRunner().invoke(cli, [*args, "--trust", str(pub)], input="correct\n")
    assert r.exit_code == 0, (r.output, r.exception)
    assert "Repeat for confirmation" not in r.output
