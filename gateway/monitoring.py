"""The daemon's local HTTP port for monitoring: ``/healthz``, ``/metrics`` (Prometheus), ``/status`` (JSON).

It serves loopback monitoring, small requests only. A request head larger than :data:`MAX_HEAD`, slower than
:data:`TIMEOUT_S` or beyond :data:`MAX_CLIENTS` open connections is answered with an error (or closed) and
counted in ``http_rejected_total``, and never holds the event loop. The server knows nothing of the gateway
but a function that returns its status and the metrics it renders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from havel.gateway.metrics import Metrics

log = logging.getLogger("havel.gateway")

MAX_HEAD = 8192
TIMEOUT_S = 5.0
MAX_CLIENTS = 32
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class MonitoringServer:
    """``/metrics`` renders ``metrics``; ``/status`` is ``status()``; ``/healthz`` a part of it, with 503
    when its ``state`` is not ``ok`` (or ``status()`` failed)."""

    def __init__(self, metrics: Metrics, status: Callable[[], dict[str, Any]]) -> None:
        self.metrics = metrics
        self.status = status
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._clients = 0
        metrics.describe(
            "http_requests_total", "counter", "requests answered on the local HTTP port, by path and code"
        )
        metrics.describe(
            "http_rejected_total",
            "counter",
            "connections to the local HTTP port refused or answered with an error, by reason",
        )

    async def start(self, bind: str, port: int) -> int:
        """Listen (OSError when the address is refused); returns the port (useful with ``port`` 0)."""
        self._server = await asyncio.start_server(self._serve, bind, port, limit=MAX_HEAD)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection. Anything that is not a small, well-formed GET is answered with an
        error code (or, past the connection limit, closed) and counted in ``http_rejected_total``; nothing
        a client sends ends the server."""
        if self._clients >= MAX_CLIENTS:
            self.metrics.inc("http_rejected_total", reason="too_many_clients")
            writer.close()
            return
        self._clients += 1
        try:
            answer = await self._request(reader)
            if answer is not None:
                code, ctype, body = answer
                data = body.encode()
                writer.write(
                    f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                    + data
                )
                async with asyncio.timeout(TIMEOUT_S):  # a client that does not read
                    await writer.drain()
        except (TimeoutError, ConnectionError):
            self.metrics.inc("http_rejected_total", reason="not_reading")
        except Exception:  # a bug here must not end the server: log it, drop the connection
            log.exception("http: request failed")
        finally:
            self._clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, str, str] | None:
        """Read one request head and answer it: (code, content type, body), or None to just close."""
        head = b""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    line = await reader.readline()  # ValueError past MAX_HEAD (the stream's limit)
                    if not line.endswith(b"\n"):  # closed before the head ended
                        self.metrics.inc("http_rejected_total", reason="incomplete")
                        return None
                    head += line
                    if len(head) > MAX_HEAD:
                        raise ValueError("head too large")
                    if line in (b"\r\n", b"\n"):
                        break
        except TimeoutError:
            self.metrics.inc("http_rejected_total", reason="slow")
            return 408, "text/plain", "request head not received in time\n"
        except ValueError:  # a line or the whole head longer than MAX_HEAD
            self.metrics.inc("http_rejected_total", reason="too_large")
            return 431, "text/plain", "request head too large\n"
        parts = head.split(b"\n", 1)[0].strip().split(b" ")
        if (
            len(parts) != 3
            or not parts[2].startswith(b"HTTP/1.")
            or not parts[1].startswith(b"/")
            or not (parts[0].isascii() and parts[0].isalpha() and parts[0].isupper())
            or not parts[1].isascii()
        ):
            self.metrics.inc("http_rejected_total", reason="malformed")
            return 400, "text/plain", "malformed request\n"
        if parts[0] not in (b"GET", b"HEAD"):
            self.metrics.inc("http_rejected_total", reason="method")
            return 405, "text/plain", "only GET\n"
        path = parts[1].decode("ascii").split("?", 1)[0]
        answer = self.answer(path)
        self.metrics.inc(
            "http_requests_total", path=path if answer[0] != 404 else "other", code=str(answer[0])
        )
        return answer

    def answer(self, path: str) -> tuple[int, str, str]:
        """(code, content type, body) for a GET of ``path``."""
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.metrics.render()
        if path not in ("/healthz", "/status"):
            return 404, "text/plain", "not found: try /healthz, /metrics or /status\n"
        try:
            st = self.status()
        except Exception as exc:  # /healthz always answers: with what went wrong
            log.exception("status failed")
            return 503, "application/json", json.dumps({"state": "error", "error": str(exc)}) + "\n"
        ok = st["state"] == "ok"
        doc = (
            st
            if path == "/status"
            else {
                "state": st["state"],
                "storage": st["storage"],
                "forwarders": st["forwarders"],
                "sinks": st["sinks"],
                "outbox": st["outbox"],
                **({"relay": st["relay"]} if "relay" in st else {}),  # its paths' listener restarts
            }
        )
        code = 200 if ok or path == "/status" else 503
        return code, "application/json", json.dumps(doc, default=str) + "\n"
