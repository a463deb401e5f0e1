"""One cell of ``bench/storage_floor.py``: an ext4 image loop-mounted with given options and its journal on
a device of its own, a strategy's appends paced in it, and what the devices, the journal and the process
counted per append."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from storage_strategies import FS_PAGE, SECTOR, make_strategy


def parse_disk_stat(text: str) -> int:
    """Sectors written, from a ``/sys/block/<dev>/stat`` line (field 7)."""
    return int(text.split()[6])


def parse_jbd2_transactions(text: str) -> int:
    """Committed transactions, from a ``/proc/fs/jbd2/<dev>/info`` file's first line."""
    return int(text.split()[0])


def parse_write_bytes(text: str) -> int:
    """``write_bytes`` from a ``/proc/<pid>/io`` file."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "write_bytes":
            return int(value)
    raise ValueError("no write_bytes in the I/O counters")


def sectors_of(dev: str | None) -> int:
    return parse_disk_stat(Path(f"/sys/block/{dev}/stat").read_text()) if dev else 0


def jbd2_commits(dev: str | None) -> int:
    """Transactions committed by the journal on ``dev`` (an external journal's device, or a file system's
    internal journal, shown as ``<dev>-8``); 0 when the kernel does not show it."""
    if not dev:
        return 0
    for name in (dev, f"{dev}-8"):
        with contextlib.suppress(OSError):
            return parse_jbd2_transactions(Path(f"/proc/fs/jbd2/{name}/info").read_text())
    return 0


def write_bytes() -> int:
    return parse_write_bytes(Path("/proc/self/io").read_text())


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def ext4_cell(root: Path, options: str, internal_journal: bool, lock: Path) -> Iterator[tuple[str, str]]:
    """An ext4 image loop-mounted at ``root/mnt`` with ``options``; yields the names of its data device
    and of the device its journal writes to (its own loop device, or the data device's when internal)."""
    image, jimage, mnt = root / "data.ext4", root / "journal.ext4", root / "mnt"
    mnt.mkdir()
    jdev = ""
    mkfs = ["mkfs.ext4", "-q", "-F", "-b", str(FS_PAGE), "-E", "lazy_itable_init=0,lazy_journal_init=0"]
    opts = f"loop,{options}"
    with lock.open("w") as held:  # loop devices are taken one cell at a time
        fcntl.flock(held, fcntl.LOCK_EX)
        run(["truncate", "-s", "256M", str(image)])
        if not internal_journal:
            run(["truncate", "-s", "32M", str(jimage)])
            jdev = run(["losetup", "-f", "--show", str(jimage)])
            run(["mkfs.ext4", "-q", "-F", "-O", "journal_dev", "-b", str(FS_PAGE), jdev])
            mkfs += ["-J", f"device={jdev}"]
            opts += f",journal_path={jdev}"
        run([*mkfs, str(image)])
        run(["mount", "-o", opts, str(image), str(mnt)])
    try:
        dev = Path(run(["findmnt", "-n", "-o", "SOURCE", str(mnt)])).name
        yield dev, Path(jdev).name if jdev else dev
    finally:
        with lock.open("w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            subprocess.run(["umount", str(mnt)], check=False)
            if jdev:
                subprocess.run(["losetup", "-d", jdev], check=False)
        image.unlink(missing_ok=True)
        jimage.unlink(missing_ok=True)


@contextlib.contextmanager
def raw_device(root: Path, lock: Path) -> Iterator[str]:
    """A 16 MiB loop device with no file system on it; yields its name."""
    image = root / "raw.img"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        run(["truncate", "-s", "16M", str(image)])
        dev = run(["losetup", "-f", "--show", str(image)])
    try:
        yield Path(dev).name
    finally:
        with lock.open("w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            subprocess.run(["losetup", "-d", dev], check=False)
        image.unlink(missing_ok=True)


def counters(dev: str | None, jdev: str | None) -> tuple[int, int, int, int]:
    """Sectors written to the data device and to the journal's own device (0 when the journal is inside
    the data device), jbd2 commits, and the process's ``write_bytes``."""
    return sectors_of(dev), sectors_of(jdev) if jdev != dev else 0, jbd2_commits(jdev), write_bytes()


def per_append(
    before: tuple[int, int, int, int],
    after: tuple[int, int, int, int],
    n: int,
    mounted: bool,
    own_journal: bool,
) -> dict[str, float | None]:
    """Bytes per append from two readings of ``counters``: device (data and journal), the journal's share,
    jbd2 commits, ``write_bytes``."""
    data, journal, commits, wbytes = (a - b for a, b in zip(after, before, strict=True))
    return {
        "device": (data + journal) * SECTOR / n if mounted else None,
        "jbd2": journal * SECTOR / n if mounted and own_journal else None,
        "commits": commits / n if mounted else None,
        "write_bytes": wbytes / n,
    }


def measure(spec: dict[str, object], where: Path, dev: str | None, jdev: str | None) -> dict[str, object]:
    """The cell's appends, paced, and what they cost per append."""
    n, interval = int(spec["appends"]), float(spec["interval"])  # type: ignore[call-overload, arg-type]
    strategy = make_strategy(spec, where, n)
    try:
        strategy.setup()
    except OSError as e:
        return {**spec, "error": f"{type(e).__name__}: {e.strerror or e}"}
    subprocess.run(["sync", "-f", str(where)], check=True)
    time.sleep(1.0 if dev else 0.0)  # (a mount: let the sync's journal commit settle)
    before = counters(dev, jdev)
    start = time.monotonic()
    for i in range(n):
        pause = start + i * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        strategy.append(i)
    pause = start + n * interval - time.monotonic()  # the window: the kernel's timers run in it too
    if pause > 0:
        time.sleep(pause)
    after = counters(dev, jdev)
    strategy.close()
    return {**spec, **per_append(before, after, n, mounted=dev is not None, own_journal=jdev != dev)}


def run_cell(spec: dict[str, object]) -> dict[str, object]:
    """A cell on its own mount, or (``mount`` None) in a folder of ``root`` without one."""
    root = Path(str(spec["root"]))
    if spec["mount"] is None:
        where = Path(tempfile.mkdtemp(dir=root))
        return measure(spec, where, None, None)
    lock = Path(str(spec["lock"]))
    if spec["strategy"] == "direct-dsync-raw":
        with raw_device(root, lock) as dev:
            return measure(spec, Path("/dev") / dev, dev, None)
    with ext4_cell(root, str(spec["mount"]), bool(spec["internal_journal"]), lock) as (dev, jdev):
        return measure(spec, root / "mnt", dev, jdev)
