"""The daemon's local HTTP port for monitoring: ``/healthz``, ``/metrics`` (Prometheus), ``/status`` (JSON),
and the roof status page at ``/`` (its packaged files and ``/roof.json``, see :mod:`havel.gateway.roofpage`).

It serves loopback monitoring, small requests only. A request head larger than :data:`MAX_HEAD`, slower than
:data:`TIMEOUT_S` or beyond :data:`MAX_CLIENTS` open connections is answered with an error (or closed) and
counted in ``http_rejected_total``, and never holds the event loop. The server knows nothing of the gateway
but a function that returns its status and the metrics it renders.

The page and its JSON answer only when the ``Host`` header is an IP address or ``localhost`` (a web site
cannot reach them through a DNS name it points at this machine), with the same security headers as Havel's
other local pages (``Content-Security-Policy: default-src 'self'``...)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from havel.gateway.metrics import Metrics
from havel.gateway.roofpage import PAGE_PATHS, UplinkRate, page, roof_document
from havel.web.server import CSP

log = logging.getLogger("havel.gateway")

MAX_HEAD = 8192
TIMEOUT_S = 5.0
MAX_CLIENTS = 32
SAMPLE_S = 5.0  # how often the uplink counter is sampled for the page's per-minute chart
ACCEPTED = "uplinks_accepted_total"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    421: "Misdirected Request",
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
        self.page = page()
        self.rate = UplinkRate()
        self._sampler: asyncio.Task[None] | None = None
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
        self._sampler = asyncio.create_task(self._sample(), name="http-uplink-rate")
        return self.port

    async def _sample(self) -> None:
        while True:
            try:
                self.rate.sample(self.metrics.total(ACCEPTED), time.time())
            except Exception:  # a bug here must not stop the sampling (nor anything else)
                log.exception("http: sampling the uplink rate failed")
            await asyncio.sleep(SAMPLE_S)

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
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
                code, ctype, body, head_only = answer
                data = body.encode() if isinstance(body, str) else body
                writer.write(
                    f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(data)}\r\n{_HEADERS}Connection: close\r\n\r\n".encode()
                    + (b"" if head_only else data)
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

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, str, str | bytes, bool] | None:
        """Read one request head and answer it: (code, content type, body, HEAD), or None to just close."""
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
            return 408, "text/plain", "request head not received in time\n", False
        except ValueError:  # a line or the whole head longer than MAX_HEAD
            self.metrics.inc("http_rejected_total", reason="too_large")
            return 431, "text/plain", "request head too large\n", False
        parts = head.split(b"\n", 1)[0].strip().split(b" ")
        if (
            len(parts) != 3
            or not parts[2].startswith(b"HTTP/1.")
            or not parts[1].startswith(b"/")
            or not (parts[0].isascii() and parts[0].isalpha() and parts[0].isupper())
            or not parts[1].isascii()
        ):
            self.metrics.inc("http_rejected_total", reason="malformed")
            return 400, "text/plain", "malformed request\n", False
        if parts[0] not in (b"GET", b"HEAD"):
            self.metrics.inc("http_rejected_total", reason="method")
            return 405, "text/plain", "only GET\n", False
        path = parts[1].decode("ascii").split("?", 1)[0]
        head_only = parts[0] == b"HEAD"
        if (path in PAGE_PATHS or path == "/roof.json") and not _local_host(_header(head, b"host")):
            self.metrics.inc("http_rejected_total", reason="host")
            return 421, "text/plain", "the page answers only to an IP address or localhost\n", head_only
        answer = self.answer(path)
        self.metrics.inc(
            "http_requests_total", path=path if answer[0] != 404 else "other", code=str(answer[0])
        )
        return (*answer, head_only)

    def answer(self, path: str) -> tuple[int, str, str | bytes]:
        """(code, content type, body) for a GET of ``path``."""
        if path in PAGE_PATHS:
            found = self.page.asset(path)
            if found is not None:
                return 200, found[1], found[0]
        if path == "/roof.json":
            return self.roof()
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.metrics.render()
        if path not in ("/healthz", "/status"):
            return 404, "text/plain", "not found: try /, /healthz, /metrics or /status\n"
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

    def roof(self) -> tuple[int, str, str]:
        """``/roof.json``: the status with the uplinks per minute (503 with the error if status() failed)."""
        now = time.time()
        try:
            st = self.status()
        except Exception as exc:
            log.exception("status failed")
            return 503, "application/json", json.dumps({"now": now, "error": str(exc)}) + "\n"
        return 200, "application/json", json.dumps(roof_document(st, self.rate, now), default=str) + "\n"


# the headers of Havel's local pages (havel.web): no inline script, nothing from elsewhere, no caching
_HEADERS = (
    f"Content-Security-Policy: {CSP}\r\nX-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\nCache-Control: no-store\r\nX-Frame-Options: DENY\r\n"
)


def _header(head: bytes, name: bytes) -> str | None:
    """The value of header ``name`` (lower case) in a request head, or None."""
    for line in head.split(b"\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def _local_host(host: str | None) -> bool:
    """True for a Host that is an IP address or localhost (with or without a port): no DNS name, so no
    site can point one of its names at this machine and read the page (DNS rebinding)."""
    if not host:
        return False
    name = host.strip().lower()
    if name.startswith("["):  # [IPv6]:port
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
