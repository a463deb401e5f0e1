"""The project's own small interface to a MicroPython board over USB serial.

It wraps mpremote 1.29's ``SerialTransport`` (pinned: its API is marked unstable) so that every call has
a deadline (a pty, or a board stuck in a loop, never times out by itself), protocol glitches get a bounded
number of retries, and every failure becomes one :class:`~havel.errors.TransportError` that says what to
do. Code that runs on the board lives in real files under ``provisioning/device/``; :meth:`Board.call`
loads such a file once per session and calls one of its functions with JSON arguments.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import functools
import io
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import serial
from mpremote.transport import TransportError as MpTransportError
from mpremote.transport import TransportExecError
from mpremote.transport_serial import SerialTransport

from havel.errors import TransportError

log = logging.getLogger(__name__)
DEVICE_DIR = Path(__file__).resolve().parent / "device"
T = TypeVar("T")


class DeviceError(TransportError):
    """Code on the board raised an exception; ``device_traceback`` holds the board's traceback."""

    def __init__(self, message: str, device_traceback: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.device_traceback = device_traceback


class _CountingSerial:
    """Passes everything through to a pyserial port and counts the bytes each way (for the benchmark)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.bytes_out = 0
        self.bytes_in = 0

    def write(self, data: bytes) -> int | None:
        self.bytes_out += len(data)
        n: int | None = self._inner.write(data)
        return n

    def read(self, size: int = 1) -> bytes:
        data: bytes = self._inner.read(size)
        self.bytes_in += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _open_hint(exc: BaseException, port: str) -> str:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return (
            f"no permission to open {port}: add yourself to the 'dialout' group "
            "(sudo usermod -aG dialout $USER), then log out and in again"
        )
    if code == errno.EBUSY or "busy" in text.lower() or "exclusively lock" in text:
        return f"{port} is in use by another program: close Thonny, the Arduino IDE, screen or minicom"
    if code == errno.ENOENT or "No such file" in text:
        return f"{port} went away: check the USB cable (a data cable, not charge-only) and plug it in again"
    return "unplug the board, plug it in again and retry"


def _why_not_open(port: str) -> BaseException | None:
    """mpremote hides why a port did not open; open it once more with pyserial to learn the reason."""
    try:
        s = serial.serial_for_url(port, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        inner = exc.__context__ if isinstance(exc.__context__, OSError) else None
        return inner or exc
    s.close()
    return None


class Board:
    """A MicroPython board in the raw REPL, with a deadline on every call.

    ``timeout`` is the default deadline in seconds for one call; ``retries`` how often a call that failed
    for a protocol reason (garbled or missing reply, not an exception on the board) is tried again after
    re-entering the raw REPL.
    """

    def __init__(self, port: str, *, baudrate: int = 115200, timeout: float = 10.0, retries: int = 2) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.retries = retries
        self._mp: SerialTransport | None = None
        self._serial: _CountingSerial | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loaded: set[str] = set()
        self.calls = 0

    # ------------------------------------------------------------------ life cycle
    def open(self, *, soft_reset: bool = False) -> Board:
        """Open the port and enter the raw REPL (retried; raises TransportError with a hint)."""
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            try:
                self._connect(soft_reset)
                return self
            except TransportError as exc:
                last = exc
                log.debug("open %s attempt %d failed: %s", self.port, attempt + 1, exc)
                self._drop()
                time.sleep(0.2 * (attempt + 1))
        assert last is not None
        raise last

    def _connect(self, soft_reset: bool) -> None:
        try:
            # A short read timeout keeps every wait inside our own deadlines (a pty never times out).
            mp = SerialTransport(self.port, baudrate=self.baudrate, timeout=0.25)
        except (serial.SerialException, OSError, MpTransportError) as exc:
            cause = _why_not_open(self.port) or exc
            raise TransportError(
                f"cannot open {self.port}: {cause}", hint=_open_hint(cause, self.port)
            ) from exc
        self._mp = mp
        self._serial = _CountingSerial(mp.serial)
        mp.serial = self._serial
        self._deadline(
            functools.partial(_quiet_enter_raw_repl, mp, soft_reset, self.timeout),
            self.timeout + 2,
            "entering the raw REPL",
            hint="no MicroPython answers on this port: install MicroPython first "
            "(havel kit build does it), or press the board's RESET button and retry",
        )
        self._loaded.clear()

    def close(self) -> None:
        """Leave the raw REPL and close the port; never raises."""
        if self._mp is not None:
            mp = self._mp
            with contextlib.suppress(TransportError):
                self._deadline(mp.exit_raw_repl, 2, "leaving the raw REPL")
        self._drop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _drop(self) -> None:
        if self._mp is not None:
            try:
                self._mp.serial.close()
            except Exception:  # closing a port that already failed: nothing left to do
                log.debug("closing %s failed", self.port, exc_info=True)
        self._mp = None
        self._serial = None
        self._loaded.clear()

    def __enter__(self) -> Board:
        return self.open() if self._mp is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bytes_out(self) -> int:
        return self._serial.bytes_out if self._serial else 0

    @property
    def bytes_in(self) -> int:
        return self._serial.bytes_in if self._serial else 0

    # ------------------------------------------------------------------ calls with deadlines
    def _deadline(self, fn: Callable[[], T], seconds: float, what: str, *, hint: str | None = None) -> T:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="havel-board"
            )
        fut = self._pool.submit(fn)
        try:
            return fut.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            # Closing the port makes the blocked read in the worker thread fail, so it does not linger.
            self._drop()
            raise TransportError(
                f"the board on {self.port} did not answer within {seconds:.0f} s while {what}",
                hint=hint or "press RESET on the board, or unplug and plug it in again",
            ) from None
        except TransportExecError as exc:
            raise _device_error(exc.error_output, what) from None
        except (MpTransportError, serial.SerialException, OSError) as exc:
            raise TransportError(
                f"talking to the board on {self.port} failed while {what}: {exc}",
                hint=hint or _open_hint(exc, self.port),
            ) from exc

    def _ensure_open(self) -> SerialTransport:
        if self._mp is None:
            self.open()
        assert self._mp is not None
        return self._mp

    def exec(
        self, code: str, *, timeout: float | None = None, what: str = "running code", idempotent: bool = True
    ) -> bytes:
        """Run ``code`` on the board; return its stdout. Board exceptions raise :class:`DeviceError`."""
        tries = self.retries + 1 if idempotent else 1
        for attempt in range(tries):
            mp = self._ensure_open()
            try:
                self.calls += 1
                return self._deadline(functools.partial(mp.exec, code), timeout or self.timeout, what)
            except DeviceError:
                raise
            except TransportError:
                if attempt + 1 >= tries:
                    raise
                log.debug("retrying %s after a protocol error", what)
                self._drop()
        raise AssertionError("unreachable")

    def load(self, script: str) -> None:
        """Load ``provisioning/device/<script>.py`` into the board's RAM (once per session)."""
        if script in self._loaded:
            return
        path = DEVICE_DIR / f"{script}.py"
        self.exec(path.read_text(), what=f"loading {script}.py")
        self._loaded.add(script)

    def call(
        self, script: str, func: str, *args: Any, timeout: float | None = None, idempotent: bool = True
    ) -> Any:
        """Call ``func(*args)`` from a device script; arguments and result travel as JSON.

        An idempotent call that fails for a protocol reason is retried after reconnecting, reloading the
        script first (the board may have reset and forgotten it)."""
        payload = json.dumps(list(args))
        code = f"import json\nprint(json.dumps({func}(*json.loads({payload!r}))))"
        tries = self.retries + 1 if idempotent else 1
        out = b""
        for attempt in range(tries):
            try:
                self.load(script)
                out = self.exec(code, timeout=timeout, what=f"{script}.{func}", idempotent=False)
                break
            except DeviceError:
                raise
            except TransportError:
                if attempt + 1 >= tries:
                    raise
                log.debug("retrying %s.%s after a protocol error", script, func)
                self._drop()
        text = out.decode("utf-8", "replace").strip().splitlines()
        if not text:
            raise TransportError(f"{script}.{func} on the board returned nothing")
        try:
            return json.loads(text[-1])
        except json.JSONDecodeError as exc:
            raise TransportError(f"{script}.{func} on the board returned {text[-1]!r}, not JSON") from exc

    def soft_reset(self) -> None:
        """Soft-reset the board (RAM cleared, files kept) and re-enter the raw REPL."""
        mp = self._ensure_open()
        self._deadline(
            functools.partial(_quiet_enter_raw_repl, mp, True, self.timeout),
            self.timeout + 2,
            "soft-resetting the board",
        )
        self._loaded.clear()


def _quiet_enter_raw_repl(mp: SerialTransport, soft_reset: bool, timeout: float) -> None:
    """mpremote prints what it received when the raw REPL does not come up; log it instead."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            mp.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout)
    finally:
        if buf.getvalue():
            log.debug("board said while entering the raw REPL: %s", buf.getvalue().strip())


def _device_error(output: str, what: str) -> DeviceError:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "an error"
    return DeviceError(f"the board raised {last} while {what}", output)
