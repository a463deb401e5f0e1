"""sd_notify never stalls the daemon: a notify socket whose reader does not read (a full queue) makes
messages drop, not the event loop wait. Real Unix datagram socket."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from havel.gateway.sdnotify import Notifier


def test_a_notify_socket_nobody_reads_never_blocks(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as reader:
        reader.bind(str(path))
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        started = time.monotonic()
        sent = [n.status(f"message {i}") for i in range(200)]  # far more than the queue holds
        assert time.monotonic() - started < 10  # (blocked for ever before)
        assert sent[0] is True and sent[-1] is False  # the first went through, the overflow was dropped
        assert reader.recv(4096) == b"STATUS=message 0"
