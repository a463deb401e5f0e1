"""The broker connection's settings on a paho-mqtt client: protocol, TLS, credentials and last will.

Every MQTT client of the gateway is made by :func:`make_client`, so that the protocol settings, TLS
(chain and host name always verified) and credentials are set in one place. Connection errors are put into
words an operator can act on by :func:`describe_error`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from havel.errors import ConfigError
from havel.gateway.settings import MqttSettings

__all__ = ["NO_RECEIVE_MAXIMUM", "Will", "configure", "describe_error", "make_client"]

NO_RECEIVE_MAXIMUM = 65535  # the MQTT 5 default when the broker states no Receive Maximum


@dataclass(frozen=True)
class Will:
    """The last will the broker publishes when the connection ends without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def describe_error(exc: BaseException) -> str:
    """A connection error in words an operator can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (broker not running or wrong port)"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def configure(client: mqtt.Client, settings: MqttSettings, where: str) -> None:
    """TLS (chain and host name always verified) and credentials of ``client`` from ``settings``;
    ConfigError (naming ``where``) when the TLS files cannot be loaded."""
    tls = settings.tls_settings
    if tls is not None:
        try:
            client.tls_set(
                ca_certs=tls.ca_file,
                certfile=tls.cert_file,
                keyfile=tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"{where}: TLS files cannot be loaded: {exc}", hint="check ca_file, cert_file and key_file"
            ) from None
        client.tls_insecure_set(False)
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)


def make_client(
    settings: MqttSettings, *, client_id: str, where: str, manual_ack: bool, will: Will | None
) -> mqtt.Client:
    """A paho client for MQTT v5 with ``settings``' TLS and credentials and ``will``; it never reconnects
    by itself (the caller's supervisor does, with visible errors)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=False,
        manual_ack=manual_ack,
    )
    client.connect_timeout = settings.connect_timeout_s
    # 0 = no paho-side limit: the users keep their own window (the forwarder: within Receive Maximum)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.suppress_exceptions = True  # the last line: our callbacks catch what they can themselves
    configure(client, settings, where)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    return client
