"""havel.web, the shared part of the local pages, over real sockets: packaged assets, the security
headers, the Host/Origin/Content-Type rules, server-sent events with replay, and a broken handler that
does not take the page down."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from havel.web import HttpError, LocalApp, Request, serve


@pytest.fixture
def app_server() -> Iterator[tuple[LocalApp, int]]:
    app = LocalApp("test page", "havel.provisioning.web")

    @app.route("GET", "/api/hello")
    def hello(req: Request) -> Any:
        return {"hello": req.arg("who")}

    @app.route("POST", "/api/echo")
    def echo(req: Request) -> Any:
        return {"got": req.body}

    @app.route("GET", "/api/bug")
    def bug(req: Request) -> Any:
        raise ZeroDivisionError("a bug")

    @app.route("GET", "/api/teapot")
    def teapot(req: Request) -> Any:
        raise HttpError(418, "no coffee here", hint="ask the kettle")

    srv = serve(app, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield app, srv.server_address[1]
    finally:
        app.events.close()
        srv.shutdown()
        srv.server_close()


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body, headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_assets_come_from_the_package_with_strict_headers(app_server: tuple[LocalApp, int]) -> None:
    _, port = app_server
    status, h, body = request(port, "GET", "/")
    assert status == 200 and h["content-type"].startswith("text/html")
    assert b"<title>Havel kit bench</title>" in body
    assert h["content-security-policy"].startswith("default-src 'self'")
    assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
    status, h, body = request(port, "GET", "/havel/havel.css")
    assert status == 200 and h["content-type"].startswith("text/css") and b"--ink" in body
    status, h, _ = request(port, "GET", "/havel/havel.js")
    assert status == 200 and h["content-type"].startswith("text/javascript")
    for bad in ("/../web/bench.py", "/%2e%2e/bench.py", "/.hidden", "/havel/../server.py", "/nothing.js"):
        status, _, body = request(port, "GET", bad)
        assert status == 404, bad
        assert b"bench.py" not in body or b"nothing at" in body


def test_json_routes_and_errors(app_server: tuple[LocalApp, int]) -> None:
    _, port = app_server
    status, _, body = request(port, "GET", "/api/hello?who=Lab")
    assert status == 200 and json.loads(body) == {"hello": "Lab"}
    status, _, body = request(port, "GET", "/api/hello")
    assert status == 400 and "who" in json.loads(body)["error"]
    status, _, body = request(port, "GET", "/api/teapot")
    assert status == 418 and json.loads(body) == {"error": "no coffee here", "hint": "ask the kettle"}
    status, _, body = request(port, "GET", "/api/bug")
    assert status == 500 and "internal error" in json.loads(body)["error"]
    status, _, _ = request(port, "GET", "/api/hello?who=again")  # the server lives on
    assert status == 200


def test_posts_must_be_json_from_the_page_itself(app_server: tuple[LocalApp, int]) -> None:
    _, port = app_server
    js = {"Content-Type": "application/json"}
    status, _, body = request(port, "POST", "/api/echo", b'{"a": 1}', js)
    assert status == 200 and json.loads(body) == {"got": {"a": 1}}
    # a form posted by another web site cannot send JSON...
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, _ = request(port, "POST", "/api/echo", b"a=1", form)
    assert status == 415
    # ...and a script on another site is refused by its Origin
    status, _, body = request(port, "POST", "/api/echo", b"{}", {**js, "Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = request(port, "POST", "/api/echo", b"{}", {**js, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 200
    status, _, _ = request(port, "POST", "/api/echo", b"{not json", js)
    assert status == 400
    status, _, _ = request(port, "POST", "/api/echo", b"x" * 70_000, js)
    assert status == 413


def test_another_host_name_is_refused(app_server: tuple[LocalApp, int]) -> None:
    """DNS rebinding: a site whose name resolves to 127.0.0.1 sends its own name as Host."""
    _, port = app_server
    status, _, _ = request(port, "GET", "/", headers={"Host": f"evil.example:{port}"})
    assert status == 421
    status, _, _ = request(port, "GET", "/", headers={"Host": f"localhost:{port}"})
    assert status == 200


def _read_events(port: int, last_id: int | None, want: int) -> list[tuple[str, str, Any]]:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        extra = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        s.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode())
        buf = b""
        events: list[tuple[str, str, Any]] = []
        deadline = time.monotonic() + 30
        while len(events) < want and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
            _head, _, rest = buf.partition(b"\r\n\r\n")
            if not rest:
                continue
            events = []
            for block in rest.decode().split("\n\n"):
                fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                if "event" in fields:
                    events.append((fields["id"], fields["event"], json.loads(fields["data"])))
        assert b"text/event-stream" in buf
        return events
    finally:
        s.close()


def test_events_are_replayed_to_a_page_that_connects_late(app_server: tuple[LocalApp, int]) -> None:
    app, port = app_server
    app.events.publish("step", {"n": 1})
    app.events.publish("step", {"n": 2})
    got = _read_events(port, None, 2)
    assert [(k, d) for _, k, d in got] == [("step", {"n": 1}), ("step", {"n": 2})]
    # a reconnecting page says what it saw last and gets only the rest, then live events
    first_id = int(got[0][0])
    threading.Timer(0.5, app.events.publish, args=("step", {"n": 3})).start()
    rest = _read_events(port, first_id, 2)
    assert [d for _, _, d in rest] == [{"n": 2}, {"n": 3}]
