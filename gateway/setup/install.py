"""The plan of ``havel gateway setup``: which folders and files, with which modes and owners; applied
under a root folder (``/`` on the Pi, a temporary folder in tests) or only printed (``--dry-run``).

Applying is idempotent: a file whose content and mode are already right is left alone, and the gateway's
TOML is written only when there is none (it holds the operator's edits and the broker credentials). The
gateway's system user comes from a sysusers.d entry (:mod:`havel.gateway.setup.sysuser`), created after the
files are written and before any file is given to it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from havel.errors import ConfigError, StorageError
from havel.gateway.setup import files, sysuser
from havel.gateway.setup.boards import Board
from havel.gateway.setup.files import Options
from havel.gateway.setup.pktfwd import global_conf


@dataclass(frozen=True)
class Item:
    """One folder (``content`` None) or file on the target system."""

    path: Path  # absolute on the target system
    mode: int
    content: str | None = None
    owner: str | None = None  # "user" (its group of the same name) or "user:group"; None: whoever runs setup
    once: bool = False  # write only when absent

    @property
    def is_dir(self) -> bool:
        return self.content is None


def plan(o: Options) -> list[Item]:
    """Everything setup writes, in order (folders before their files)."""
    conf = json.dumps(global_conf(o.board, o.gateway_eui, o.udp_port), indent=2) + "\n"
    unit = files.UNIT_DIR
    return [
        Item(sysuser.CONF.parent, 0o755),
        Item(sysuser.CONF, 0o644, sysuser.sysusers_conf()),
        Item(files.ETC, 0o755),
        # readable by the daemon's group, not by everyone: it will hold the broker credentials
        Item(files.CONFIG, 0o640, files.gateway_toml(o), owner=f"root:{files.USER}", once=True),
        Item(files.PKTFWD_CONF.parent, 0o755),
        Item(files.PKTFWD_CONF, 0o644, conf),
        Item(files.RESET_SCRIPT.parent, 0o755),
        Item(files.RESET_SCRIPT, 0o755, files.reset_script(o.board)),
        Item(unit, 0o755),
        Item(unit / files.GATEWAY_UNIT, 0o644, files.gateway_unit(o)),
        Item(unit / files.PKTFWD_UNIT, 0o644, files.pktfwd_unit(o)),
        Item(files.POLKIT_RULE.parent, 0o755),
        Item(files.POLKIT_RULE, 0o644, files.polkit_rule()),
        # the daemon's database and keys: only its own user may enter
        Item(files.DATA_DIR, 0o750, owner=files.USER),
    ]


def target(root: Path, path: Path) -> Path:
    """``path`` (absolute on the target system) under ``root``."""
    return root / path.relative_to("/")


def _state(item: Item, where: Path) -> str:
    """create, update, unchanged or kept (a once-only file that exists)."""
    if not where.exists():
        return "create"
    if item.once:
        return "kept"
    if item.is_dir:
        return "unchanged" if (where.stat().st_mode & 0o7777) == item.mode else "update"
    same = where.read_text(encoding="utf-8") == item.content
    return "unchanged" if same and (where.stat().st_mode & 0o7777) == item.mode else "update"


def apply(items: list[Item], root: Path, *, dry_run: bool, say: Callable[[str], None]) -> dict[str, int]:
    """Write (or with ``dry_run`` only print) the items under ``root``, create the system user when the items
    hold its sysusers.d entry, then give the items their owners; returns counts by state."""
    counts: dict[str, int] = {}
    for item in items:
        where = target(root, item.path)
        state = _state(item, where)
        counts[state] = counts.get(state, 0) + 1
        verb = {"create": "would create", "update": "would update"}.get(state, state) if dry_run else state
        owner = f", owner {item.owner}" if item.owner else ""
        say(f"{verb:13} {item.path}{'/' if item.is_dir else ''} (mode {item.mode:04o}{owner})")
        if dry_run:
            if item.content is not None and state in ("create", "update"):
                say("".join(f"    | {line}\n" for line in item.content.splitlines()).rstrip("\n"))
            continue
        if state in ("create", "update"):
            _write(item, where)
    if any(item.path == sysuser.CONF for item in items):
        sysuser.create(root, dry_run=dry_run, say=say)
    if not dry_run:
        for item in items:
            if item.owner:  # (also for a kept file: it may predate the user)
                _chown(item, target(root, item.path), root, say)
    return counts


def _write(item: Item, where: Path) -> None:
    try:
        if item.is_dir:
            where.mkdir(parents=True, exist_ok=True)
            os.chmod(where, item.mode)
            return
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = where.with_name(f".{where.name}.havel-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, item.mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            assert item.content is not None
            f.write(item.content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, item.mode)  # the umask may have taken bits off
        os.replace(tmp, where)
    except OSError as exc:
        raise StorageError(f"cannot write {where}: {exc.strerror}", hint="run setup as root") from None


def _chown(item: Item, where: Path, root: Path, say: Callable[[str], None]) -> None:
    assert item.owner is not None
    ids = sysuser.lookup(item.owner, root)
    if ids is None:
        say(f"  note: {item.owner} does not exist, {item.path} keeps its owner; run setup again once it does")
        return
    st = where.stat()
    if (st.st_uid, st.st_gid) == ids:
        return
    try:
        os.chown(where, *ids)
    except PermissionError:
        say(f"  note: cannot give {item.path} to {item.owner} (not root)")


# ---------------------------------------------------------------------------------------- the Pi itself

SPI_HINT = (
    "enable SPI: `sudo raspi-config nonint do_spi 0`, or add `dtparam=spi=on` to /boot/firmware/config.txt, "
    "then reboot"
)
I2C_HINT = (
    "enable I2C (the concentrator's temperature sensor): `sudo raspi-config nonint do_i2c 0`, or add "
    "`dtparam=i2c_arm=on` to /boot/firmware/config.txt, then reboot"
)


def check_buses(board: Board, root: Path) -> list[str]:
    """What the board needs from the kernel that is missing, each with how to enable it."""
    problems = []
    if "spi" in board.needs and not target(root, Path(board.com_path)).exists():
        problems.append(f"{board.com_path} is missing: SPI is off. {SPI_HINT}")
    if "i2c" in board.needs and not target(root, Path("/dev/i2c-1")).exists():
        problems.append(f"/dev/i2c-1 is missing: I2C is off. {I2C_HINT}")
    if board.interface == "usb" and not target(root, Path(board.com_path)).exists():
        problems.append(f"{board.com_path} is missing: is the USB concentrator plugged in?")
    return problems


COMMIT_S = 60  # the ext4 journal interval a roof's data directory wants (docs/storage-wear.md)


def check_mount(data_dir: Path, mounts: str | None = None) -> list[str]:
    """What the data directory's mount lacks for the SD card (``mounts``: /proc/self/mounts' text): on
    ext4, ``commit=60``. The gateway fsyncs what must be durable; the default 5 s journal commit only adds
    a metadata write every few seconds, about 4 kB per uplink at a city's pace (docs/storage-wear.md)."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return []
    where, rest = data_dir.absolute(), Path()
    while not where.exists() and where != where.parent:  # (symlinks resolved where the path exists)
        where, rest = where.parent, Path(where.name) / rest
    where = where.resolve() / rest
    best: tuple[str, str, str, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        device, point, fstype, options = fields[0], fields[1].replace("\\040", " "), fields[2], fields[3]
        inside = where == Path(point) or Path(point) in where.parents
        if inside and (best is None or len(point) > len(best[1])):
            best = (device, point, fstype, options)
    if best is None or best[2] not in ("ext4", "ext3"):
        return []
    device, point, _, options = best
    commit = next((o.split("=", 1)[1] for o in options.split(",") if o.startswith("commit=")), None)
    if commit is not None and commit.isdigit() and int(commit) >= COMMIT_S:
        return []
    return [
        f"{point} (the data directory's file system, {device}) is mounted with "
        f"{'commit=' + commit if commit else 'the default 5 s journal commit'}: the journal then writes "
        f"about 4 kB per uplink to the SD card. Add commit={COMMIT_S} to its options in /etc/fstab "
        f"(e.g. `defaults,noatime,commit={COMMIT_S}`), then `sudo mount -o remount,commit={COMMIT_S} {point}`"
    ]


def eui_from_mac(root: Path) -> int:
    """A gateway EUI from the Pi's Ethernet (or Wi-Fi) MAC address: EUI-48 to EUI-64 by inserting FFFE."""
    for name in ("eth0", "end0", "wlan0"):
        path = target(root, Path(f"/sys/class/net/{name}/address"))
        try:
            mac = path.read_text(encoding="ascii").strip().replace(":", "")
        except OSError:
            continue
        try:
            value = int(mac, 16)
        except ValueError:
            continue
        if len(mac) == 12 and value:
            return int(mac[:6] + "FFFE" + mac[6:], 16)
    raise ConfigError(
        "no network interface to take a gateway EUI from", hint="pass --gateway-eui (16 hex digits)"
    )
