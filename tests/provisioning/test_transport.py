"""The transport wrapper and the virtual board's REPL protocol, through the real mpremote transport."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from mpremote.transport_serial import SerialTransport

from havel.errors import TransportError
from havel.provisioning.transport import Board, DeviceError

pytestmark = pytest.mark.timeout(60)


def test_raw_paste_soft_reset_and_standard_errno(start_board: Callable[..., Any]) -> None:
    vb = start_board({"unique_id": "a4cf12fe0c01"})
    t = SerialTransport(vb.path, timeout=1)
    try:
        t.enter_raw_repl()  # with soft reset, as mpremote does by default
        big = "x = 0\n" + "x += 1\n" * 400 + "print(x)\n"  # > one raw-paste window
        assert t.exec(big).strip() == b"400"
        assert t.use_raw_paste  # the board accepted raw-paste mode
        t.fs_writefile("data.bin", bytes(range(256)) * 3)
        assert t.fs_readfile("data.bin") == bytes(range(256)) * 3
        with pytest.raises(OSError) as err:
            t.fs_stat("missing.txt")
        assert err.value.errno == errno.ENOENT
        t.exec("keep = 1")
        t.enter_raw_repl(soft_reset=True)  # RAM cleared, files kept
        assert t.eval("'keep' in globals()") is False
        assert t.fs_readfile("data.bin")[:3] == b"\x00\x01\x02"
    finally:
        t.close()


def test_device_exception_becomes_device_error(start_board: Callable[..., Any]) -> None:
    vb = start_board({})
    with Board(vb.path) as link:
        with pytest.raises(DeviceError, match="ValueError: bad wiring") as err:
            link.exec("raise ValueError('bad wiring')")
        assert "Traceback" in err.value.device_traceback
        assert link.exec("print(6 * 7)").strip() == b"42"  # the session goes on


def test_a_hanging_board_times_out(start_board: Callable[..., Any]) -> None:
    vb = start_board({})
    link = Board(vb.path, timeout=5, retries=0).open()
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="did not answer within 2 s"):
        link.exec("import time\ntime.sleep(20)", timeout=2)
    assert time.monotonic() - t0 < 5
    link.close()


def test_no_micropython_on_the_port_is_reported_in_bounded_time() -> None:
    master, slave = os.openpty()  # a port where nothing answers (a board without MicroPython)
    try:
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="raw REPL") as err:
            Board(os.ttyname(slave), timeout=1.5, retries=1).open()
        assert "install MicroPython" in str(err.value)
        assert time.monotonic() - t0 < 15
    finally:
        os.close(master)
        os.close(slave)


def test_missing_port_says_what_to_do() -> None:
    with pytest.raises(TransportError, match="cannot open /dev/ttyHAVEL0") as err:
        Board("/dev/ttyHAVEL0", retries=0).open()
    assert "cable" in str(err.value)


def test_call_round_trips_json_and_counts_bytes(start_board: Callable[..., Any]) -> None:
    vb = start_board({"unique_id": "0102030405060708"})
    with Board(vb.path) as link:
        info = link.call("fsutil", "hv_info")
        assert info["unique_id"] == "0102030405060708" and info["version"].startswith("1.")
        assert link.call("fsutil", "hv_write_text", "t.txt", "µg/m³ ✓") is not None
        assert link.call("fsutil", "hv_read_text", "t.txt") == "µg/m³ ✓"
        assert link.bytes_out > 0 and link.bytes_in > 0


def test_a_dropped_link_is_reconnected_and_the_call_retried(start_board: Callable[..., Any]) -> None:
    vb = start_board({"unique_id": "0102030405060708"})
    link = Board(vb.path, retries=2).open()
    try:
        assert link.call("fsutil", "hv_info")["unique_id"] == "0102030405060708"
        assert link._mp is not None
        link._mp.serial.close()  # the cable wiggles: the port is gone under the open session
        assert link.call("fsutil", "hv_info")["unique_id"] == "0102030405060708"
        link._mp.serial.close()
        with pytest.raises(TransportError):  # a write is never repeated blindly
            link.call("fsutil", "hv_open", "x.bin", idempotent=False)
    finally:
        link.close()
