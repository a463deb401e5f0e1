"""The board's HTTP port takes whatever it is sent: every answer is a clear refusal or the page, nothing
changes the board (it is read-only), and afterwards the board still serves and still shows new alarms."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any

import pytest

PEGEL_1 = "70B3D57ED0001234"


def raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are; what came back before the server closed (or went quiet)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_the_board_api_is_read_only_and_strict(board_env: Any) -> None:
    port = board_env.port
    status, headers, body = get(port, "/api/board")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    snap = json.loads(body)
    assert set(snap) >= {"alarms", "paths", "devices", "unverified", "now", "window_s"}
    for path in ("/", "/board.js", "/board.css", "/favicon.svg", "/havel/havel.js", "/havel/havel.css"):
        assert get(port, path)[0] == 200, path
    # nothing to post: every POST, JSON or not, is refused and changes nothing
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path, ctype in (
        ("/api/board", "application/json"),
        ("/", "application/json"),
        ("/api/board", "text/plain"),
    ):
        c.request("POST", path, json.dumps({"alarms": []}), {"Content-Type": ctype})
        r = c.getresponse()
        assert r.status in (404, 415), (path, ctype, r.status)
        assert "error" in json.loads(r.read())
        c.close()
    # another host name (DNS rebinding), paths outside the package, hidden files
    assert get(port, "/api/board", {"Host": "evil.example"})[0] == 421
    for path in (
        "/../pyproject.toml",
        "/%2e%2e/app.py",
        "/.hidden",
        "/app.py",
        "/static/index.html",
        "/havel/../x",
    ):
        assert get(port, path)[0] == 404, path
    assert get(port, "/api/board?x=%ff%fe&x=%00")[0] == 200
    answer = raw(port, f"GET /api/board?\xe4 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode("latin-1"))
    assert status_of(answer) in (200, 400), answer[:200]


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\xff\xfe garbage \r\n\r\n",
        b"GET /api/board HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"A" * 70_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        b"POST /api/board HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 99999999\r\n\r\n{",
        b"GET /events HTTP/1.1\r\nHost: 127.0.0.1:1\r\nLast-Event-ID: not-a-number\r\n\r\n",
        b"GET /api/board HTTP/1.1\r\n",  # cut off in the headers
    ],
    ids=["binary", "huge-header", "huge-line", "huge-body", "bad-event-id", "truncated"],
)
def test_poison_on_the_board_port_leaves_it_serving(board_env: Any, junk: bytes) -> None:
    port = board_env.port
    junk = junk.replace(b"127.0.0.1:1", f"127.0.0.1:{port}".encode())
    answer = raw(port, junk, timeout=3 if b"/events" in junk else 10)
    if b"/events" in junk:
        # read from the start, not an error
        assert status_of(answer) == 200 and b"text/event-stream" in answer
    elif answer.startswith(b"HTTP/"):
        assert status_of(answer) in (400, 404, 413, 414, 421, 431), answer[:200]
    elif answer:  # a request line that is not HTTP/1.x is answered without a status line
        assert b"Error code: 400" in answer, answer[:300]
    assert get(port, "/api/board")[0] == 200


def test_the_board_still_shows_alarms_after_a_storm_of_junk(board_env: Any) -> None:
    port = board_env.port
    for _ in range(20):  # event streams opened and dropped at once, bad requests in between
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        raw(port, b"\r\n\r\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS hello on the plain port
    gw = board_env.gateway
    gw.reading(PEGEL_1, 7, 170, "alarm", time.time())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snap = json.loads(get(port, "/api/board")[2])
        if snap["alarms"]:
            break
        time.sleep(0.1)
    assert [a["id"] for a in snap["alarms"]] == [f"{PEGEL_1}-1-7"]
    assert snap["alarms"][0]["threshold"]["text"] == "level ≥ 150 cm"
