"""A full disk under the real daemon: a PUSH_ACK only for what is stored, /healthz and /metrics say so, and
the daemon recovers by itself when space returns, delivering everything it acknowledged.

The data directory is a real small file system: a tmpfs mounted for the test (root, as in CI). Where mount
is not allowed, the same test runs with a real write limit instead: the daemon process's RLIMIT_FSIZE, set
and lifted from outside with prlimit (writes past it fail with EFBIG, as a full disk fails with ENOSPC).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import (
    GatewayProcess,
    abp_uplink,
    free_tcp_port,
    free_udp_port,
    http_get,
    register_abp,
    write_config,
)
from support.small_disk import SmallDisk

from havel.gateway import config, db
from havel.gateway.sim.concentrator import Concentrator

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI, ADDR, GW = 0x70B3D57ED0000300, 0x26030000, 0xAA555A00000000AB
PAYLOAD = bytes.fromhex("1200f1013d4cba")


def frame(fcnt: int) -> bytes:
    return abp_uplink(ADDR, fcnt, NWK, APP, PAYLOAD)


def delivered(out: Path) -> set[int]:
    if not out.exists():
        return set()
    got = set()
    for line in out.read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            got.add(int(json.loads(line)["payload"]["fcnt"]))
    return got


def health(port: int) -> tuple[int, dict[str, Any]]:
    code, body = http_get(port, "/healthz")
    return code, json.loads(body)


@pytest.mark.timeout(150)
def test_full_disk_stops_push_acks_and_recovers_by_itself(tmp_path: Path) -> None:
    http, udp = free_tcp_port(), free_udp_port()
    out = tmp_path / "out.jsonl"  # (the sink's file is on another file system than the database)
    cfg_path = write_config(
        tmp_path,
        http_port=http,
        udp_port=udp,
        network={"dedup_window_ms": 100},
        sinks=[{"type": "file", "path": str(out), "name": "file"}],
        # the journal in SQLite (batch_s = 0): a full disk refuses it at once. With batches the intake log,
        # written whole beforehand, takes frames on: tests/gateway/test_write_batch.py
        extra="\n[storage]\nbatch_s = 0\n",
    )
    cfg = config.load(cfg_path)
    disk = SmallDisk(cfg.data_dir)
    # systemd's notify socket, real: `systemctl status` shows the STATUS= lines
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    gw: GatewayProcess | None = None
    try:
        conn = db.open_db(cfg.db_path)
        register_abp(conn, 1, dev_eui=EUI, dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP)
        conn.close()
        gw = GatewayProcess(cfg_path, http, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}).start()
        assert gw.proc is not None
        disk.pid = gw.proc.pid
        fcnts = iter(range(1, 10_000))
        acked: set[int] = set()
        unacked: set[int] = set()

        with Concentrator(("127.0.0.1", udp), GW) as conc:

            def send() -> bool:
                f = next(fcnts)
                rx = conc.rxpk(frame(f), tmst=f * 1000, freq_hz=868_100_000, datr="SF7BW125", rssi=-80, snr=5)
                ok = conc.push([rx], wait_ack_s=3.0)
                (acked if ok else unacked).add(f)
                return ok

            assert all(send() for _ in range(3))  # healthy: acknowledged
            disk.fill()
            for _ in range(60):  # the write-ahead log may hold a little room still: until it is used up
                if not send():
                    break
            assert unacked, "the daemon acknowledged uplinks it could not store"
            assert not any(send() for _ in range(3))  # and it stays so while the disk is full
            code, doc = health(http)
            assert code == 503 and doc["storage"]["ok"] is False and doc["storage"]["error"], doc
            _, metrics = http_get(http, "/metrics")
            assert "havel_gateway_storage_ok 0" in metrics
            withheld = [
                ln for ln in metrics.splitlines() if ln.startswith("havel_gateway_push_acks_withheld_total")
            ]
            assert withheld and float(withheld[0].split()[-1]) >= len(unacked)
            told = b""
            with contextlib.suppress(BlockingIOError):
                while True:
                    told += notify.recv(4096) + b"\n"
            assert b"READY=1" in told and b"STATUS=storage failing" in told, told

            disk.free()
            deadline = time.monotonic() + 30
            while not send():  # recovers by itself (no restart)
                assert time.monotonic() < deadline, "PUSH_ACKs did not come back after space returned"
                time.sleep(0.5)
            assert all(send() for _ in range(3))
            deadline = time.monotonic() + 30
            while health(http)[0] != 200:
                assert time.monotonic() < deadline, health(http)
                time.sleep(0.3)

            deadline = time.monotonic() + 30  # everything acknowledged is delivered
            while not acked <= delivered(out):
                assert time.monotonic() < deadline, sorted(acked - delivered(out))
                time.sleep(0.3)
        assert "storage failing" in gw.log.read_text() and "storage works again" in gw.log.read_text()
        assert gw.terminate() == 0
    finally:
        if gw is not None:
            gw.kill()
        disk.close()
        notify.close()


def test_enospc_is_what_the_small_disk_gives(tmp_path: Path) -> None:
    """The helper really fills the file system (guards the test above against a silent no-op)."""
    disk = SmallDisk(tmp_path / "d")
    try:
        if not disk.mounted:
            pytest.skip("mount not allowed here: the daemon test runs with RLIMIT_FSIZE instead")
        disk.fill()
        fd = os.open(tmp_path / "d" / "more", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(OSError) as err:
                os.write(fd, b"x" * 8192)
        finally:
            os.close(fd)
        assert err.value.errno == errno.ENOSPC
    finally:
        disk.close()
