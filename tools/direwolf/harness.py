"""Two real direwolf TNCs over a virtual audio channel, for the relay tests and the bench.

Each direwolf transmits into a FIFO through ALSA's ``file`` plugin (``file:PATH,raw``: 16-bit mono
48 kHz samples) and receives audio on its own UDP port. A :class:`Pacer` thread reads one side's FIFO
and sends the samples to the other side's UDP port at real-time pace, with silence while idle: unpaced
bursts overflow the receiver, and without a continuous stream direwolf's carrier detect never clears.
Only loopback; every process and thread started here is stopped by :meth:`RadioLink.close`.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

RATE = 48000
BYTES_PER_S = RATE * 2
TICK_S = 0.02
CHUNK = int(BYTES_PER_S * TICK_S)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free loopback port for TCP or UDP below 49152 (direwolf 1.6 refuses higher KISS/AGW ports)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000..32000")


class Pacer(threading.Thread):
    """Streams a FIFO's audio to a UDP port at 48 k samples/s, silence while the FIFO is idle."""

    def __init__(self, fifo: Path, udp_port: int) -> None:
        super().__init__(daemon=True, name=f"pacer-{fifo.name}")
        self.fifo = fifo
        self.udp_port = udp_port
        self._halt = threading.Event()
        self._pending: deque[bytes] = deque()
        self._pending_len = 0
        self.bytes_audio = 0
        # Open the read end first, non-blocking, so direwolf's ALSA writer can open the FIFO at once.
        self._fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silence = bytes(CHUNK)
        next_t = time.monotonic()
        try:
            while not self._halt.is_set():
                self._drain_fifo()
                out = self._take(CHUNK)
                if out:
                    self.bytes_audio += len(out)
                    out = out + silence[: CHUNK - len(out)]
                else:
                    out = silence
                with contextlib.suppress(OSError):
                    sock.sendto(out, ("127.0.0.1", self.udp_port))
                next_t += TICK_S
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_t = time.monotonic()
        finally:
            sock.close()
            os.close(self._fd)

    def _drain_fifo(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            self._pending.append(data)
            self._pending_len += len(data)

    def _take(self, n: int) -> bytes:
        n -= n % 2  # keep sample alignment
        out = bytearray()
        while self._pending and len(out) < n:
            head = self._pending.popleft()
            need = n - len(out)
            out += head[:need]
            if len(head) > need:
                self._pending.appendleft(head[need:])
        self._pending_len -= len(out)
        return bytes(out)

    @property
    def busy(self) -> bool:
        """True while audio is still waiting to be streamed."""
        return self._pending_len > 0

    def stop(self) -> None:
        self._halt.set()


class Direwolf:
    """One direwolf process: KISS on a TCP port, audio in on UDP, audio out into a FIFO."""

    def __init__(self, workdir: Path, name: str, call: str) -> None:
        self.workdir = workdir
        self.name = name
        self.call = call
        self.kiss_port = free_port()
        self.agw_port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.fifo = workdir / f"{name}.fifo"
        self.conf = workdir / f"{name}.conf"
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if not self.fifo.exists():
            os.mkfifo(self.fifo)
        self.conf.write_text(
            # Relative FIFO path: direwolf cuts device names after 29 characters.
            f"ADEVICE UDP:{self.udp_port} file:{self.fifo.name},raw\n"
            f"ARATE {RATE}\nACHANNELS 1\nCHANNEL 0\nMYCALL {call}\nMODEM 1200\n"
            # Short TX delay/tail keep the test fast; the values only shape the synthetic audio.
            "TXDELAY 20\nTXTAIL 5\nDWAIT 0\nSLOTTIME 10\nPERSIST 255\n"
            f"KISSPORT {self.kiss_port}\nAGWPORT {self.agw_port}\n"
        )

    def start(self) -> None:
        """Start direwolf and wait until its KISS port accepts connections."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["direwolf", "-c", str(self.conf), "-t", "0", "-q", "hd"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"direwolf {self.name} exited: {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.kiss_port), 0.5):
                return
            time.sleep(0.1)
        raise RuntimeError(f"direwolf {self.name} did not open KISS port {self.kiss_port}: {self.log()}")

    def log(self) -> str:
        """Everything direwolf printed so far."""
        # Latin-1: one character per byte, so frame contents compare byte for byte.
        return self.log_path.read_bytes().decode("latin-1") if self.log_path.exists() else ""

    def frame_lines(self) -> list[str]:
        """Every monitor line ``[0L] SRC>DEST:info`` (sent) or ``[0] SRC>DEST:info`` (heard)."""
        return [m.group(0) for m in re.finditer(r"^\[0[^\]]*\] \S+>\S+?:.*$", self.log(), re.M)]

    def sent_lines(self) -> list[str]:
        """Frames this TNC transmitted, as direwolf decoded them from what it was given, without prefix.

        ``[0L]`` is the normal queue, ``[0H]`` the high-priority one (frames that were digipeated already).
        """
        return [line.split("] ", 1)[1] for line in self.frame_lines() if line[:4] in ("[0L]", "[0H]")]

    def heard_lines(self) -> list[str]:
        """Frames this TNC demodulated from the audio channel, without prefix."""
        return [
            line.split("] ", 1)[1]
            for line in self.frame_lines()
            if line.startswith("[0] ") or line.startswith("[0.")
        ]

    def restart(self) -> None:
        """Stop and start again on the same ports (a TNC that went away and came back)."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class RadioLink:
    """Two direwolf TNCs, A and B, joined by a paced audio channel in both directions."""

    def __init__(self, workdir: Path, call_a: str = "N0CALL-10", call_b: str = "N0CALL-1") -> None:
        self.a = Direwolf(workdir, "dwa", call_a)
        self.b = Direwolf(workdir, "dwb", call_b)
        self.pacers: list[Pacer] = []

    def start(self) -> RadioLink:
        try:
            # The pacers open the FIFOs' read ends before direwolf opens the write ends.
            self.pacers = [Pacer(self.a.fifo, self.b.udp_port), Pacer(self.b.fifo, self.a.udp_port)]
            for p in self.pacers:
                p.start()
            self.a.start()
            self.b.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for d in (self.a, self.b):
            d.stop()
        for p in self.pacers:
            p.stop()
        for p in self.pacers:
            p.join(5)

    def __enter__(self) -> RadioLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
