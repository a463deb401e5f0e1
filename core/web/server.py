"""The HTTP side of Havel's local pages: packaged static files, JSON endpoints and server-sent events.

A page is a :class:`LocalApp`: its static files come from a package folder (``importlib.resources``,
so an installed wheel serves the same bytes as a checkout), its API is a table of
``(method, path) -> handler``, and its live updates go through an :class:`EventHub` at ``/events``.
The shared stylesheet is at ``/havel/havel.css`` and the small shared script at ``/havel/havel.js``.

Safe by default, because these pages drive hardware and hold secrets in forms:
- every answer carries ``Content-Security-Policy: default-src 'self'`` (no inline script or style, nothing
  from another origin), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
  ``Cache-Control: no-store``;
- the ``Host`` header must name the address the server is bound to (or ``localhost``): a web site the
  volunteer visits cannot reach the page through DNS rebinding;
- a request that changes something (POST) must send JSON (``Content-Type: application/json``, which a
  plain HTML form from another site cannot) and, when the browser sends an ``Origin``, come from the page;
- request bodies are never logged, and are limited in size.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("havel.web")

CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
MAX_BODY = 64 * 1024
SSE_KEEPALIVE_S = 15.0
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".ico": "image/x-icon",
}


class HttpError(Exception):
    """Raised by a handler: answered as ``{"error": message, "hint": hint}`` with this status."""

    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # the decoded JSON of a POST, else None

    def arg(self, name: str, default: str | None = None) -> str:
        """A query parameter; 400 when it is missing and has no default."""
        if name in self.query:
            return self.query[name]
        if default is None:
            raise HttpError(400, f"the request lacks the parameter {name!r}")
        return default


@dataclass
class Response:
    body: bytes
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(json.dumps(data).encode(), "application/json", status)


Handler = Callable[[Request], "Response | Any"]


class EventHub:
    """Server-sent events to every open page, with a replay of the recent ones.

    Each event has an increasing id; a page that connects (or reconnects, with ``Last-Event-ID``) first
    gets the events it has not seen from the last ``keep`` ones, so a reloaded page shows where a running
    job is. :meth:`clear` starts a new history (e.g. a new job).
    """

    def __init__(self, keep: int = 2000) -> None:
        self._cond = threading.Condition()
        self._events: list[tuple[int, str, str]] = []  # (id, kind, JSON data)
        self._next = 1
        self._keep = keep
        self._closed = False

    def publish(self, kind: str, data: Any) -> None:
        with self._cond:
            self._events.append((self._next, kind, json.dumps(data)))
            self._next += 1
            del self._events[: -self._keep]
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._events.clear()
            self.publish("reset", {})

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def history(self) -> list[tuple[int, str, Any]]:
        with self._cond:
            return [(i, k, json.loads(d)) for i, k, d in self._events]

    def follow(
        self, after: int, keepalive_s: float = SSE_KEEPALIVE_S
    ) -> Iterator[tuple[int, str, str] | None]:
        """Events with an id above ``after``, as they come; None every ``keepalive_s`` of silence."""
        while True:
            with self._cond:
                pending = [e for e in self._events if e[0] > after]
                if not pending and not self._closed:
                    self._cond.wait(keepalive_s)
                    pending = [e for e in self._events if e[0] > after]
                if self._closed and not pending:
                    return
            if not pending:
                yield None
                continue
            for e in pending:
                after = e[0]
                yield e


class LocalApp:
    """One local page: static files from ``package``/``folder``, JSON routes, and ``/events``."""

    def __init__(self, title: str, package: str, folder: str = "static") -> None:
        self.title = title
        self.static: Traversable = resources.files(package) / folder
        self.shared: Traversable = resources.files("havel.web") / "static"
        self.routes: dict[tuple[str, str], Handler] = {}
        self.events = EventHub()

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@app.route("GET", "/api/kits")``; the handler returns a Response or JSON data."""

        def deco(fn: Handler) -> Handler:
            self.routes[(method, path)] = fn
            return fn

        return deco

    def asset(self, path: str) -> tuple[bytes, str] | None:
        """A packaged file for a URL path, or None (no ``..``, no hidden files)."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            parts = ["index.html"]
        if any(p.startswith(".") or "\\" in p for p in parts):
            return None
        base = self.static
        if parts[0] == "havel" and len(parts) == 2:
            base, parts = self.shared, parts[1:]
        node = base
        for p in parts:
            node = node / p
        if not node.is_file():
            return None
        suffix = "." + parts[-1].rsplit(".", 1)[-1] if "." in parts[-1] else ""
        return node.read_bytes(), TYPES.get(suffix, "application/octet-stream")


def _handler_class(app: LocalApp, allowed_hosts: set[str]) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        server_version = "havel"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)  # request line only, never bodies

        def _send(self, r: Response) -> None:
            self.send_response(r.status)
            self.send_header("Content-Type", r.content_type)
            self.send_header("Content-Length", str(len(r.body)))
            for k, v in _security_headers().items():
                self.send_header(k, v)
            for k, v in r.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(r.body)

        def _error(self, e: HttpError) -> None:
            # a refused request may have left its body unread: never read it as the next request
            self.close_connection = True
            self._send(Response.json({"error": e.message, "hint": e.hint}, e.status))

        def _host_ok(self) -> bool:
            host = (self.headers.get("Host") or "").strip().lower()
            return host in allowed_hosts

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            try:
                if not self._host_ok():
                    raise HttpError(421, "this page answers only on its own address (localhost)")
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if method == "GET" and url.path == "/events":
                    self._events()
                    return
                body = None
                if method == "POST":
                    body = self._read_json()
                fn = self.routes_for(method, url.path)
                if fn is None:
                    if method == "GET":
                        found = app.asset(url.path)
                        if found is not None:
                            self._send(Response(found[0], found[1]))
                            return
                    raise HttpError(404, f"nothing at {url.path}")
                out = fn(Request(method, url.path, query, body))
                self._send(out if isinstance(out, Response) else Response.json(out))
            except HttpError as e:
                self._error(e)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception:  # a bug in one handler must not take the page down; the log says what
                log.exception("error answering %s %s", method, self.path)
                self._error(HttpError(500, "internal error: see the terminal running the server"))

        def routes_for(self, method: str, path: str) -> Handler | None:
            if method == "HEAD":
                method = "GET"
            return app.routes.get((method, path))

        def _read_json(self) -> Any:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise HttpError(415, "send JSON (Content-Type: application/json)")
            origin = self.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc.lower() not in allowed_hosts:
                raise HttpError(403, "requests must come from this page")
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError as exc:
                raise HttpError(400, "bad Content-Length") from exc
            if n > MAX_BODY:
                raise HttpError(413, f"request larger than {MAX_BODY} bytes")
            raw = self.rfile.read(n) if n else b""
            try:
                return json.loads(raw or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise HttpError(400, "the request body is not valid JSON") from exc

        def _events(self) -> None:
            try:
                after = int(self.headers.get("Last-Event-ID") or 0)
            except ValueError:
                after = 0
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            for k, v in _security_headers().items():
                self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for e in app.events.follow(after):
                    if e is None:
                        self.wfile.write(b": keep-alive\n\n")
                    else:
                        i, kind, data = e
                        self.wfile.write(f"id: {i}\nevent: {kind}\ndata: {data}\n\n".encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass

    return H


def _security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an open event stream must not keep the process alive at exit

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a browser that went away mid-answer is normal; anything else is logged, and the server goes on
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


def serve(app: LocalApp, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server for ``app`` bound to host:port (0: any free port); call ``serve_forever()`` on it.

    The address it is reachable under is ``http://{host}:{server.server_address[1]}/``.
    """
    srv = _Server((host, port), _handler_class(app, set()))
    bound = srv.server_address[1]
    hosts = {f"{host}:{bound}", f"localhost:{bound}", f"127.0.0.1:{bound}"}
    if host in ("::1", "[::1]"):
        hosts.add(f"[::1]:{bound}")
    srv.RequestHandlerClass = _handler_class(app, hosts)
    return srv
