"""Bad input from the upstream side (garbage, acknowledgements of tokens never sent, broken PULL_RESP, a
TX_ACK from the forwarder for a downlink nobody sent) is counted by reason and changes nothing else."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from support.gateway_run import InProcessGateway, write_config

from havel.gateway import config

from .helpers import HOST, STRANGER_ADDR, Forwarder, data_frame, upstream_section, wait_for


def test_bad_datagrams_from_upstream_are_counted_and_the_path_keeps_working(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the upstream's socket, scripted to misbehave
    server.bind((HOST, 0))
    server.settimeout(10)
    cfg = config.load(
        write_config(
            tmp_path,
            extra=upstream_section(server.getsockname()[1], follow=[], keepalive_s=30, down_after_s=60),
        )
    )
    with InProcessGateway(cfg) as roof:
        fwd = Forwarder(roof.udp)
        try:
            fwd.pull()
            sent = fwd.push(data_frame(STRANGER_ADDR, 1))
            got: list[bytes] = []
            while not any(d == sent for d in got):
                d, channel = server.recvfrom(65536)
                got.append(d)
            assert got[0][3] == 2  # PULL_DATA under the forwarder's EUI opened the downlink path
            m = roof.gateway.metrics
            for bad in (
                b"\x00",  # garbage
                b"\x02\x77\x77\x01",  # PUSH_ACK of a token never sent
                b"\x02\x77\x77\x04",  # PULL_ACK of a token never sent
                b"\x02\x00\x01\x03{not json",  # PULL_RESP with broken JSON
                b"\x02\x00\x02\x03" + json.dumps({"txpk": {"data": 5}}).encode(),  # PULL_RESP without a frame
                b"\x02\x00\x03\x02" + bytes(8),  # PULL_DATA: the server speaking as a forwarder
            ):
                server.sendto(bad, channel)
            wait_for(lambda: m.total("upstream_datagrams_rejected_total") >= 6, 10, "six rejections")
            assert m.get("upstream_datagrams_rejected_total", upstream="city", reason="unknown_token") == 2
            assert m.get("upstream_datagrams_rejected_total", upstream="city", reason="direction") == 1
            # a TX_ACK from the forwarder for a downlink nobody asked for goes nowhere
            fwd.sock.sendto(b"\x02\x99\x99\x05" + fwd.eui, roof.udp)
            # the path still works: a good PULL_RESP reaches the forwarder, its TX_ACK comes back (same token)
            txpk = {
                "imme": True,
                "freq": 869.525,
                "rfch": 0,
                "powe": 14,
                "modu": "LORA",
                "datr": "SF12BW125",
                "codr": "4/5",
                "ipol": True,
                "size": 13,
                "data": "YDgKkwEBAAAGZj2oNA==",
            }
            server.sendto(b"\x02\xab\xcd\x03" + json.dumps({"txpk": txpk}).encode(), channel)
            got_txpk, _ = fwd.pull_resp()
            assert got_txpk["data"] == txpk["data"]
            while True:
                d, _ = server.recvfrom(65536)
                if d[3] == 5:
                    break
            assert d[:4] == b"\x02\xab\xcd\x05" and d[4:12] == fwd.eui
            assert city_up(roof)
        finally:
            fwd.close()
            server.close()


def city_up(roof: InProcessGateway) -> bool:
    return bool(roof.gateway.status()["upstream"]["servers"]["city"]["up"])
