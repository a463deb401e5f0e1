"""The test broker itself (tests/support/mosquitto.py): ports, restart on the same port, pause, cleanup."""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from cryptography import x509
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber

pytestmark = pytest.mark.timeout(30)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_restart_on_the_same_port_and_cleanup() -> None:
    broker = Mosquitto(tls=True, users={"gw1": "pw"}, cert_identity=True)
    broker.start()
    ports = [broker.port, broker.tls_port, broker.acl_port, broker.acl_tls_port]
    assert all(p and accepts(p) for p in ports) and len(set(ports)) == 4
    folder = broker.folder
    broker.stop()
    assert not broker.running and not any(accepts(p) for p in ports if p)
    broker.start()
    assert [broker.port, broker.tls_port, broker.acl_port, broker.acl_tls_port] == ports
    broker.close()
    assert not broker.running and not folder.exists()


def test_server_certificate_names_localhost_and_loopback(mosquitto_secure: Mosquitto) -> None:
    pki = mosquitto_secure.pki
    assert pki is not None
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    for name in ("localhost", "127.0.0.1"):
        with (
            socket.create_connection(("127.0.0.1", mosquitto_secure.tls_port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
            assert "Havel test CA" in cert.issuer.rfc4514_string()
    key_mode = pki.server_key.stat().st_mode & 0o777
    assert key_mode == 0o600  # keys stay private, owned by the broker's user


def test_pause_holds_messages_until_resume(mosquitto: Mosquitto) -> None:
    import paho.mqtt.client as mqtt

    with Subscriber(mosquitto.port, "t/#") as sub:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        try:
            mosquitto.pause()
            info = pub.publish("t/1", b"x", qos=1)
            time.sleep(0.3)
            assert not info.is_published()  # no PUBACK from a stopped broker
            mosquitto.resume()
            info.wait_for_publish(5)
            assert sub.wait_for(1, 5)[0].payload == b"x"
        finally:
            pub.disconnect()
            pub.loop_stop()
