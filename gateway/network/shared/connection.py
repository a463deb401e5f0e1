"""The connection to the shared store: where it is (:class:`StoreSettings`), the client (TLS verified, the
password only from a 0600 file), the URL as logs show it, and what a cut connection raises.

Key layout of the store (prefix ``havel:``; one Redis server or a primary with replicas, not Redis Cluster,
because the scripts in :mod:`.scripts` touch keys they compute):

- ``dev:<DevEUI>`` hash: the device (name, codec, activation, JoinEUI, AppKey) and its session (DevAddr, keys,
  ``fcnt_up``, ``fcnt_down``, ``epoch`` = joins accepted, RX settings, battery, last seen)
- ``addr:<DevAddr>`` set of DevEUIs, ``nonces:<DevEUI>`` set of used DevNonces, ``join_nonce`` counter
- ``lock:<frame>`` the roof that processes a frame (``SET NX PX``), ``copies:<frame>`` every roof's copy,
  ``done:<frame>`` the frame was stored
- ``dlq:<DevEUI>`` the device's queued commands, ``tx:<roof>`` downlinks handed to a roof,
  ``dc:<gateway>`` set while that gateway waits for its duty cycle
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from havel.errors import ConfigError, StorageError

PREFIX = "havel:"
# what a cut connection raises: the roof falls back instead of failing
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


class DamagedEntry(StorageError):
    """An entry in the shared store that cannot be read (wrong type, missing or malformed field)."""


@dataclass(frozen=True)
class StoreSettings:
    """Where the shared store is: ``url`` ``redis://host:port/db`` or ``rediss://`` (TLS, verified against
    ``ca_file`` or the system's CAs); the password only from ``password_file`` (mode 0600)."""

    url: str
    password_file: str | None = None
    ca_file: str | None = None
    timeout_s: float = 1.0


def read_password(path: str) -> str:
    """The password in ``path``; refused when others may read the file (a password never goes in argv)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"network.password_file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"network.password_file {path} may be read by others (mode {stat.S_IMODE(mode):04o})",
            hint=f"chmod 600 {path}",
        )
    return text.strip()


def connect(settings: StoreSettings) -> redis.Redis:
    """A client for the shared store (nothing is sent yet). The URL must not carry a password."""
    parts = urlsplit(settings.url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(
            f"network.store {parts.scheme}:// is not a Redis URL", hint="redis://host:6379/0 or rediss://..."
        )
    if parts.password:
        raise ConfigError(
            "network.store carries a password: it would show in configs and logs",
            hint="put it in a file with mode 0600 and name it as network.password_file",
        )
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.timeout_s,
        "socket_connect_timeout": settings.timeout_s,
        "decode_responses": True,
        "health_check_interval": 0,
        # one immediate retry (a pooled connection Redis closed on restart), no backoff: an unreachable
        # store must send the roof to its fallback within the timeout, not after seconds of retries
        "retry": Retry(NoBackoff(), 1),
    }
    if settings.password_file:
        kwargs["password"] = read_password(settings.password_file)
    if parts.scheme == "rediss":
        kwargs["ssl_cert_reqs"] = "required"
        kwargs["ssl_check_hostname"] = True
        if settings.ca_file:
            kwargs["ssl_ca_certs"] = settings.ca_file
    return redis.Redis.from_url(settings.url, **kwargs)


def redacted(url: str) -> str:
    """The URL as logs show it (no user name or password)."""
    p = urlsplit(url)
    host = p.hostname or ""
    return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}{p.path}"


def text(v: Any) -> str:
    """A reply as text (the client decodes replies; the type stubs do not know)."""
    return v.decode() if isinstance(v, bytes) else str(v)


def texts(h: Any) -> dict[str, str]:
    """A hash reply as text."""
    return {text(k): text(v) for k, v in h.items()}
