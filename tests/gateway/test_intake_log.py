"""The sector intake log on real files: round trips, the ring and its mark, torn and stale sectors, the
buffered fallback on a file system without direct I/O, and refused headers."""

from __future__ import annotations

import os
import random
import resource
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from havel.errors import StorageError
from havel.gateway import intake_log
from havel.gateway.intake_log import SECTOR, IntakeLog, LogFull

REPO = Path(__file__).resolve().parents[2]
SMALL = 16 * SECTOR  # a ring of 15 sectors


def one_sector(i: int) -> bytes:
    return f"frame {i:05d} ".encode() * 20  # 240 bytes: one sector with its header


def opened(path: Path, size: int = SMALL, mark: int = 0) -> tuple[IntakeLog, list[tuple[int, bytes]]]:
    log = IntakeLog.open(path, size)
    return log, log.records_after(mark)


def sector(path: Path, n: int) -> bytes:
    return path.read_bytes()[n * SECTOR : (n + 1) * SECTOR]


def test_round_trip_and_reopen_continue_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    log, old = opened(path)
    assert old == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == SMALL
    assert log.append([b"a", b"bb"]) == [1, 2]
    assert log.append([b"ccc"]) == [3]
    log.close()
    log, old = opened(path)
    assert old == [(1, b"a"), (2, b"bb"), (3, b"ccc")]
    assert log.append([b"d"]) == [4]
    log.close()
    log, old = opened(path, mark=3)
    assert old == [(4, b"d")]
    log.close()


def test_an_empty_file_is_made_into_a_log(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    path.touch()
    log, old = opened(path)
    assert old == [] and path.stat().st_size == SMALL
    log.close()


def test_direct_mode_on_the_repository_file_system() -> None:
    (REPO / ".build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / ".build") as folder:
        log, _ = opened(Path(folder) / "intake.log")
        assert log.mode == "direct", "this file system refused O_DIRECT: run the test on ext4"
        log.append([one_sector(1), b"x" * 5000])
        log.close()
        log, old = opened(Path(folder) / "intake.log")
        assert old == [(1, one_sector(1)), (2, b"x" * 5000)]
        log.close()


@pytest.fixture
def no_direct_io(tmp_path: Path) -> Iterator[Path]:
    """A ramfs mount: a real file system that refuses O_DIRECT (tmpfs takes it on current kernels)."""
    folder = tmp_path / "ramfs"
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "ramfs", "ramfs", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"mount ramfs refused: {r.stderr.strip()}")
        pytest.skip(f"mount ramfs refused (not root?): {r.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_buffered_fallback_where_direct_io_is_refused(no_direct_io: Path) -> None:
    log, _ = opened(no_direct_io / "intake.log")
    assert log.mode == "buffered"
    assert log.append([b"one", b"two"]) == [1, 2]
    log.close()
    log, old = opened(no_direct_io / "intake.log")
    assert old == [(1, b"one"), (2, b"two")] and log.mode == "buffered"
    log.close()


def test_tmpfs_and_forced_buffered_mode() -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        path = Path(folder) / "intake.log"
        log, _ = opened(path)
        assert log.mode in ("direct", "buffered")
        log.append([b"shm"])
        log.close()
        log = IntakeLog.open(path, SMALL, direct=False)
        assert log.mode == "buffered"
        assert log.records_after(0) == [(1, b"shm")]
        assert log.append([b"more"]) == [2]
        log.close()
        assert opened(path)[1] == [(1, b"shm"), (2, b"more")]


def test_ring_overwrites_only_records_below_the_mark(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    log, _ = opened(path)
    assert log.free_fraction() == 1.0
    for i in range(1, 16):
        assert log.append([one_sector(i)]) == [i]
    assert log.free_fraction() == 0.0
    before = path.read_bytes()
    with pytest.raises(LogFull, match="full"):
        log.append([one_sector(16)])
    assert path.read_bytes() == before  # nothing written
    log.set_durable_mark(5)
    assert log.free_fraction() == pytest.approx(5 / 15)
    with pytest.raises(LogFull):  # six do not fit in five: none is written
        log.append([one_sector(i) for i in range(16, 22)])
    assert path.read_bytes() == before
    assert log.append([one_sector(i) for i in range(16, 21)]) == [16, 17, 18, 19, 20]
    with pytest.raises(LogFull):
        log.append([one_sector(21)])
    log.close()
    log, old = opened(path, mark=5)
    assert [s for s, _ in old] == list(range(6, 21))
    assert all(p == one_sector(s) for s, p in old)
    log.close()


def test_a_mark_older_than_the_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    log, _ = opened(path)
    for i in range(1, 16):
        log.append([one_sector(i)])
    log.set_durable_mark(15)
    log.append([one_sector(16), one_sector(17)])  # records 1 and 2 overwritten
    log.close()
    log = IntakeLog.open(path, SMALL)
    with pytest.raises(StorageError, match="after the mark 0 start at 3"):
        log.records_after(0)
    log.close()


def test_records_of_several_sectors_and_a_batch_that_wraps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "intake.log"
    log, _ = opened(path, size=64 * SECTOR)
    big = bytes(random.Random(1).randbytes(16 * 1024))  # a datagram with 16 rxpk: 33 sectors
    writes: list[int] = []
    real = os.pwrite
    monkeypatch.setattr(
        os, "pwrite", lambda fd, data, off: writes.append(off // SECTOR) or real(fd, data, off)
    )
    assert log.append([big, b"after"]) == [1, 2]
    assert writes == [1]  # one write call for the batch
    assert [log.append([one_sector(i)]) for i in range(3, 23)] == [[i] for i in range(3, 23)]
    log.set_durable_mark(22)  # head at sector 55: 8 sectors left before the end
    writes.clear()
    assert log.append([one_sector(23), one_sector(24), b"y" * 4000, one_sector(26)]) == [23, 24, 25, 26]
    assert writes == [55, 1]  # two writes: 23 and 24 at 55..56, then 25 (8 sectors) and 26 from sector 1
    monkeypatch.undo()
    assert path.read_bytes()[57 * SECTOR :] == bytes(7 * SECTOR)  # the skipped tail is not written
    log.close()
    log, old = opened(path, size=64 * SECTOR, mark=22)
    assert old == [(23, one_sector(23)), (24, one_sector(24)), (25, b"y" * 4000), (26, one_sector(26))]
    log.close()
    log = IntakeLog.open(path, 64 * SECTOR)
    with pytest.raises(StorageError, match="start at 2"):  # record 1 was overwritten by 25 and 26
        log.records_after(0)
    log.close()


def test_torn_last_record_ends_the_replay(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    log, _ = opened(path)
    log.append([b"one"])
    log.append([b"two"])
    log.append([b"three"])
    log.close()
    data = bytearray(path.read_bytes())
    data[3 * SECTOR + intake_log.RECORD_OVERHEAD + 1] ^= 0x40  # a flipped bit in the third payload
    path.write_bytes(bytes(data))
    log, old = opened(path)
    assert old == [(1, b"one"), (2, b"two")]
    assert log.append([b"again"]) == [3]
    log.close()
    data = bytearray(path.read_bytes())
    data[3 * SECTOR : 4 * SECTOR] = bytes(SECTOR)  # the sector never written at all
    path.write_bytes(bytes(data))
    log, old = opened(path)
    assert old == [(1, b"one"), (2, b"two")]
    log.close()


def test_a_torn_batch_cannot_hide_later_records(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    log, _ = opened(path)
    log.append([b"kept"])
    log.append([b"a", b"b", b"c"])  # one write; the power cut tears its middle sector
    log.close()
    data = bytearray(path.read_bytes())
    data[3 * SECTOR : 4 * SECTOR] = bytes(SECTOR)
    path.write_bytes(bytes(data))
    log, old = opened(path)
    assert old == [(1, b"kept"), (2, b"a")]  # "c" follows a gap: never acknowledged, erased
    assert log.append([b"new"]) == [3]
    log.close()  # a second crash before the database took "new"
    log, old = opened(path)
    assert old == [(1, b"kept"), (2, b"a"), (3, b"new")]
    log.close()


def test_stale_sectors_of_an_earlier_lap_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    log, _ = opened(path)
    for i in range(1, 16):
        log.append([one_sector(i)])
    log.set_durable_mark(15)
    for i in range(16, 29):
        log.append([one_sector(i)])  # sectors 1..13
    log.set_durable_mark(28)
    assert log.append([b"z" * 1200]) == [29]  # three sectors: wraps to 1, sectors 14 and 15 keep 14 and 15
    log.close()
    assert sector(path, 14)[4:12] == (14).to_bytes(8, "little")
    log, old = opened(path, mark=28)
    assert old == [(29, b"z" * 1200)]
    assert log.next_seq == 30
    log.close()


def test_headers_of_another_size_or_kind_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    opened(path)[0].close()
    with pytest.raises(StorageError, match=f"{SMALL} bytes, {2 * SMALL} configured"):
        IntakeLog.open(path, 2 * SMALL)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="no valid log header") as e:
        IntakeLog.open(path, SMALL)
    assert "move" in str(e.value)
    noise = tmp_path / "noise.log"
    noise.write_bytes(random.Random(2).randbytes(SMALL))
    with pytest.raises(StorageError, match="no valid log header"):
        IntakeLog.open(noise, SMALL)
    assert noise.stat().st_size == SMALL  # left as it was


def test_random_bytes_in_the_ring_open_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    opened(path, size=256 * SECTOR)[0].close()
    data = bytearray(path.read_bytes())
    rng = random.Random(3)
    data[SECTOR:] = rng.randbytes(len(data) - SECTOR)
    for at in range(SECTOR, len(data), 7 * SECTOR):  # record magic with garbage behind it
        data[at : at + 4] = intake_log.RECORD_MAGIC
    path.write_bytes(bytes(data))
    log, old = opened(path, size=256 * SECTOR)
    assert old == []
    assert log.append([b"fresh", b"start"]) == [1, 2]
    log.close()
    assert opened(path, size=256 * SECTOR)[1] == [(1, b"fresh"), (2, b"start")]


def test_append_needs_the_mark_first(tmp_path: Path) -> None:
    log = IntakeLog.open(tmp_path / "intake.log", SMALL)
    with pytest.raises(StorageError, match="records_after"):
        log.append([b"x"])
    log.close()


def test_a_failing_write_is_a_storage_error_and_the_append_can_be_retried(tmp_path: Path) -> None:
    path = tmp_path / "intake.log"
    log, _ = opened(path)
    log.append([one_sector(i) for i in range(1, 9)])  # sectors 1..8
    # a real failing write: past RLIMIT_FSIZE the kernel refuses it (EFBIG), as a dying card refuses with EIO
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (9 * SECTOR, hard))
    try:
        with pytest.raises(StorageError, match=f"intake log {path}: write at sector 9 failed"):
            log.append([one_sector(9)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert log.append([one_sector(9)]) == [9]  # nothing was counted for the failed append
    log.close()
    assert [s for s, _ in opened(path)[1]] == list(range(1, 10))
