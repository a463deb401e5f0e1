"""The receiver's configuration (TOML): who may sign, where to listen, where to republish.

Receiver config::

    data_dir = "/var/lib/havel-receiver"
    prefix = "havel"
    [publish]                 # the local broker
    host = "127.0.0.1"
    port = 1883
    [[sender]]                # one per gateway
    name = "DB0ABC-10"        # its callsign (APRS source) and envelope sender
    key_file = "gw1.key"
    gateway_id = "gw1"
    [kiss]                    # optional: the TNC (direwolf)
    host = "127.0.0.1"
    port = 8001
    callsign = "DB0KST-1"     # the addressee of the alarms; acks are sent from it
    ack = true
    [mqtt]                    # optional: the crisis-centre broker the gateways publish to
    host = "127.0.0.1"
    port = 1884
    topic = "havel/+/relay/#"
    client_id = "krisenstab-1"  # a persistent session: kept while the receiver restarts

``[publish]`` and ``[mqtt]`` take the keys of the gateway's MQTT settings block
(:class:`havel.gateway.settings.MqttSettings`: ``tls``, ``ca_file``, ``cert_file``, ``key_file``,
``username``, ``password_file`` ...), here with TLS off by default (a broker in the crisis centre's own
network); relative file names are taken from the config file's folder. The old names ``tls_ca``,
``client_cert`` and ``client_key`` still work, with a warning.
    [reticulum]               # optional (havel[reticulum]): an RNS destination
    config_dir = "rns"
    amateur = false           # true: PLAIN destination (amateur radio: no encryption)
    identity_file = "rns.identity"
"""

from __future__ import annotations

import math
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from havel.errors import ConfigError, LegalError
from havel.gateway.relay import aprs
from havel.gateway.relay.signing import SigningKey, identity
from havel.gateway.settings import MqttSettings, check, key, read


@dataclass
class SenderConfig:
    name: str
    key: SigningKey
    gateway_id: str
    telemetry: list[aprs.Channel] = field(default_factory=list)


MQTT_TOPIC = "+/+/relay/#"


@dataclass(frozen=True)
class KissSection:
    """``[kiss]``: the crisis centre's TNC."""

    host: str = key("127.0.0.1")
    port: int = key(8001, lo=1, hi=65535)
    callsign: str | None = key(None)  # the addressee of the alarms; acks are sent from it
    ack: bool = key(True)
    path: tuple[str, ...] = key(())  # digipeater path of the acks
    destination: str = key("APZHVL")


@dataclass(frozen=True)
class ReticulumSection:
    """``[reticulum]``: an RNS destination (havel[reticulum])."""

    config_dir: str  # a Reticulum config without AutoInterface
    amateur: bool  # true: PLAIN destination (amateur radio: no encryption)
    encrypt: bool | None = key(None)  # default: not amateur
    identity_file: str | None = key(None)  # default: rns.identity in data_dir


@dataclass(frozen=True)
class SenderSection:
    """``[[sender]]``: one gateway whose signatures the receiver checks."""

    name: str  # its callsign (APRS source) and envelope sender
    key_file: str  # the shared signing key, relative to the config's folder
    gateway_id: str
    telemetry: tuple[dict[str, Any], ...] = key(())  # {name, unit, b, c} per APRS telemetry channel


def _given(section: type, table: Any, where: str) -> dict[str, Any] | None:
    """The table checked against its section, with only the keys it gives (the listeners apply the
    defaults); None for no table."""
    if table is None:
        return None
    checked: Any = read(section, table, where)
    return {k: getattr(checked, k) for k in table}


def publish_settings(table: Any, base: Path | None = None) -> MqttSettings:
    """``[publish]``: the local broker the receiver republishes into (TLS off by default)."""
    settings, rest = MqttSettings.from_table(table, "publish", base=base, **_defaults(table))
    if rest:
        known = ", ".join(sorted(MqttSettings.key_names()))
        raise ConfigError(f"unknown key 'publish.{sorted(rest)[0]}'", hint=known)
    return settings


def _defaults(table: Any) -> dict[str, Any]:
    """The receiver's defaults: TLS off; with the old ``tls_ca`` spelling the port stays 1883, as before."""
    old = isinstance(table, dict) and "tls_ca" in table
    return {"tls": False, "port": 1883} if old else {"tls": False}


def listen_settings(table: Any, base: Path | None = None) -> tuple[MqttSettings, str]:
    """``[mqtt]``: the broker the gateways publish to, and the topic filter (TLS off by default; a
    persistent session kept one day)."""
    settings, rest = MqttSettings.from_table(
        table,
        "mqtt",
        base=base,
        session_expiry_s=86400,
        **_defaults(table),
        client_id=f"havel-relay-receiver-{socket.gethostname()}",
    )
    topic = rest.pop("topic", MQTT_TOPIC)
    if rest:
        known = sorted(MqttSettings.key_names() | {"topic"})
        raise ConfigError(f"unknown key 'mqtt.{sorted(rest)[0]}'", hint=", ".join(known))
    if not isinstance(topic, str) or not topic:
        raise ConfigError(f"mqtt.topic must be a non-empty string, not {topic!r}")
    return settings, topic


@dataclass
class ReceiverConfig:
    data_dir: Path
    prefix: str = "havel"
    publish: MqttSettings = field(default_factory=lambda: publish_settings({}))
    senders: list[SenderConfig] = field(default_factory=list)
    kiss: dict[str, Any] | None = None
    mqtt: MqttSettings | None = None
    reticulum: dict[str, Any] | None = None
    mqtt_topic: str = MQTT_TOPIC

    @classmethod
    def load(cls, path: str | Path) -> ReceiverConfig:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except OSError as exc:
            raise ConfigError(f"receiver config {p} cannot be read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
        return cls.from_dict(raw, base=p.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Path = Path()) -> ReceiverConfig:
        known = {"data_dir", "prefix", "publish", "sender", "kiss", "mqtt", "reticulum"}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(
                f"receiver config: unknown key(s) {', '.join(sorted(unknown))}",
                hint=f"known: {', '.join(sorted(known))}",
            )
        if "data_dir" not in raw:
            raise ConfigError("receiver config: data_dir is missing")
        check(str, raw["data_dir"], "data_dir")
        check(str, raw.get("prefix", "havel"), "prefix")
        for section in ("publish", "kiss", "mqtt", "reticulum"):
            if raw.get(section) is not None and not isinstance(raw[section], dict):
                raise ConfigError(f"receiver config: [{section}] must be a table")
        if not isinstance(raw.get("sender") or [], list):
            raise ConfigError("receiver config: sender must be a list of [[sender]] tables")
        senders = []
        for i, s in enumerate(raw.get("sender") or []):
            if not isinstance(s, dict):
                raise ConfigError(f"receiver config: sender[{i}] must be a table")
            for need in ("name", "key_file", "gateway_id"):
                if need not in s:
                    raise ConfigError(f"receiver config: sender[{i}].{need} is missing")
            read(SenderSection, s, f"sender[{i}]")  # types (telemetry entries are checked below)
            channels = []
            for j, t in enumerate(s.get("telemetry") or []):
                try:
                    b, c = float(t.get("b", 1.0)), float(t.get("c", 0.0))
                    ch = aprs.Channel(str(t["name"]), str(t.get("unit", "")), 0.0, b, c)
                    if not (math.isfinite(ch.b) and math.isfinite(ch.c)) or ch.b == 0:
                        raise ValueError("b and c must be finite numbers, b not 0")
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise ConfigError(f"receiver config: sender[{i}].telemetry[{j}]: {exc}") from exc
                channels.append(ch)
            senders.append(
                SenderConfig(
                    identity(str(s["name"])),
                    SigningKey.load(base / s["key_file"]),
                    str(s["gateway_id"]),
                    channels,
                )
            )
        if not senders:
            raise ConfigError("receiver config: no [[sender]]: nothing could be verified")
        k = _given(KissSection, raw.get("kiss"), "kiss")
        rns = _given(ReticulumSection, raw.get("reticulum"), "reticulum")
        if k is not None and k.get("ack", True) and not k.get("callsign"):
            raise LegalError(
                "receiver config: kiss.callsign is missing: acks may not be sent without the "
                "station's licensed callsign",
                hint="set kiss.callsign, or ack = false",
            )
        if not raw.get("kiss") and not raw.get("mqtt") and not raw.get("reticulum"):
            raise ConfigError("receiver config: no path to listen on ([kiss], [mqtt] or [reticulum])")
        mqtt_settings, topic = listen_settings(raw["mqtt"], base) if raw.get("mqtt") else (None, MQTT_TOPIC)
        return cls(
            Path(base / raw["data_dir"]),
            str(raw.get("prefix", "havel")),
            publish_settings(raw.get("publish") or {}, base),
            senders,
            k,
            mqtt_settings,
            rns,
            topic,
        )
