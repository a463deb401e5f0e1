"""The intake log's file (gateway/intake_log.py): made whole once, its header checked, opened for writes.

Sector 0 is written once: ``b"HAVELLOG"``, format version u16, sector size u16, sector count u32, a random
16-byte log id, CRC32 of those fields (u32); the rest of the sector is zeros.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

from havel.errors import StorageError

SECTOR = 512
VERSION = 1
FILE_MAGIC = b"HAVELLOG"
FILE_HEADER = struct.Struct("<8sHHI16s")  # followed by its CRC32 (u32)
CHUNK = 1 << 20


def create(path: Path, size_bytes: int) -> None:
    """Write the log whole (header, zeros) under a temporary name, sync it, and move it into place."""
    tmp = path.with_name(path.name + ".new")
    header = FILE_HEADER.pack(FILE_MAGIC, VERSION, SECTOR, size_bytes // SECTOR, os.urandom(16))
    first = (header + struct.pack("<I", zlib.crc32(header))).ljust(SECTOR, b"\0")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, first)
        left = size_bytes - SECTOR
        zeros = bytes(CHUNK)
        while left > 0:
            left -= os.write(fd, zeros[: min(left, CHUNK)])
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_header(path: Path, image: bytes, size_bytes: int) -> tuple[int, bytes]:
    """(sector count, log id) from sector 0; StorageError for a damaged or foreign header or a wrong size."""
    hint = f"move {path} aside (after applying its records, if it is a log) and start again"
    if len(image) < SECTOR:
        raise StorageError(f"intake log {path}: {len(image)} bytes, too short for a header", hint=hint)
    magic, version, sector, count, log_id = FILE_HEADER.unpack_from(image)
    (crc,) = struct.unpack_from("<I", image, FILE_HEADER.size)
    if magic != FILE_MAGIC or crc != zlib.crc32(image[: FILE_HEADER.size]):
        raise StorageError(
            f"intake log {path}: no valid log header (damaged, or not an intake log)", hint=hint
        )
    if version != VERSION or sector != SECTOR:
        raise StorageError(
            f"intake log {path}: format {version} with {sector}-byte sectors is not supported", hint=hint
        )
    if count * SECTOR != len(image):
        raise StorageError(
            f"intake log {path}: the header says {count} sectors, the file has {len(image)} bytes", hint=hint
        )
    if len(image) != size_bytes:
        raise StorageError(
            f"intake log {path} is {len(image)} bytes, {size_bytes} configured",
            hint="configure its size, or move it aside once its records are applied",
        )
    return count, log_id


def open_for_writes(path: Path, direct: bool) -> tuple[int, str]:
    """A descriptor for the log's writes and its mode: direct where the file system allows it."""
    if direct:
        try:
            return os.open(path, os.O_RDWR | os.O_DIRECT | os.O_DSYNC), "direct"
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
    return os.open(path, os.O_RDWR), "buffered"
