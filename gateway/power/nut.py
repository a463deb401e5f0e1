"""A client of the Network UPS Tools network protocol: read the variables of one UPS from ``upsd``.

Why the protocol and not ``upsc``: the daemon asks every few seconds for years, and a process per question
costs more than the question on a Pi; the gateway host need not have ``nut-client`` installed when upsd
runs on another machine; and the protocol's error codes (``ERR DATA-STALE``, ``ERR UNKNOWN-UPS``) arrive as
codes, not as text to parse. The protocol is one line per request (``LIST VAR <ups>``) answered by
``BEGIN LIST VAR`` / ``VAR <ups> <name> "<value>"`` / ``END LIST VAR`` lines (docs/net-protocol.txt of NUT).

No login is sent (reading variables needs none), so nothing secret travels; keep upsd on loopback or on a
trusted network, as NUT recommends.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from havel.errors import ConfigError, TransportError

DEFAULT_PORT = 3493
MAX_LINE = 4096  # a VAR line is far shorter; a longer one is not upsd
MAX_VARS = 2000  # an upsd with a real UPS lists about 100
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class NutError(TransportError):
    """upsd did not answer, answered ``ERR <code>``, or answered something that is not the protocol.
    ``code`` is NUT's error code (``DATA-STALE``, ``UNKNOWN-UPS``, ...) or ``connect``/``protocol``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UpsAddress:
    """``name@host:port`` as NUT writes it (``upsc roofups@127.0.0.1:3493``)."""

    name: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        return f"{self.name}@{self.host}:{self.port}"


def parse_ups(text: str) -> UpsAddress:
    """``roofups``, ``roofups@host`` or ``roofups@host:port``; ConfigError otherwise."""
    name, _, where = str(text).partition("@")
    host, port = "127.0.0.1", DEFAULT_PORT
    if where:
        host, _, port_s = where.rpartition(":") if ":" in where else (where, "", "")
        if port_s:
            try:
                port = int(port_s)
            except ValueError:
                raise ConfigError(f"power.ups {text!r}: port {port_s!r} is not a number") from None
    if not _NAME.match(name) or not host or not 0 < port < 65536:
        raise ConfigError(
            f"power.ups {text!r} is not a NUT UPS name", hint='e.g. "roofups" or "roofups@127.0.0.1:3493"'
        )
    return UpsAddress(name, host, port)


def _unquote(text: str) -> str:
    """A quoted protocol value: ``"a \\"b\\""`` -> ``a "b"``."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise NutError(f"upsd sent an unquoted value: {text[:80]!r}", "protocol")
    out = []
    chars = iter(text[1:-1])
    for c in chars:
        out.append(next(chars, "") if c == "\\" else c)
    return "".join(out)


def list_vars(ups: UpsAddress, *, timeout: float = 5.0) -> dict[str, str]:
    """Every variable of the UPS (``ups.status``, ``battery.charge``, ``battery.runtime`` ...)."""
    try:
        sock = socket.create_connection((ups.host, ups.port), timeout=timeout)
    except OSError as exc:
        raise NutError(
            f"cannot reach upsd at {ups.host}:{ups.port}: {exc.strerror or exc}", "connect"
        ) from None
    with sock:
        f = sock.makefile("rwb")
        try:
            f.write(f"LIST VAR {ups.name}\n".encode("ascii"))
            f.flush()
            result = _read_list(f, ups)
            f.write(b"LOGOUT\n")
            f.flush()
            return result
        except OSError as exc:  # (socket.timeout is an OSError)
            raise NutError(f"upsd at {ups.host}:{ups.port}: {exc}", "connect") from None


def _read_line(f: object) -> str:
    raw = f.readline(MAX_LINE + 1)  # type: ignore[attr-defined]
    if not raw:
        raise NutError("upsd closed the connection", "protocol")
    if len(raw) > MAX_LINE:
        raise NutError("upsd sent an over-long line", "protocol")
    try:
        return str(raw.decode("utf-8")).rstrip("\r\n")
    except UnicodeDecodeError:
        raise NutError("upsd sent a line that is not UTF-8", "protocol") from None


def _read_list(f: object, ups: UpsAddress) -> dict[str, str]:
    line = _read_line(f)
    if line.startswith("ERR "):
        code = line[4:].split(" ", 1)[0]
        raise NutError(f"upsd: {code} for UPS {ups.name}", code)
    if line != f"BEGIN LIST VAR {ups.name}":
        raise NutError(f"upsd answered {line[:80]!r} to LIST VAR", "protocol")
    out: dict[str, str] = {}
    prefix = f"VAR {ups.name} "
    while True:
        line = _read_line(f)
        if line == f"END LIST VAR {ups.name}":
            return out
        if not line.startswith(prefix) or len(out) >= MAX_VARS:
            raise NutError(f"upsd sent {line[:80]!r} inside the variable list", "protocol")
        name, _, value = line[len(prefix) :].partition(" ")
        out[name] = _unquote(value)
