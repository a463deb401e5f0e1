"""The virtual board: the real MicroPython interpreter (vm.mjs) behind a pseudo-terminal.

This process owns the pty. The host side (mpremote, `havel`) opens ``/dev/pts/N`` like a USB serial port;
this side speaks MicroPython's REPL protocol on the pty master: the friendly REPL, the raw REPL (Ctrl-A),
raw-paste mode with flow control (Ctrl-E A Ctrl-A), soft reset (Ctrl-D), and hands each code block to the
interpreter. Optional ``--baud`` paces both directions like a UART at that rate (10 bits per byte), so
timings measured here include the line rate.

Run: ``python tools/vboard/vboard.py SCENARIO.json [--baud 115200]``; it prints ``PTY /dev/pts/N`` and then
``READY`` on stdout once the interpreter has booted. Use :class:`VirtualBoard` from tests and benchmarks.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
PASTE_WINDOW = 256  # bytes the board buffers in raw-paste mode before it asks for more (like real ports)


class _Pacer:
    """Holds bytes back as a UART at `baud` would (start + 8 data + stop bits per byte)."""

    def __init__(self, baud: int | None) -> None:
        self.baud = baud
        self.free_at = 0.0

    def wait(self, nbytes: int) -> None:
        if not self.baud:
            return
        now = time.monotonic()
        start = max(now, self.free_at)
        self.free_at = start + nbytes * 10 / self.baud
        delay = self.free_at - now
        if delay > 0:
            time.sleep(delay)


class Board:
    """The REPL state machine on the pty master, executing code in the wasm interpreter."""

    def __init__(self, scenario: Path, baud: int | None) -> None:
        self.vm = subprocess.Popen(
            ["node", str(HERE / "vm.mjs"), str(scenario)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        hello = self._reply()
        self.banner = hello["banner"].encode()
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        # Keep our copy of the slave open: when the host closes its end the pty stays usable, and input
        # is not lost to a recycled descriptor (a trap met before, see shared notes).
        attrs = termios.tcgetattr(self.slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(self.slave)
        self.mode = "friendly"
        self.buf = bytearray()
        self.paste: bytearray | None = None
        self.paste_seen = 0
        self.rx = _Pacer(baud)
        self.tx = _Pacer(baud)
        self.pending = bytearray()

    def _reply(self) -> dict[str, Any]:
        assert self.vm.stdout is not None
        line = self.vm.stdout.readline()
        if not line:
            raise SystemExit("vboard: the interpreter exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _vm(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.vm.stdin is not None
        self.vm.stdin.write((json.dumps(req) + "\n").encode())
        return self._reply()

    def send(self, data: bytes) -> None:
        self.tx.wait(len(data))
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def execute(self, code: bytes) -> tuple[bytes, bytes]:
        r = self._vm({"op": "exec", "code": base64.b64encode(code).decode()})
        return base64.b64decode(r["out"]), base64.b64decode(r["err"])

    def soft_reset(self) -> None:
        self._vm({"op": "reset"})

    # ---------------------------------------------------------------- protocol
    def feed(self, data: bytes) -> None:
        for b in data:
            self._byte(b)

    def _byte(self, b: int) -> None:
        if self.paste is not None:
            self._paste_byte(b)
        elif self.mode == "raw":
            self._raw_byte(b)
        else:
            self._friendly_byte(b)

    def _friendly_byte(self, b: int) -> None:
        if b == 0x01:
            self.mode = "raw"
            self.buf.clear()
            self.send(b"\r\n" + RAW_BANNER)
        elif b == 0x03:
            self.buf.clear()
            self.send(b"\r\nKeyboardInterrupt\r\n>>> ")
        elif b == 0x04:
            self.send(b"\r\nMPY: soft reboot\r\n")
            self.soft_reset()
            self.send(self.banner + b'\r\nType "help()" for more information.\r\n>>> ')
        elif b in (0x0D, 0x0A):
            line = bytes(self.buf)
            self.buf.clear()
            self.send(b"\r\n")
            if line.strip():
                out, err = self.execute(line)
                self.send(out + err)
            self.send(b">>> ")
        elif b in (0x08, 0x7F):
            if self.buf:
                self.buf.pop()
                self.send(b"\x08 \x08")
        else:
            self.buf.append(b)
            self.send(bytes((b,)))

    def _raw_byte(self, b: int) -> None:
        if b == 0x01:
            if self.buf == b"\x05A":
                # Ctrl-E 'A' Ctrl-A: the host asks for raw-paste mode; answer with the window size.
                self.buf.clear()
                self.paste = bytearray()
                self.paste_seen = 0
                self.send(b"R\x01" + struct.pack("<H", PASTE_WINDOW))
                return
            self.buf.clear()
            self.send(b"\r\n" + RAW_BANNER)
        elif b == 0x02:
            self.mode = "friendly"
            self.buf.clear()
            self.send(b"\r\n" + self.banner + b'\r\nType "help()" for more information.\r\n>>> ')
        elif b == 0x03:
            self.buf.clear()
        elif b == 0x04:
            if not self.buf:
                self.send(b"OK\r\nMPY: soft reboot\r\n")
                self.soft_reset()
                self.send(RAW_BANNER)
                return
            code = bytes(self.buf)
            self.buf.clear()
            self.send(b"OK")
            self._run(code)
        else:
            self.buf.append(b)

    def _paste_byte(self, b: int) -> None:
        assert self.paste is not None
        if b == 0x04:
            code = bytes(self.paste)
            self.paste = None
            self.send(b"\x04")  # end of data acknowledged; compile and run
            self._run(code)
            return
        if b == 0x03:
            self.paste = None
            self.send(b"\x04")
            return
        self.paste.append(b)
        self.paste_seen += 1
        if self.paste_seen % PASTE_WINDOW == 0:
            self.send(b"\x01")  # room for another window

    def _run(self, code: bytes) -> None:
        out, err = self.execute(code)
        self.send(out + b"\x04" + err + b"\x04>")

    # ---------------------------------------------------------------- main loop
    def serve(self) -> None:
        parent = os.getppid()
        while True:
            r, _, _ = select.select([self.master], [], [], 1.0)
            if self.vm.poll() is not None:
                raise SystemExit("vboard: the interpreter exited")
            if os.getppid() != parent:
                raise SystemExit("vboard: the process that started me is gone")
            if self.master in r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    time.sleep(0.01)
                    continue
                self.rx.wait(len(data))
                self.feed(data)

    def close(self) -> None:
        self.vm.kill()
        self.vm.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", type=Path, help="JSON file staging the wiring (see tools/vboard/README.md)")
    ap.add_argument("--baud", type=int, default=None, help="pace the line like a UART at this rate")
    args = ap.parse_args(argv)
    board = Board(args.scenario, args.baud)

    def on_term(*_: object) -> None:
        board.close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    print(f"PTY {board.path}", flush=True)
    print("READY", flush=True)
    try:
        board.serve()
    finally:
        board.close()


class VirtualBoard:
    """Starts vboard.py in a subprocess for tests and benchmarks; use as a context manager."""

    def __init__(
        self, scenario: dict[str, Any], workdir: Path, *, baud: int | None = None, start_timeout: float = 20.0
    ) -> None:
        self.scenario_file = workdir / "scenario.json"
        self.scenario_file.write_text(json.dumps(scenario))
        self.baud = baud
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.path = ""

    def start(self) -> VirtualBoard:
        cmd = [sys.executable, str(HERE / "vboard.py"), str(self.scenario_file)]
        if self.baud:
            cmd += ["--baud", str(self.baud)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        result: dict[str, str] = {}

        def read_banner() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("PTY "):
                    result["path"] = line.split(None, 1)[1].strip()
                elif line.strip() == "READY":
                    result["ready"] = "1"
                    return

        t = threading.Thread(target=read_banner, daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))
        if "ready" not in result:
            self.stop()
            raise RuntimeError("virtual board did not start")
        self.path = result["path"]
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
