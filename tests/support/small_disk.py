"""A real small file system for tests: a tmpfs mounted for the test (root, as in CI), or, where mount is
not allowed, a real write limit on one process (RLIMIT_FSIZE, set and lifted from outside with prlimit;
writes past it fail with EFBIG as a full disk fails with ENOSPC). Never a silent no-op: which one is
printed."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
from pathlib import Path


class SmallDisk:
    """``folder`` as a 16 MB tmpfs (or, without mount, a file size limit on the daemon): :meth:`fill`
    takes the remaining space, :meth:`free` gives it back."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mounted = False
        self.pid: int | None = None
        folder.mkdir(parents=True, exist_ok=True)
        if os.environ.get("HAVEL_TEST_NO_MOUNT") != "1":
            r = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder)],
                capture_output=True,
                text=True,
            )
            self.mounted = r.returncode == 0
        print(f"small disk: {'tmpfs' if self.mounted else 'RLIMIT_FSIZE on the daemon (mount refused)'}")

    def fill(self) -> None:
        if self.mounted:
            fd = os.open(self.folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for size in (1 << 20, 65536, 4096, 512):  # ENOSPC ends each; smaller writes take the rest
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(fd, b"\0" * size)
            finally:
                os.close(fd)
            st = os.statvfs(self.folder)
            assert st.f_bavail == 0, "tmpfs not full"
        else:
            assert self.pid is not None
            wal = self.folder / "havel.db-wal"
            limit = max(wal.stat().st_size, (self.folder / "havel.db").stat().st_size)
            # the soft limit only: lifting it again needs no privilege
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def free(self) -> None:
        if self.mounted:
            (self.folder / "filler").unlink()
        else:
            assert self.pid is not None
            inf = resource.RLIM_INFINITY
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (inf, inf))

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)
