"""``havel gateway setup`` under ``--root``: what it writes, with which modes, that a second run changes
nothing, that ``--dry-run`` writes nothing, that systemd accepts the units and that the reset script drives
the board's lines through libgpiod (a recording stand-in for gpioset: there is no GPIO chip here)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from havel.cli import cli
from havel.errors import ConfigError
from havel.gateway import config
from havel.gateway.setup import files
from havel.gateway.setup.boards import board_names, load_board

EUI = "B827EBFFFE6C1D2A"


def setup(root: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["gateway", "setup", "--gateway-eui", EUI, "--root", str(root), *args], catch_exceptions=False
    )


def tree(root: Path) -> dict[str, tuple[int, bytes | None, int]]:
    """Every path under root with its mode, content and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_mode, p.read_bytes() if p.is_file() else None, st.st_mtime_ns)
    return out


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_setup_writes_everything_with_modes(tmp_path: Path) -> None:
    res = setup(tmp_path, "--board", "seeed_wm1302_spi", "--ups", "roofups@127.0.0.1:3493")
    assert res.exit_code == 0, res.output
    conf = json.loads((tmp_path / "etc/havel/pktfwd/global_conf.json").read_text())
    assert conf["gateway_conf"]["gateway_ID"] == EUI
    assert mode(tmp_path / "etc/havel/gateway.toml") == 0o640
    assert mode(tmp_path / "usr/local/lib/havel/concentrator-reset") == 0o755
    assert mode(tmp_path / "var/lib/havel") == 0o750
    for unit in (files.GATEWAY_UNIT, files.PKTFWD_UNIT):
        assert mode(tmp_path / "etc/systemd/system" / unit) == 0o644
    # the gateway.toml it writes is one the daemon accepts, with the watchdog and the UPS configured
    cfg = config.load(tmp_path / "etc/havel/gateway.toml")
    assert cfg.udp.port == 1700 and cfg.data_dir == Path("/var/lib/havel")
    assert cfg.watchdog is not None and cfg.power is not None
    assert cfg.watchdog.restart_command == ("systemctl", "restart", files.PKTFWD_UNIT)
    assert cfg.power.ups == "roofups@127.0.0.1:3493"
    pktfwd = (tmp_path / "etc/systemd/system" / files.PKTFWD_UNIT).read_text()
    assert f"ExecStartPre={files.RESET_SCRIPT} start" in pktfwd and f"After={files.GATEWAY_UNIT}" in pktfwd


def test_second_run_changes_nothing_and_keeps_the_operators_config(tmp_path: Path) -> None:
    assert setup(tmp_path, "--board", "rak2287_pihat").exit_code == 0
    toml = tmp_path / "etc/havel/gateway.toml"
    toml.write_text(toml.read_text().replace('id = "havel-gw"', 'id = "roof-rathaus"'))
    before = tree(tmp_path)
    res = setup(tmp_path, "--board", "rak2287_pihat")
    assert res.exit_code == 0, res.output
    assert "1 kept, 13 unchanged" in res.output
    assert tree(tmp_path) == before
    assert 'id = "roof-rathaus"' in toml.read_text()
    # another board: the generated files follow, the operator's config still stays
    res = setup(tmp_path, "--board", "semtech_corecell_usb")
    assert "update        /etc/havel/pktfwd/global_conf.json" in res.output
    conf = json.loads((tmp_path / "etc/havel/pktfwd/global_conf.json").read_text())
    assert conf["SX130x_conf"]["com_type"] == "USB"
    assert 'id = "roof-rathaus"' in toml.read_text()


def test_dry_run_prints_everything_and_writes_nothing(tmp_path: Path) -> None:
    res = setup(tmp_path, "--board", "waveshare_sx1302_hat", "--dry-run")
    assert res.exit_code == 0, res.output
    assert list(tmp_path.iterdir()) == []
    for text in (
        '"gateway_ID": "B827EBFFFE6C1D2A"',
        "ExecStart=/opt/sx1302_hal/bin/lora_pkt_fwd -c",
        'drive "$RESET" 1',
        "polkit.addRule",
        "[gateway]",
    ):
        assert text in res.output, text
    assert "would create  /var/lib/havel/" in res.output
    assert (
        f"would run     systemd-sysusers --root={tmp_path} {tmp_path}/etc/sysusers.d/havel.conf" in res.output
    )
    # over an existing installation: still nothing touched
    assert setup(tmp_path, "--board", "waveshare_sx1302_hat").exit_code == 0
    before = tree(tmp_path)
    res = setup(tmp_path, "--board", "rak5146_pihat", "--dry-run")
    assert "would update  /etc/havel/pktfwd/global_conf.json" in res.output
    assert tree(tmp_path) == before


def test_bus_checks_say_how_to_enable_spi_and_i2c(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli,
        [
            "gateway",
            "setup",
            "--gateway-eui",
            EUI,
            "--root",
            str(tmp_path),
            "--board",
            "rak2287_pihat",
            "--dry-run",
        ],
    )
    assert "SPI is off" in res.output and "raspi-config nonint do_spi 0" in res.output
    assert "I2C is off" in res.output and "dtparam=i2c_arm=on" in res.output
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/spidev0.0").touch()
    (tmp_path / "dev/i2c-1").touch()
    res = CliRunner().invoke(
        cli,
        [
            "gateway",
            "setup",
            "--gateway-eui",
            EUI,
            "--root",
            str(tmp_path),
            "--board",
            "rak2287_pihat",
            "--dry-run",
        ],
    )
    # (the data directory's mount may still be warned about: tests/gateway/setup/test_setup_mount.py)
    assert "SPI is off" not in res.output and "I2C is off" not in res.output


def test_gateway_eui_from_the_mac_address(tmp_path: Path) -> None:
    (tmp_path / "sys/class/net/eth0").mkdir(parents=True)
    (tmp_path / "sys/class/net/eth0/address").write_text("b8:27:eb:6c:1d:2a\n")
    res = CliRunner().invoke(cli, ["gateway", "setup", "--root", str(tmp_path), "--board", "rak2287_pihat"])
    assert res.exit_code == 0, res.output
    conf = json.loads((tmp_path / "etc/havel/pktfwd/global_conf.json").read_text())
    assert conf["gateway_conf"]["gateway_ID"] == "B827EBFFFE6C1D2A"


def test_unknown_board_names_the_known_ones(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["gateway", "setup", "--root", str(tmp_path), "--board", "sx1301_old"])
    assert isinstance(res.exception, ConfigError)
    assert "rak2287_pihat" in str(res.exception)  # the hint lists the known boards
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (tools/bootstrap.d/roof.sh)"
)
@pytest.mark.parametrize("board", ["rak2287_pihat", "semtech_corecell_usb"])
def test_systemd_accepts_the_units(tmp_path: Path, board: str) -> None:
    root = tmp_path / "root"
    assert setup(root, "--board", board).exit_code == 0
    # systemd-analyze --root needs the system's own units (sysinit.target ...) and the binaries the units run
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for exe in (files.HAVEL_BIN, files.FORWARDER_BIN):
        target = root / exe.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\n")
        target.chmod(0o755)
    units = [str(files.UNIT_DIR / u) for u in (files.GATEWAY_UNIT, files.PKTFWD_UNIT)]
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # unknown keys are only warnings: none allowed


FAKE_GPIOSET = """#!/bin/sh
# stands in for libgpiod's gpioset (there is no GPIO chip here): records its arguments
if [ "$1" = "--version" ]; then echo "$GPIOD_VERSION"; exit 0; fi
echo "gpioset $*" >> "$GPIO_LOG"
"""
FAKE_GPIOFIND = """#!/bin/sh
# libgpiod 1.x gpiofind: "GPIO<n>" is offset n of gpiochip0 on a Raspberry Pi; others are unknown
case "$1" in GPIO[0-9]*) echo "gpiochip0 ${1#GPIO}";; *) exit 1;; esac
"""


def _run_reset(tmp_path: Path, board: str, version: str, action: str) -> tuple[int, list[str]]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, text in (("gpioset", FAKE_GPIOSET), ("gpiofind", FAKE_GPIOFIND)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    script = tmp_path / "concentrator-reset"
    script.write_text(files.reset_script(load_board(board)))
    script.chmod(0o755)
    log = tmp_path / "gpio.log"
    log.write_text("")
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "GPIO_LOG": str(log),
        "GPIOD_VERSION": version,
    }
    proc = subprocess.run([str(script), action], env=env, capture_output=True, text=True, timeout=30)
    return proc.returncode, log.read_text().splitlines()


def test_reset_script_with_libgpiod_1(tmp_path: Path) -> None:
    rc, calls = _run_reset(tmp_path, "seeed_wm1302_spi", "gpioset (libgpiod) v1.6.3", "start")
    assert rc == 0
    hold = "gpioset --mode=time --usec=100000 gpiochip0"
    # power on, reset pulse (active high), SX1261 reset pulse (active low): Seeed's pins 18, 17, 5
    assert calls == [f"{hold} 18=1", f"{hold} 17=1", f"{hold} 17=0", f"{hold} 5=0", f"{hold} 5=1"]
    rc, calls = _run_reset(tmp_path, "seeed_wm1302_spi", "gpioset (libgpiod) v1.6.3", "stop")
    assert rc == 0 and calls == [f"{hold} 17=1", f"{hold} 18=0"]


def test_reset_script_with_libgpiod_2(tmp_path: Path) -> None:
    rc, calls = _run_reset(tmp_path, "semtech_corecell", "gpioset v2.3.2 (libgpiod v2.2.1)", "start")
    assert rc == 0
    hold = "gpioset --hold-period 100ms --toggle 0"
    assert calls == [
        f"{hold} GPIO18=1",
        f"{hold} GPIO23=1",
        f"{hold} GPIO23=0",
        f"{hold} GPIO22=0",
        f"{hold} GPIO22=1",
    ]


@pytest.mark.parametrize("board", board_names())
def test_reset_script_of_every_board(tmp_path: Path, board: str) -> None:
    b = load_board(board)
    rc, calls = _run_reset(tmp_path, board, "gpioset (libgpiod) v1.6.3", "start")
    assert rc == 0
    driven = {c.split()[-1].split("=")[0] for c in calls}
    expected = {str(g) for g in (b.reset_gpio, b.power_enable_gpio, b.sx1261_reset_gpio) if g is not None}
    assert driven == expected  # USB boards: none
    rc, _ = _run_reset(tmp_path, board, "gpioset (libgpiod) v1.6.3", "bogus")
    assert rc == 2


def _accounts(root: Path, name: str) -> dict[str, list[str]]:
    return {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc" / name).read_text().splitlines()
        if line and not line.startswith("#")
    }


def test_setup_creates_the_system_user_with_systemd_sysusers(tmp_path: Path) -> None:
    res = setup(tmp_path, "--board", "rak2287_pihat")
    assert res.exit_code == 0, res.output
    entry = tmp_path / "etc/sysusers.d/havel.conf"
    assert mode(entry) == 0o644
    assert 'u     havel -  "Havel LoRaWAN gateway" /var/lib/havel /usr/sbin/nologin' in entry.read_text()
    # systemd-sysusers itself wrote the target's account files (not the machine running the test)
    user = _accounts(tmp_path, "passwd")["havel"]
    uid, gid = int(user[2]), int(user[3])
    assert user[5:] == ["/var/lib/havel", "/usr/sbin/nologin"]
    assert 0 < uid < 1000 and _accounts(tmp_path, "group")["havel"][2] == str(gid)  # a system ID
    assert _accounts(tmp_path, "shadow")["havel"][1].startswith("!")  # no login
    assert mode(tmp_path / "etc/shadow") == 0 and mode(tmp_path / "etc/passwd") == 0o644
    assert f"user          havel (uid {uid}, gid {gid})" in res.output
    assert "note" not in res.output
    if os.geteuid() == 0:  # giving files away needs root (CI and this machine run as root)
        data, conf = (tmp_path / "var/lib/havel").stat(), (tmp_path / "etc/havel/gateway.toml").stat()
        assert (data.st_uid, data.st_gid) == (uid, gid)
        assert (conf.st_uid, conf.st_gid) == (0, gid)  # root's file, readable by the daemon's group


def test_an_existing_user_of_the_target_is_kept(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nhavel:x:990:985::/var/lib/havel:/bin/false\n"
    )
    (tmp_path / "etc/group").write_text("root:x:0:\nhavel:x:985:\n")
    passwd = (tmp_path / "etc/passwd").read_text()
    res = setup(tmp_path, "--board", "seeed_wm1302_usb")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "etc/passwd").read_text() == passwd  # systemd-sysusers found it and wrote nothing
    assert "user          havel (uid 990, gid 985)" in res.output
    if os.geteuid() == 0:
        data = (tmp_path / "var/lib/havel").stat()
        assert (data.st_uid, data.st_gid) == (990, 985)


def test_owners_come_from_the_targets_accounts(tmp_path: Path) -> None:
    from havel.gateway.setup import install

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("svc:x:501:502::/srv:/bin/false\n")
    (tmp_path / "etc/group").write_text("svc:x:502:\nreaders:x:503:\n")
    items = [
        install.Item(Path("/srv"), 0o755),
        install.Item(Path("/srv/data"), 0o750, owner="svc"),
        install.Item(Path("/srv/conf.toml"), 0o640, "x = 1\n", owner="root:readers", once=True),
    ]
    said: list[str] = []
    install.apply(items, tmp_path, dry_run=False, say=said.append)
    if os.geteuid() == 0:
        data, conf = (tmp_path / "srv/data").stat(), (tmp_path / "srv/conf.toml").stat()
        assert (data.st_uid, data.st_gid) == (501, 502)
        assert (conf.st_uid, conf.st_gid) == (0, 503)
        assert not any("note" in s for s in said)
    # a missing group is said, not guessed (nor taken from the machine running setup)
    said.clear()
    install.apply(
        [install.Item(Path("/srv/other"), 0o750, owner="svc:no-such-group")],
        tmp_path,
        dry_run=False,
        say=said.append,
    )
    assert any("svc:no-such-group does not exist" in s for s in said)
