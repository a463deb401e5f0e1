"""Copy a verified bundle to a board: only the files whose hash differs, then read every hash back.

Hashes are computed on the board (``device/fsutil.py``), so nothing is read back byte by byte. Each
file is written to ``<path>.part`` and renamed, and the manifest is written last (``havel_manifest.json``),
so a board whose flash was interrupted is recognisable and the next run finishes the job.

The bytes written are the bytes checked: every file to copy is read once and compared with its SHA-256 in
the (signed) manifest before anything on the board changes, so a file swapped in the bundle folder after
:func:`~havel.provisioning.bundle.verify_bundle` never reaches the board. A bundle whose version is lower
than the one on the board is refused unless ``allow_downgrade``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from havel.errors import ConfigError, HavelError, InputError, SecurityError, TransportError
from havel.provisioning.bundle import Manifest, parse_version
from havel.provisioning.kits import Board as BoardDef
from havel.provisioning.transport import Board

BOARD_MANIFEST = "havel_manifest.json"
BOARD_FILE = "board.json"
CHUNK = 3072  # raw bytes per write call: 4 KiB of base64, well inside a board's free RAM


@dataclass
class FlashReport:
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    payload_bytes: int = 0
    seconds: float = 0.0
    bytes_out: int = 0
    bytes_in: int = 0
    calls: int = 0


ProgressFn = Callable[[int, int, str], None]


def board_hashes(board: Board, paths: list[str]) -> dict[str, str | None]:
    """SHA-256 (hex) of each path as the board computes it; None where the file is missing."""
    result: dict[str, str | None] = {}
    for i in range(0, len(paths), 20):  # a few per call keeps each reply short
        part = paths[i : i + 20]
        hashes = board.call("fsutil", "hv_hashes", part, timeout=30)
        result.update(zip(part, hashes, strict=True))
    return result


def plan(board: Board, manifest: Manifest) -> list[str]:
    """Paths whose content on the board differs from the manifest."""
    have = board_hashes(board, [f.path for f in manifest.files])
    return [f.path for f in manifest.files if have.get(f.path) != f.sha256]


def write_file(
    board: Board, path: str, data: bytes, progress: Callable[[int], None] | None = None
) -> str | None:
    """Write one file atomically; returns the hash the board computed after the rename."""
    board.call("fsutil", "hv_open", path, idempotent=False)
    for i in range(0, len(data), CHUNK):
        chunk = base64.b64encode(data[i : i + CHUNK]).decode()
        board.call("fsutil", "hv_write", chunk, idempotent=False)
        if progress:
            progress(min(CHUNK, len(data) - i))
    sha: str | None = board.call("fsutil", "hv_commit", path, idempotent=False)
    return sha


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return parse_version(version)
    except InputError:
        return ()  # no (or no readable) version: older than any versioned bundle


def check_downgrade(installed: Manifest | None, new: Manifest, *, allow: bool = False) -> None:
    """SecurityError when ``new`` is older than the bundle on the board (and ``allow`` is not set)."""
    if allow or installed is None or not installed.version:
        return
    if _version_key(new.version) < _version_key(installed.version):
        raise SecurityError(
            f"the bundle is version {new.version or '(none)'}, older than version {installed.version} "
            "on the board: an old bundle can bring back fixed bugs",
            hint="get the current bundle from the city, or pass --allow-downgrade to flash it anyway",
        )


def read_checked(bundle_dir: Path, manifest: Manifest, paths: list[str]) -> dict[str, bytes]:
    """The bytes of ``paths``, each read once and checked against the manifest (SecurityError if not)."""
    by_path = {f.path: f for f in manifest.files}
    out: dict[str, bytes] = {}
    for path in paths:
        want = by_path[path]
        try:
            data = (bundle_dir / "files" / path).read_bytes()
        except FileNotFoundError as exc:
            raise SecurityError(f"bundle file {path} is missing") from exc
        if len(data) != want.size or hashlib.sha256(data).hexdigest() != want.sha256:
            raise SecurityError(
                f"bundle file {path} changed after the bundle was checked: it no longer matches the "
                "manifest; nothing was written to the board",
                hint="get the bundle again from the city",
            )
        out[path] = data
    return out


def flash_bundle(
    board: Board,
    bundle_dir: Path,
    manifest: Manifest,
    *,
    progress: ProgressFn | None = None,
    force: bool = False,
    allow_downgrade: bool = False,
) -> FlashReport:
    """Flash a bundle that :func:`havel.provisioning.bundle.verify_bundle` has already accepted (the
    manifest it returned); refuses a downgrade unless ``allow_downgrade``."""
    t0 = time.monotonic()
    out0, in0, calls0 = board.bytes_out, board.bytes_in, board.calls
    report = FlashReport()
    check_downgrade(installed_manifest(board), manifest, allow=allow_downgrade)
    todo = [f.path for f in manifest.files] if force else plan(board, manifest)
    by_path = {f.path: f for f in manifest.files}
    # Read and check every file before the board changes: what is written is what was checked.
    payload = read_checked(bundle_dir, manifest, todo)
    total = sum(by_path[p].size for p in todo)
    done = 0
    if todo:
        # An interrupted flash must not look complete: drop the board's manifest first.
        board.call("fsutil", "hv_remove", BOARD_MANIFEST)
    for path in todo:
        data = payload[path]

        def step(n: int, path: str = path) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total, path)

        if not data and progress:
            progress(done, total, path)
        got = write_file(board, path, data, step)
        if got != by_path[path].sha256:
            raise TransportError(
                f"{path} on the board has SHA-256 {got}, expected {by_path[path].sha256}",
                hint="the USB link corrupts data: try another cable or port, then flash again",
            )
        report.copied.append(path)
        report.payload_bytes += len(data)
    report.unchanged = [f.path for f in manifest.files if f.path not in todo]
    # Verify everything, copied or not, by reading the hashes back.
    have = board_hashes(board, [f.path for f in manifest.files])
    bad = [f.path for f in manifest.files if have.get(f.path) != f.sha256]
    if bad:
        raise TransportError(
            f"after flashing, {len(bad)} file(s) differ on the board: {', '.join(bad[:5])}",
            hint="flash again; if it keeps failing the board's filesystem may be full or damaged",
        )
    if todo or board.call("fsutil", "hv_sha256", BOARD_MANIFEST) is None:
        board.call(
            "fsutil",
            "hv_write_text",
            BOARD_MANIFEST,
            json.dumps(manifest.to_dict(), sort_keys=True),
            idempotent=False,
        )
    report.seconds = time.monotonic() - t0
    report.bytes_out = board.bytes_out - out0
    report.bytes_in = board.bytes_in - in0
    report.calls = board.calls - calls0
    return report


def installed_manifest(board: Board) -> Manifest | None:
    """The manifest of the bundle last flashed completely to this board, if any."""
    text = board.call("fsutil", "hv_read_text", BOARD_MANIFEST)
    if not text:
        return None
    try:
        return Manifest.from_dict(json.loads(text))
    except (ValueError, HavelError):
        return None


def write_board_file(board: Board, board_def: BoardDef) -> bool:
    """Put ``hw/boards/<board>.json`` on the board as ``board.json`` (the firmware reads its pins there).

    Returns True when it was written, False when the board already had the same bytes.
    """
    text = json.dumps(board_def.raw, indent=1, sort_keys=True)
    want = hashlib.sha256(text.encode()).hexdigest()
    if board.call("fsutil", "hv_sha256", BOARD_FILE) == want:
        return False
    got = board.call("fsutil", "hv_write_text", BOARD_FILE, text, idempotent=False)
    if got != want:
        raise TransportError(f"{BOARD_FILE} did not verify after writing", hint="flash again")
    return True


def check_radio(manifest: Manifest, board_def: BoardDef) -> None:
    """Refuse a bundle that lacks the driver of the board's radio (bundles list theirs in the manifest)."""
    chip = board_def.radio.chip if board_def.radio else None
    if chip and manifest.radios and chip not in manifest.radios:
        raise ConfigError(
            f"the bundle has radio drivers for {', '.join(manifest.radios)}, "
            f"board {board_def.name} has an {chip}",
            hint="use a bundle built for this board's radio",
        )
