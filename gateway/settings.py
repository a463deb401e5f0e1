"""Config sections declared once, as frozen dataclasses with their defaults, and one reader for all of them.

A section is a ``@dataclass(frozen=True)`` whose fields are its TOML keys. The type of a field says what a
key may hold (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``tuple[X, ...]``, ``list[X]``,
``dict[str, Any]`` for a table, ``Any``), its default is the default, and :func:`key` adds bounds,
choices or a parser. :func:`read` checks a table against the section: an unknown key, a value of the
wrong type or out of range raises :class:`havel.errors.ConfigError` naming the exact key
(``relay.path[0].port``). A small helper instead of a schema library keeps the gateway's base install at
paho-mqtt alone.

:class:`MqttSettings` is the one block of broker connection settings that the ``mqtt`` sinks, the relay's
MQTT path and the relay receiver share (host, port, TLS, credentials, client id, session)::

    settings, rest = MqttSettings.from_table(table, "sink[platform]")
"""

from __future__ import annotations

import dataclasses
import logging
import math
import stat
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from havel.errors import ConfigError

__all__ = ["MAX_DEPTH", "MqttSettings", "TlsSettings", "check_values", "key", "keys_of", "read"]

log = logging.getLogger("havel.gateway.settings")

T = TypeVar("T")
MAX_NUMBER = 1e12  # no number the gateway reads is anywhere near this (timeouts, sizes, rates)
MAX_PASSWORD_BYTES = 4096
MAX_DEPTH = 8  # tables and arrays nested in the document; the deepest the gateway's own config uses is 4


def key(
    default: Any = dataclasses.MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[Any, ...] | None = None,
    parse: Callable[[Any, str], Any] | None = None,
    toml: bool = True,
    whole: bool = False,
) -> Any:
    """A field of a section: ``lo``/``hi`` bound a number (both inclusive), ``choices`` lists the allowed
    values, ``parse(value, where)`` replaces the type check (it returns the value or raises ConfigError);
    ``toml=False`` marks a field that is derived, not read from the file; ``whole=True`` lets an integer
    field take a float with no fraction (``30.0``)."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "parse": parse, "toml": toml, "whole": whole}
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple as a default")
    return field(default=default, metadata=meta)


def keys_of(section: type) -> list[str]:
    """The TOML keys a section declares, in order."""
    return [f.name for f in dataclasses.fields(section) if f.metadata.get("toml", True)]


def read(section: type[T], table: Any, where: str, **given: Any) -> T:
    """The section ``where`` from its TOML table (a missing key takes its default). ``given`` sets fields
    the caller computed (derived fields, or keys it read itself); ConfigError names the key."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, not {_show(table)}")
    names = keys_of(section)
    unknown = sorted(set(table) - set(names) - set(given))
    if unknown:
        raise ConfigError(
            f"unknown key '{where}.{unknown[0]}'", hint=f"known keys: {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(section)
    fields: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(typing.cast(Any, section))
    values: dict[str, Any] = dict(given)
    for f in fields:
        if f.name in given or not f.metadata.get("toml", True) or f.name not in table:
            continue
        values[f.name] = check(hints[f.name], table[f.name], f"{where}.{f.name}", f.metadata)
    missing = [
        f.name
        for f in fields
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}.{missing[0]} is missing")
    return section(**values)


def check(typ: Any, value: Any, where: str, meta: Any = None) -> Any:
    """``value`` as the type ``typ`` (with the bounds of ``meta``), or ConfigError naming ``where``."""
    meta = meta or {}
    if meta.get("parse") is not None:
        return meta["parse"](value, where)
    optional, base = _unwrap(typ)
    if value is None and optional:
        return None
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(
            f"{where} is {_show(value)}", hint="one of " + ", ".join(str(c) for c in meta["choices"])
        )
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {_show(value)}")
        return value
    if base is int or base is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (base is int and isinstance(value, float) and not (meta.get("whole") and value.is_integer()))
        ):
            what = "an integer" if base is int else "a number"
            raise ConfigError(f"{where} must be {what}, not {_show(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value} is not a finite number")
        lo, hi = meta.get("lo"), meta.get("hi")
        hi = MAX_NUMBER if hi is None else hi
        if (lo is not None and value < lo) or value > hi:
            raise ConfigError(f"{where} = {value} is out of range", hint=f"allowed {_g(lo)}..{_g(hi)}")
        return base(value)
    if base is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a non-empty string, not {_show(value)}")
        return value
    if base is Any:
        return value
    origin = typing.get_origin(base)
    if origin is tuple or origin is list:
        (item,) = [a for a in typing.get_args(base) if a is not Ellipsis]
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, not {_show(value)}")
        items = [check(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or base is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, not {_show(value)}")
        return dict(value)
    raise TypeError(f"{where}: no reader for {typ!r}")  # a mistake in a section's declaration


def check_values(raw: dict[str, Any]) -> None:
    """What every value of a config document must satisfy, whichever section reads it: no NaN or
    infinity, no integer beyond 64 bits, no NUL character in a string, nesting at most :data:`MAX_DEPTH`
    deep; ConfigError names the key. Iterative, so that no nesting can exhaust the stack."""
    todo: list[tuple[str, Any, int]] = [(k, v, 1) for k, v in raw.items()]
    while todo:
        where, value, depth = todo.pop()
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{where} is nested too deeply", hint=f"at most {MAX_DEPTH} levels")
            todo += [(f"{where}.{k}", v, depth + 1) for k, v in value.items()]
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{where} is nested too deeply", hint=f"at most {MAX_DEPTH} levels")
            todo += [(f"{where}[{i}]", v, depth + 1) for i, v in enumerate(value)]
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(f"{where} = {value} is not a finite number")
        elif isinstance(value, int) and not isinstance(value, bool):
            if not -(1 << 63) <= value < 1 << 63:
                raise ConfigError(f"{where} = {value} does not fit in 64 bits")
        elif isinstance(value, str) and "\x00" in value:
            raise ConfigError(f"{where} holds a NUL character")


def _unwrap(typ: Any) -> tuple[bool, Any]:
    """(None allowed, the other type) of ``X | None``."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if len(args) == 1:
            return True, args[0]
    return False, typ


def _show(value: Any) -> str:
    """A value for an error message (short: a config may hold a 1 MB string)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _g(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


# ------------------------------------------------------------------------------------------------ MQTT


@dataclass(frozen=True)
class TlsSettings:
    """TLS for a broker connection. Verification (chain and host name) is always on."""

    ca_file: str | None = None  # None: the system's trusted CAs
    cert_file: str | None = None
    key_file: str | None = None


# The receiver's spelling of the TLS keys before the three MQTT users shared one block; still accepted.
DEPRECATED_TLS_KEYS = {"tls_ca": "ca_file", "client_cert": "cert_file", "client_key": "key_file"}


@dataclass(frozen=True)
class MqttSettings:
    """How to reach and log in to one MQTT broker (v5, QoS 1). The keys of this block are the same in a
    ``[[sink]]`` of type mqtt, a ``[[relay.path]]`` of type mqtt and the receiver's ``[mqtt]`` and
    ``[publish]``; each user passes its own defaults to :meth:`from_table`."""

    host: str = key("127.0.0.1")
    port: int | None = key(None, lo=1, hi=65535)  # None: 8883 with TLS, 1883 without
    tls: bool = key(True)  # verification is always on when TLS is on
    ca_file: str | None = key(None)  # default: the system's trusted CAs
    cert_file: str | None = key(None)  # a client certificate (with key_file)
    key_file: str | None = key(None)
    username: str | None = key(None)
    password: str | None = key(None)  # better password_file: the config file then holds no secret
    password_file: str | None = key(None)  # first line is the password; must not be readable by others
    client_id: str | None = key(None)  # None: the user's default (sinks: havel-<gateway id>-<name>)
    keepalive_s: int = key(30, lo=1, hi=65535, whole=True)
    clean_start: bool = key(False)  # False + session_expiry_s: the broker keeps the session
    session_expiry_s: int = key(604800, lo=0, hi=0xFFFFFFFF, whole=True)
    reconnect_min_s: float = key(1.0, lo=0.001)
    reconnect_max_s: float = key(5.0, lo=0.001)
    connect_timeout_s: float = key(10.0, lo=0.001)

    @classmethod
    def key_names(cls) -> set[str]:
        return set(keys_of(cls))

    @classmethod
    def from_table(
        cls, table: Any, where: str, *, base: Path | None = None, **defaults: Any
    ) -> tuple[MqttSettings, dict[str, Any]]:
        """The settings from the keys of this block in ``table``, and the table's other keys (for the
        caller to check). ``defaults`` replace this block's defaults for this user (e.g. ``tls=False`` for
        the receiver's local broker); ``base`` is the folder relative file names are taken from. The
        receiver's old names ``tls_ca``, ``client_cert``, ``client_key`` are read with a warning (and
        ``tls_ca`` switches TLS on, as it did)."""
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table, not {_show(table)}")
        mine = {k: v for k, v in table.items() if k in cls.key_names()}
        rest = {k: v for k, v in table.items() if k not in cls.key_names() and k not in DEPRECATED_TLS_KEYS}
        for old, new in DEPRECATED_TLS_KEYS.items():
            if old in table:
                if new in table:
                    raise ConfigError(
                        f"{where}.{old} and {where}.{new} are the same setting", hint=f"keep {new}"
                    )
                log.warning("%s.%s is deprecated: call it %s", where, old, new)
                mine[new] = table[old]
                if old == "tls_ca":
                    mine.setdefault("tls", True)
        s = read(cls, {**{k: v for k, v in defaults.items() if k not in mine}, **mine}, where)
        return s.resolved(where, base), rest

    def resolved(self, where: str, base: Path | None) -> MqttSettings:
        """Checks across keys, file names made absolute, the port default and the password file read."""
        files = {}
        for name in ("ca_file", "cert_file", "key_file", "password_file"):
            value = getattr(self, name)
            if value is not None:
                p = Path(value)
                if base is not None and not p.is_absolute():
                    p = base / p
                if name != "password_file" and not self.tls:
                    raise ConfigError(f"{where}.{name} is set but tls = false")
                if not p.is_file():
                    raise ConfigError(f"{where}.{name}: {p} does not exist or is not a file")
                value = str(p)
            files[name] = value
        if (files["cert_file"] is None) != (files["key_file"] is None):
            raise ConfigError(f"{where}: cert_file and key_file go together")
        password = self.password
        if files["password_file"] is not None:
            if password is not None:
                raise ConfigError(f"{where}: password and password_file both set", hint="keep password_file")
            password = _read_password(Path(files["password_file"]), f"{where}.password_file")
        if password is not None and self.username is None:
            raise ConfigError(f"{where}.password is set without username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ConfigError(f"{where}.reconnect_max_s is below reconnect_min_s")
        port = self.port if self.port is not None else (8883 if self.tls else 1883)
        return dataclasses.replace(self, port=port, password=password, **files)

    @property
    def tls_settings(self) -> TlsSettings | None:
        """The TLS files, or None when TLS is off."""
        return TlsSettings(self.ca_file, self.cert_file, self.key_file) if self.tls else None

    def __repr__(self) -> str:  # no password, ever
        return (
            f"MqttSettings(host={self.host!r}, port={self.port}, tls={self.tls}, username={self.username!r})"
        )


def _read_password(path: Path, where: str) -> str:
    """The first line of a password file that only its owner may read (like a key file: 0600)."""
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{where}: {path} can be read by other users", hint=f"chmod 600 {path}")
        if st.st_size > MAX_PASSWORD_BYTES:
            raise ConfigError(f"{where}: {path} is larger than {MAX_PASSWORD_BYTES} bytes")
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_PASSWORD_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not UTF-8 text") from None
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password or "\x00" in password:
        raise ConfigError(f"{where}: the first line of {path} must hold the password")
    return password
