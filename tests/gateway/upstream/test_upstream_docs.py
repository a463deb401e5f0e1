"""The config example of docs/gateway.md ("In front of the city's network server") runs as written, with
its two servers (each a real Havel daemon in standalone mode here) and their filters."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from support.gateway_run import InProcessGateway, write_config

from havel.codecs.lorawan import phy
from havel.gateway import config
from havel.gateway.upstream.component import parse_servers

from .helpers import FOLLOWED_EUI, REPO, STRANGER_ADDR, Forwarder, data_frame, otaa, register, spy, wait_for

SECTION = "## In front of the city's network server"


def example() -> str:
    doc = (REPO / "docs" / "gateway.md").read_text()
    section = doc.split(SECTION, 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    return str(block)


def test_the_documented_example_is_valid_and_follows_the_documented_device() -> None:
    raw = tomllib.loads(example())
    servers = parse_servers(raw["upstream"])
    assert [s["name"] for s in servers] == ["city", "lab"]
    assert servers[0]["filter"].open and not servers[1]["filter"].open
    assert raw["upstream"]["follow"] == [f"{FOLLOWED_EUI:016X}"]


def test_the_documented_example_routes_by_each_servers_filter(tmp_path: Path) -> None:
    daemons = {}
    for name in ("city", "lab"):
        (tmp_path / name).mkdir()
        daemons[name] = config.load(write_config(tmp_path / name, gateway_id=name))
    with InProcessGateway(daemons["city"]) as city, InProcessGateway(daemons["lab"]) as lab:
        text = example()
        text = text.replace(
            'host = "lns.potsdam.example"\nport = 1700', f'host = "127.0.0.1"\nport = {city.udp[1]}'
        )
        text = text.replace(
            'host = "ns.lab.example"\nport = 1700', f'host = "127.0.0.1"\nport = {lab.udp[1]}'
        )
        assert str(city.udp[1]) in text and str(lab.udp[1]) in text
        (tmp_path / "roof").mkdir()
        roof_cfg = config.load(write_config(tmp_path / "roof", extra="\n" + text))
        register(roof_cfg.db_path, [otaa()])
        seen = {"city": spy(city), "lab": spy(lab)}
        with InProcessGateway(roof_cfg) as roof:
            fwd = Forwarder(roof.udp)
            try:
                fwd.pull()
                lab_frame = fwd.push(data_frame(0xFC00AC01, 1))  # in the Lab's DevAddr prefix
                lab_join = fwd.push(
                    phy.build_join_request(
                        join_eui=0x70B3D57ED0009999, dev_eui=0x1, dev_nonce=1, app_key=bytes(16)
                    )
                )
                other = fwd.push(data_frame(STRANGER_ADDR, 1))  # the city's alone
                for name, want in (("city", [lab_frame, lab_join, other]), ("lab", [lab_frame, lab_join])):
                    wait_for(lambda: all(d in seen[name] for d in want), 20, f"frames at {name}")  # noqa: B023
                assert other not in seen["lab"]
                status = roof.gateway.status()["upstream"]
                assert status["followed"] == {
                    f"{FOLLOWED_EUI:016X}": {"session_epoch": None, "dev_addr": None}
                }
                assert set(status["servers"]) == {"city", "lab"}
            finally:
                fwd.close()
