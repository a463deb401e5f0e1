"""A durable intake log of 512-byte sectors: received frames are on the device before they are acknowledged.

The file is written whole once when it is made (zeros: later writes then change no extent and grow nothing),
and then used as a ring. Each append is one ``O_DIRECT|O_DSYNC`` write of whole sectors (two when the batch
wraps), which costs its own size on the device and no journal commit of its own (docs/storage-wear.md).
Where the file system refuses direct I/O the log writes through the page cache and ``fdatasync``.

On-disk format (little-endian):

- sector 0, written once: ``b"HAVELLOG"``, format version u16, sector size u16, sector count u32, a random
  16-byte log id, CRC32 of those fields (u32); the rest zeros;
- sectors 1..N-1, the ring: each record starts at a sector with a 24-byte header, ``b"HVR1"``, sequence
  number u64, payload length u32, number of sectors u16, flags u16 (0), CRC32 u32 over the log id, the
  header fields before it and the payload; then the payload; zeros up to the end of its last sector. A
  record never wraps: one that does not fit before the end starts at sector 1.

The caller keeps the mark: the sequence number up to which its database durably holds the records. After
:meth:`IntakeLog.open` it calls :meth:`IntakeLog.records_after` with that mark (which also tells the log what
it may overwrite), and :meth:`IntakeLog.set_durable_mark` after each batch commit.

Choices: an existing file of another size, or with a damaged header, is refused (StorageError with a hint
to move it aside), never rebuilt, since it may hold acknowledged frames. Sequence numbers continue after
both the highest record found and the mark, so they never repeat and are never at or below the mark.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import mmap
import os
import struct
import zlib
from pathlib import Path

from havel.errors import StorageError
from havel.gateway.intake_log_file import SECTOR, create, open_for_writes, read_header

RECORD_MAGIC = b"HVR1"
RECORD_HEADER = struct.Struct("<4sQIHH")  # followed by the record's CRC32 (u32)
RECORD_OVERHEAD = RECORD_HEADER.size + 4
MAX_PAYLOAD = 65_507  # the largest UDP datagram
MIN_SECTORS = 4
ZEROS = bytes(SECTOR)


class LogFull(StorageError):
    """The ring has no room for the batch without overwriting records the database does not hold yet."""


def sectors_for(length: int) -> int:
    """How many sectors a record with ``length`` payload bytes takes."""
    return (RECORD_OVERHEAD + length + SECTOR - 1) // SECTOR


class IntakeLog:
    """A ring of sector records in one file; see the module's text for the format and the mark.

    One thread at a time: the gateway's intake thread appends, and sets the mark after its batch commit."""

    def __init__(self, path: Path, fd: int, mode: str, sectors: int, log_id: bytes, image: bytes) -> None:
        self.path = path
        self.mode = mode  # "direct" or "buffered"
        self.sectors = sectors
        self.log_id = log_id
        self.applied_mark = 0
        self.duplicates = 0  # records whose sequence number was seen twice at the scan (kept: the first)
        self._fd = fd
        self._image: bytes | None = image  # the file as read at open, until records_after has used it
        self._ready = False
        self._next_seq = 1
        self._head = 1  # the sector the next record starts at (or wraps from)
        self._unapplied: collections.deque[tuple[int, int, int]] = collections.deque()  # (seq, start, n)
        self._buf = mmap.mmap(-1, 64 * SECTOR)  # page-aligned, as O_DIRECT needs; grown when a batch needs

    # ---- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], size_bytes: int = 4 << 20, *, direct: bool = True
    ) -> IntakeLog:
        """Open the log at ``path``, making it (``size_bytes``, zeros, mode 0600) if it is missing or empty.

        An existing log of another size, or one whose header is damaged, is refused: its records may not be
        applied yet. ``direct=False`` writes through the page cache even where direct I/O would work."""
        path = Path(path)
        if size_bytes % SECTOR or size_bytes < MIN_SECTORS * SECTOR:
            raise ValueError(
                f"intake log size {size_bytes}: a multiple of {SECTOR} bytes, at least {MIN_SECTORS} sectors"
            )
        try:
            if not path.exists() or path.stat().st_size == 0:
                create(path, size_bytes)
            image = path.read_bytes()
            sectors, log_id = read_header(path, image, size_bytes)
            fd, mode = open_for_writes(path, direct)
        except OSError as e:
            raise StorageError(f"intake log {path}: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise StorageError(f"intake log {path} is in use by another process", hint="stop it first") from e
        return cls(path, fd, mode, sectors, log_id, image)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> IntakeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- replay --------------------------------------------------------------------------------------

    def records_after(self, mark: int) -> list[tuple[int, bytes]]:
        """The records with sequence numbers after ``mark``, in order, up to the first missing or torn one.

        ``mark`` must be what the database durably holds: records up to it may be overwritten from now
        on. Intact records after a gap are left over from a batch whose write was torn (never
        acknowledged); they are erased so that later appends, which continue right after the last record
        returned, can never be hidden behind that gap at a later replay."""
        if self._ready and mark < self.applied_mark:
            raise ValueError(f"mark {mark} is below the log's applied mark {self.applied_mark}")
        image = self._image if self._image is not None else self._read_all()
        self._image = None
        found = self._scan(image)
        chain: list[int] = []
        seq = mark + 1
        while seq in found:
            chain.append(seq)
            seq += 1
        last = chain[-1] if chain else mark
        leftovers = [s for s in found if s > last]
        if leftovers and not chain and mark not in found:
            raise StorageError(
                f"intake log {self.path}: its records after the mark {mark} start at {min(leftovers)}",
                hint="the database is older than the log; move the log aside to start a new one",
            )
        for s in leftovers:
            self._write_at(found[s][0], ZEROS)
            del found[s]
        self.applied_mark = mark
        self._next_seq = max([mark, *found]) + 1
        self._unapplied = collections.deque((s, *found[s]) for s in chain)
        if found:
            start, n = found[max(found)]
            self._head = start + n
        self._ready = True
        return [(s, self._payload(image, found[s][0])) for s in chain]

    def last_run_start(self) -> int | None:
        """Before :meth:`records_after`: the first sequence number of the run of consecutive records that
        ends at the highest one in the ring (None when it holds none). A database that does not know this
        log (another log id) replays from there: older runs are left from earlier laps of the ring."""
        if self._image is None:
            self._image = self._read_all()
        duplicates = self.duplicates
        found = self._scan(self._image)
        self.duplicates = duplicates  # (counted by the scan of records_after)
        if not found:
            return None
        seq = max(found)
        while seq - 1 in found:
            seq -= 1
        return seq

    def _read_all(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as e:
            raise StorageError(f"intake log {self.path}: {e.strerror or e}") from e

    def _scan(self, image: bytes) -> dict[int, tuple[int, int]]:
        """Every intact record in the ring: sequence number -> (first sector, number of sectors)."""
        found: dict[int, tuple[int, int]] = {}
        view = memoryview(image)
        i = 1
        while i < self.sectors:
            off = i * SECTOR
            if image[off : off + 4] == RECORD_MAGIC:
                _, seq, length, n, _flags = RECORD_HEADER.unpack_from(image, off)
                if length <= MAX_PAYLOAD and n == sectors_for(length) and i + n <= self.sectors:
                    end = off + RECORD_OVERHEAD + length
                    (crc,) = struct.unpack_from("<I", image, off + RECORD_HEADER.size)
                    want = zlib.crc32(
                        view[off + RECORD_OVERHEAD : end],
                        zlib.crc32(view[off : off + RECORD_HEADER.size], zlib.crc32(self.log_id)),
                    )
                    if crc == want:
                        if seq in found:
                            self.duplicates += 1
                        else:
                            found[seq] = (i, n)
                        i += n
                        continue
            i += 1
        return found

    @staticmethod
    def _payload(image: bytes, start: int) -> bytes:
        off = start * SECTOR
        length = RECORD_HEADER.unpack_from(image, off)[2]
        return image[off + RECORD_OVERHEAD : off + RECORD_OVERHEAD + length]

    # ---- appending -----------------------------------------------------------------------------------

    def append(self, payloads: list[bytes]) -> list[int]:
        """Write ``payloads`` as records with consecutive sequence numbers; return those numbers once the
        records are durable. Raises :class:`LogFull` (writing nothing) when they do not fit."""
        if not self._ready:
            raise StorageError(f"intake log {self.path}: records_after(mark) must be called before append")
        if not payloads:
            return []
        for p in payloads:
            if len(p) > MAX_PAYLOAD:
                raise ValueError(f"intake log record of {len(p)} bytes: at most {MAX_PAYLOAD}")
        starts = self._place([sectors_for(len(p)) for p in payloads])
        first = starts[0]
        wrap = next((k for k in range(1, len(starts)) if starts[k] < starts[k - 1]), len(starts))
        total = sum(sectors_for(len(p)) for p in payloads) * SECTOR
        if total > len(self._buf):
            self._buf.close()
            self._buf = mmap.mmap(-1, 1 << (total - 1).bit_length())
        buf = self._buf
        seqs = list(range(self._next_seq, self._next_seq + len(payloads)))
        off = 0
        split = 0
        for k, (seq, p) in enumerate(zip(seqs, payloads, strict=True)):
            if k == wrap:
                split = off
            n = sectors_for(len(p))
            RECORD_HEADER.pack_into(buf, off, RECORD_MAGIC, seq, len(p), n, 0)
            crc = zlib.crc32(
                p, zlib.crc32(memoryview(buf)[off : off + RECORD_HEADER.size], zlib.crc32(self.log_id))
            )
            struct.pack_into("<I", buf, off + RECORD_HEADER.size, crc)
            body = off + RECORD_OVERHEAD
            buf[body : body + len(p)] = p
            end = off + n * SECTOR
            buf[body + len(p) : end] = memoryview(ZEROS)[: end - body - len(p)]  # (less than a sector)
            off = end
        view = memoryview(buf)
        if wrap < len(starts):
            self._write_at(first, view[:split])
            self._write_at(starts[wrap], view[split:off])
        else:
            self._write_at(first, view[:off])
        for seq, start, p in zip(seqs, starts, payloads, strict=True):
            self._unapplied.append((seq, start, sectors_for(len(p))))
        self._head = starts[-1] + sectors_for(len(payloads[-1]))
        self._next_seq = seqs[-1] + 1
        return seqs

    def _place(self, sizes: list[int]) -> list[int]:
        """The first sector of each record, or LogFull when one would overwrite an unapplied record.

        The writable sectors run from the head forward (round the ring) to the first sector of the
        oldest unapplied record; a record that does not fit before the end also uses up the skipped tail."""
        ring = self.sectors - 1
        head = self._head
        free = self._free_sectors()
        used = 0
        starts: list[int] = []
        for n in sizes:
            if head + n <= self.sectors:
                start, cost = head, n
            else:
                start, cost = 1, self.sectors - head + n
            if not starts and not self._unapplied:
                cost, free = n, ring  # nothing to protect but the batch's own first record
            used += cost
            if n > ring or used > free:
                raise LogFull(
                    f"intake log {self.path} is full: {sum(sizes)} sectors wanted, about {free} free "
                    f"(records after {self.applied_mark} are not applied yet)",
                    hint="commit a batch to the database and set the durable mark",
                )
            starts.append(start)
            head = start + n
        return starts

    def _free_sectors(self) -> int:
        ring = self.sectors - 1
        if not self._unapplied:
            return ring
        head = 1 if self._head >= self.sectors else self._head
        return (self._unapplied[0][1] - head) % ring

    def set_durable_mark(self, seq: int) -> None:
        """The database durably holds every record up to ``seq``: their sectors may be written again."""
        if seq >= self._next_seq:
            raise ValueError(f"mark {seq}: the last record appended is {self._next_seq - 1}")
        self.applied_mark = max(self.applied_mark, seq)
        while self._unapplied and self._unapplied[0][0] <= self.applied_mark:
            self._unapplied.popleft()

    def free_fraction(self) -> float:
        """The share of the ring that may be written before :meth:`append` raises LogFull (1.0 when empty)."""
        return self._free_sectors() / (self.sectors - 1)

    @property
    def next_seq(self) -> int:
        return self._next_seq

    # ---- writing -------------------------------------------------------------------------------------

    def _write_at(self, sector: int, data: bytes | memoryview) -> None:
        """Write whole sectors at ``sector``, durably; an OSError becomes StorageError naming the file."""
        if isinstance(data, bytes):  # (an erasure: copy into the aligned buffer)
            self._buf[: len(data)] = data
            data = memoryview(self._buf)[: len(data)]
        offset = sector * SECTOR
        try:
            try:
                done = os.pwrite(self._fd, data, offset)
            except OSError as e:
                if e.errno != errno.EINVAL or self.mode != "direct":
                    raise
                # some file systems open with O_DIRECT and refuse the write: write through the cache
                fd, self.mode = open_for_writes(self.path, False)
                os.close(self._fd)  # (first: the lock belongs to the old descriptor)
                self._fd = fd
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                done = os.pwrite(self._fd, data, offset)
            while done < len(data):
                done += os.pwrite(self._fd, data[done:], offset + done)
            if self.mode == "buffered":
                os.fdatasync(self._fd)
        except OSError as e:
            raise StorageError(
                f"intake log {self.path}: write at sector {sector} failed: {e.strerror or e}"
            ) from e
