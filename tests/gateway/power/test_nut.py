"""The NUT protocol client against a real upsd, and against a server that does not speak the protocol."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from nut_server import UpsServer

from havel.errors import ConfigError
from havel.gateway.power import nut
from havel.gateway.power.state import BATTERY, LOW, MAINS, Limits, reading


def test_reads_the_ups_and_follows_its_state(ups: UpsServer) -> None:
    addr = nut.parse_ups(ups.address)
    v = nut.list_vars(addr)
    assert v["ups.status"] == "OL" and v["battery.charge"] == "100" and v["driver.name"] == "dummy-ups"
    assert reading(v).state(Limits()) == MAINS
    ups.set("OB DISCHRG", charge=80, runtime=2400)
    ups.wait_for("OB DISCHRG")
    r = reading(nut.list_vars(addr))
    assert (r.on_battery, r.charge_pct, r.runtime_s, r.state(Limits())) == (True, 80, 2400, BATTERY)
    ups.set("OB DISCHRG", charge=60, runtime=500)  # Havel's limit (600 s) before the UPS's own LB
    ups.wait_for("OB DISCHRG", runtime=500)
    assert reading(nut.list_vars(addr)).state(Limits(low_runtime_s=600)) == LOW


def test_errors_are_typed(ups: UpsServer) -> None:
    with pytest.raises(nut.NutError) as e:
        nut.list_vars(nut.parse_ups(f"nosuchups@127.0.0.1:{ups.port}"))
    assert e.value.code == "UNKNOWN-UPS"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(nut.NutError) as e:
        nut.list_vars(nut.parse_ups(f"roofups@127.0.0.1:{closed}"), timeout=2)
    assert e.value.code == "connect"


@pytest.fixture
def liar() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server that answers every connection with the next scripted reply."""
    replies: list[bytes] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(100)
                if replies:
                    conn.sendall(replies.pop(0))

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1], replies
    srv.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
        b"BEGIN LIST VAR roofups\nVAR roofups ups.status OL\nEND LIST VAR roofups\n",  # unquoted
        b'BEGIN LIST VAR roofups\nVAR other ups.status "OL"\n',
        b"BEGIN LIST VAR roofups\n" + b'VAR roofups x "' + b"A" * 5000 + b'"\n',
        b"BEGIN LIST VAR roofups\n",  # closed half way
        b"\xff\xfe\n",
    ],
)
def test_a_server_that_is_not_upsd_is_a_protocol_error(liar: tuple[int, list[bytes]], reply: bytes) -> None:
    port, replies = liar
    replies.append(reply)
    with pytest.raises(nut.NutError) as e:
        nut.list_vars(nut.parse_ups(f"roofups@127.0.0.1:{port}"), timeout=3)
    assert e.value.code == "protocol"


def test_escaped_values(liar: tuple[int, list[bytes]]) -> None:
    port, replies = liar
    replies.append(
        b'BEGIN LIST VAR roofups\nVAR roofups ups.mfr "A \\"quoted\\" \\\\ name"\nEND LIST VAR roofups\n'
    )
    assert nut.list_vars(nut.parse_ups(f"roofups@127.0.0.1:{port}")) == {"ups.mfr": 'A "quoted" \\ name'}


@pytest.mark.parametrize("text", ["", "bad name", "ups@host:port", "ups@:3493", "ups@host:0"])
def test_bad_ups_names(text: str) -> None:
    with pytest.raises(ConfigError):
        nut.parse_ups(text)


def test_ups_names() -> None:
    assert nut.parse_ups("roofups") == nut.UpsAddress("roofups", "127.0.0.1", 3493)
    assert nut.parse_ups("roofups@10.0.0.2") == nut.UpsAddress("roofups", "10.0.0.2", 3493)
    assert nut.parse_ups("roofups@10.0.0.2:3500") == nut.UpsAddress("roofups", "10.0.0.2", 3500)


def test_status_flags() -> None:
    lim = Limits(low_runtime_s=600, low_charge_pct=25)
    assert (
        reading({"ups.status": "OB DISCHRG LB", "battery.runtime": "5000"}).state(lim) == LOW
    )  # the UPS says so
    assert reading({"ups.status": "OB", "battery.charge": "20"}).state(lim) == LOW
    assert reading({"ups.status": "OB", "battery.charge": "n/a"}).state(lim) == BATTERY
    assert reading({"ups.status": "OL CHRG LB"}).state(lim) == MAINS  # charging after a low battery
    with pytest.raises(ValueError):
        reading({"ups.status": "FSD"})
