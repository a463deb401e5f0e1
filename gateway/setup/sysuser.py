"""The gateway's system user: declared in a sysusers.d entry and created by ``systemd-sysusers``.

This is how Debian packages make their system users (sysusers.d(5)): the entry says what the user is, the
tool creates it when it is missing (with its group of the same name, an ID from the system range and the
login disabled) and changes nothing when it exists, so a re-run of setup is a no-op. ``--root DIR`` is
passed on, so the user lands in ``DIR/etc/passwd`` (an image, a test) and not on the machine running setup.

Owners are then looked up in the target's own ``etc/passwd`` and ``etc/group``: under another root the
running machine's accounts say nothing about the image's.
"""

from __future__ import annotations

import grp
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from havel.gateway.setup import files

CONF = Path("/etc/sysusers.d/havel.conf")
TOOL = "systemd-sysusers"


def sysusers_conf() -> str:
    """The sysusers.d entry: user and group ``havel``, a free system ID, home the data folder, no login."""
    return f"""# The Havel gateway's system user. Written by `havel gateway setup`, which then runs
# `systemd-sysusers {CONF}`: it creates the user (and its group) when missing and changes nothing otherwise.
#Type Name  ID GECOS                   Home directory Shell
u     {files.USER} -  "Havel LoRaWAN gateway" {files.DATA_DIR} /usr/sbin/nologin
"""


def command(root: Path) -> list[str]:
    """The ``systemd-sysusers`` command line for the entry under ``root``.

    With ``--root`` the tool does not look a file argument up under the root, so it gets the full path."""
    if root == Path("/"):
        return [TOOL, str(CONF)]
    return [TOOL, f"--root={root}", str(root / CONF.relative_to("/"))]


def create(root: Path, *, dry_run: bool, say: Callable[[str], None]) -> bool:
    """Run ``systemd-sysusers`` on the entry (``dry_run``: only say so); True when the user exists after."""
    cmd = command(root)
    if dry_run:
        say(f"{'would run':13} {' '.join(cmd)}")
        return False
    exe = shutil.which(TOOL)
    if exe is None:
        say(f"  note: {TOOL} is missing (Debian: `apt-get install systemd`), {files.USER} was not created")
        return False
    try:
        proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        say(f"  note: {TOOL} did not run ({exc}), the user {files.USER} was not created")
        return False
    # it says "Creating user ..." on stderr when it creates, nothing when all exist
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip():
            say(f"  {TOOL}: {line.strip()}")
    if proc.returncode != 0:
        say(f"  note: {TOOL} failed (exit {proc.returncode}), the user {files.USER} was not created")
        return False
    ids = lookup(files.USER, root)
    if ids is None:
        say(f"  note: {TOOL} ran but {files.USER} is not in {root / 'etc/passwd'}")
        return False
    say(f"{'user':13} {files.USER} (uid {ids[0]}, gid {ids[1]})")
    return True


def _table(path: Path) -> dict[str, list[str]]:
    """An ``etc/passwd`` or ``etc/group`` file as name -> its colon-separated fields."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    rows = (line.split(":") for line in text.splitlines() if line and not line.startswith("#"))
    return {row[0]: row for row in rows if len(row) >= 4}


def _user(name: str, root: Path) -> tuple[int, int] | None:
    """(uid, primary gid) of a user of the target system."""
    if root == Path("/"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        return pw.pw_uid, pw.pw_gid
    if name == "root":  # uid 0 everywhere, also in an image whose passwd holds only our user
        return 0, 0
    row = _table(root / "etc/passwd").get(name)
    try:
        return (int(row[2]), int(row[3])) if row else None
    except ValueError:
        return None


def _group(name: str, root: Path) -> int | None:
    if root == Path("/"):
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None
    if name == "root":
        return 0
    row = _table(root / "etc/group").get(name)
    try:
        return int(row[2]) if row else None
    except ValueError:
        return None


def lookup(owner: str, root: Path) -> tuple[int, int] | None:
    """(uid, gid) of ``user`` (its primary group) or ``user:group`` on the target system; None when either
    does not exist."""
    user, _, group = owner.partition(":")
    ids = _user(user, root)
    if ids is None:
        return None
    if not group:
        return ids
    gid = _group(group, root)
    return None if gid is None else (ids[0], gid)
