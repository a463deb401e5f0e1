"""A real NUT ``upsd`` with the ``dummy-ups`` driver, in a temporary folder, on a free loopback port, run as
the tests' own child processes. :meth:`UpsServer.set` rewrites the driver's state file (mains loss, low
battery, return); the driver reads it again within its one-second poll.

    with UpsServer(tmp_path) as ups:          # "roofups" on mains, 100 %, 3600 s
        ups.set("OB DISCHRG", charge=80, runtime=2400)
        ups.address                            # "roofups@127.0.0.1:<port>"
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from pathlib import Path

from havel.gateway.power import nut

NAME = "roofups"


def _binary(name: str) -> str | None:
    # Debian puts the real daemons in /lib/nut (/usr/sbin/upsd is a wrapper that reads /etc/nut/nut.conf)
    for folder in ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut"):
        if os.access(f"{folder}/{name}", os.X_OK):
            return f"{folder}/{name}"
    return None


def available() -> bool:
    return _binary("upsd") is not None and _binary("dummy-ups") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UpsServer:
    """See the module docstring."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "nut"
        self.folder.mkdir()
        self.port = _free_port()
        self.state = self.folder / f"{NAME}.dev"
        self._mtime = time.time() - 1000  # every write gets a later whole second: the driver compares them
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        return f"{NAME}@127.0.0.1:{self.port}"

    def set(self, status: str, *, charge: float = 100, runtime: float = 3600) -> None:
        """Write the UPS state the driver reports (``status``: NUT flags, e.g. ``OB DISCHRG LB``)."""
        text = f"ups.status: {status}\nbattery.charge: {charge:g}\nbattery.runtime: {runtime:g}\n"
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(text)
        self._mtime = max(self._mtime + 1, time.time() - 500)
        os.utime(tmp, (self._mtime, self._mtime))
        tmp.replace(self.state)

    def wait_for(self, status: str, runtime: float | None = None, timeout: float = 15.0) -> None:
        """Until upsd reports ``status`` (and ``runtime``, when given)."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            try:
                v = nut.list_vars(nut.parse_ups(self.address), timeout=2)
                seen = f"{v.get('ups.status')} {v.get('battery.runtime')}"
                if v.get("ups.status") == status and (
                    runtime is None or float(v["battery.runtime"]) == runtime
                ):
                    return
            except nut.NutError as exc:
                seen = str(exc)
            time.sleep(0.1)
        raise TimeoutError(f"upsd reports {seen!r}, not {status!r}")

    def start(self) -> UpsServer:
        f = self.folder
        (f / "ups.conf").write_text(
            f'[{NAME}]\n    driver = dummy-ups\n    port = {self.state}\n    desc = "roof"\n'
        )
        (f / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\n")
        (f / "upsd.users").write_text("")
        (f / "upsd.users").chmod(0o600)
        (f / "nut.conf").write_text("MODE=standalone\n")
        self.set("OL", charge=100, runtime=3600)
        env = {**os.environ, "NUT_CONFPATH": str(f), "NUT_STATEPATH": str(f)}
        user = ["-u", getpass.getuser()]  # as root, stay root instead of the system's nut user
        log = open(f / "nut.log", "ab")  # noqa: SIM115 - the children write to it until close()
        for cmd in (
            [str(_binary("dummy-ups")), "-a", NAME, "-F", "-i", "1", *user],
            [str(_binary("upsd")), "-F", *user],
        ):
            self._procs.append(
                subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            )
            # upsd connects to the driver's socket at start (and only retries later): wait for it
            deadline = time.monotonic() + 15
            while not (f / f"dummy-ups-{NAME}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        log.close()
        try:
            self.wait_for("OL")
        except TimeoutError:
            self.close()
            raise RuntimeError(f"upsd did not come up: {(f / 'nut.log').read_text()[-2000:]}") from None
        return self

    def close(self) -> None:
        for p in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self._procs.clear()

    def __enter__(self) -> UpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["NAME", "UpsServer", "available"]
