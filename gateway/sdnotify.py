"""The systemd notification protocol (sd_notify), written out: one datagram to ``$NOTIFY_SOCKET``.

``READY=1`` once the daemon serves, ``WATCHDOG=1`` at half the ``WATCHDOG_USEC`` period, ``STOPPING=1`` on
shutdown, ``STATUS=...`` for ``systemctl status``. Without ``NOTIFY_SOCKET`` (not under systemd) every call
is a no-op. An abstract socket name starts with ``@`` (sent as a leading NUL byte).
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends sd_notify messages when systemd asked for them."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path:
            self.address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_s: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` lines; returns False when not under systemd or the send failed."""
        if self.address is None:
            return False
        msg = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                # never wait: a receiver that does not read (its queue holds about 10 datagrams) must not
                # stall the event loop; a message it has no room for is dropped
                s.setblocking(False)
                s.connect(self.address)
                s.send(msg)
        except OSError:  # (BlockingIOError included)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """READY=1 (and a status line)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """WATCHDOG=1: the event loop is alive."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """STOPPING=1."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """STATUS=text."""
        return self.notify(f"STATUS={text}")
