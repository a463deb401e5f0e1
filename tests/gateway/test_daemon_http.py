"""The daemon's local HTTP port under poison: malformed requests, huge heads, binary junk, slow clients,
too many connections. It keeps answering /healthz and counts every refusal by reason. Real sockets."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from pathlib import Path

import pytest
from support.gateway_run import InProcessGateway, http_get, write_config

from havel.gateway import config
from havel.gateway.monitoring import MAX_CLIENTS as HTTP_MAX_CLIENTS
from havel.gateway.monitoring import TIMEOUT_S as HTTP_TIMEOUT_S

pytestmark = pytest.mark.timeout(90)


def exchange(port: int, data: bytes, *, close_write: bool = False, timeout: float = 20.0) -> bytes:
    """Send ``data``, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            # (the server may answer and close before it has read everything)
            with contextlib.suppress(OSError):
                s.sendall(data)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got


def status_line(reply: bytes) -> str:
    return reply.split(b"\r\n", 1)[0].decode("latin-1")


def rejected(port: int) -> dict[str, float]:
    _, text = http_get(port, "/metrics")
    out = {}
    for line in text.splitlines():
        if line.startswith("havel_gateway_http_rejected_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def test_poison_requests_are_answered_or_closed_and_counted(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path))
    with InProcessGateway(cfg) as gw:
        port = gw.gateway.http_port
        assert port is not None
        assert status_line(exchange(port, b"\x00\xff\x13junk\r\n\r\n")) == "HTTP/1.1 400 Bad Request"
        assert status_line(exchange(port, b"GET\r\n\r\n")) == "HTTP/1.1 400 Bad Request"
        assert status_line(
            exchange(port, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n")
        ) == ("HTTP/1.1 431 Request Header Fields Too Large")
        many = b"".join(b"X-%d: %s\r\n" % (i, b"b" * 60) for i in range(400))
        assert status_line(exchange(port, b"GET /healthz HTTP/1.1\r\n" + many + b"\r\n")).startswith(
            "HTTP/1.1 431"
        )
        assert status_line(
            exchange(port, b"POST /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        ).startswith("HTTP/1.1 405")
        assert exchange(port, b"GET /status HTTP/1.1\r\nHost: x", close_write=True) == b""  # cut short

        # a slow client holds its connection only until the timeout; meanwhile others are served
        slow = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT_S + 20)
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        assert http_get(port, "/healthz")[0] == 200
        reply = slow.recv(65536)
        slow.close()
        assert (
            status_line(reply).startswith("HTTP/1.1 408") and time.monotonic() - started < HTTP_TIMEOUT_S + 15
        )

        # more connections than allowed: the extra ones are closed at once; once they go, service is back
        idle = [
            socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(HTTP_MAX_CLIENTS + 5)
        ]
        time.sleep(0.5)
        for s in idle:
            s.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                if http_get(port, "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)

        counts = rejected(port)
        for reason in ("malformed", "too_large", "method", "incomplete", "slow", "too_many_clients"):
            assert counts.get(reason, 0) >= 1, (reason, counts)
        assert counts["malformed"] >= 2 and counts["too_large"] >= 2
        assert http_get(port, "/nowhere")[0] == 404
        assert http_get(port, "/healthz?verbose=1")[0] == 200


def test_a_config_without_sinks_says_where_uplinks_go(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config.load(write_config(tmp_path, sinks=[]))
    assert [s["path"] for s in cfg.sinks] == ["-"]  # the default: standard output
    caplog.set_level(logging.WARNING, logger="havel.gateway")
    with InProcessGateway(cfg):
        pass
    assert any("no northbound sink is configured" in r.getMessage() for r in caplog.records)

    caplog.clear()
    cfg = config.load(write_config(tmp_path, sinks=[{"type": "file", "path": str(tmp_path / "o.jsonl")}]))
    with InProcessGateway(cfg):
        pass
    assert not any("no northbound sink" in r.getMessage() for r in caplog.records)
