"""The config example of docs/gateway.md ("In front of the city's network server") runs as written, with
its two servers (each a real Havel daemon in standalone mode here) and their filters."""

from __future__ import annotations

import ast
import hashlib
import re
import tomllib
from pathlib import Path

from support.gateway_run import InProcessGateway, write_config

from havel.codecs.lorawan import phy
from havel.gateway import config
from havel.gateway.network.following import import_epoch
from havel.gateway.sections import UpstreamSection
from havel.gateway.settings import read
from havel.gateway.sink_status import SINK_STATES
from havel.gateway.upstream.component import link_filter

from .helpers import FOLLOWED_EUI, REPO, STRANGER_ADDR, Forwarder, data_frame, otaa, register, spy, wait_for

SECTION = "## In front of the city's network server"


def example() -> str:
    doc = (REPO / "docs" / "gateway.md").read_text()
    section = doc.split(SECTION, 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    return str(block)


def test_the_documented_example_is_valid_and_follows_the_documented_device() -> None:
    raw = tomllib.loads(example())
    servers = read(UpstreamSection, raw["upstream"], "upstream").server
    assert [s.name for s in servers] == ["city", "lab"]
    assert link_filter(servers[0]).open and not link_filter(servers[1]).open
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


# ------------------------------------------------------------------------------ docs/mqtt.md events

GATEWAY = REPO / "gateway"
DISPATCHERS = {"emit": 1, "emit_event": 0, "listener": 0}  # function name -> index of its event argument


def _returned_names(path: Path, function: str) -> set[str]:
    """The event names a function such as ``event_for`` returns (its string return values)."""
    tree = ast.parse(path.read_text())
    (fn,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
    return {
        r.value.value
        for r in ast.walk(fn)
        if isinstance(r, ast.Return) and isinstance(r.value, ast.Constant) and isinstance(r.value.value, str)
    }


def _event_names(expr: ast.expr, fn: ast.FunctionDef | ast.AsyncFunctionDef, path: Path) -> set[str] | None:
    """The names an event argument can take; None when it is a dispatcher's own parameter (passed on)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return (_event_names(expr.body, fn, path) or set()) | (_event_names(expr.orelse, fn, path) or set())
    if isinstance(expr, ast.JoinedStr) and ast.unparse(expr) == "f'sink_{st.state}'":
        # a sink's state changes only to "up" or "down" ("starting" is where it begins)
        assert SINK_STATES == ("starting", "up", "down"), "a new sink state: name its event in docs/mqtt.md"
        return {"sink_up", "sink_down"}
    if isinstance(expr, ast.Name):
        if expr.id in {a.arg for a in fn.args.args}:
            return None
        for node in ast.walk(fn):  # event = event_for(...): the names that function returns
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
            ):
                name = node.value.func.id
                home = GATEWAY / "power" / "state.py" if name == "event_for" else path
                return _returned_names(home, name)
    raise AssertionError(f"{path}:{expr.lineno}: cannot tell which event {ast.unparse(expr)} names")


def emitted_events() -> set[str]:
    """Every event name the gateway's code hands to its event listeners, read from the source."""
    names: set[str] = set()
    for path in sorted(GATEWAY.rglob("*.py")):
        text = path.read_text()
        if not any(k in text for k in ("event_listeners", "watchdog import emit", ".emit_event(")):
            continue  # (other ``_emit`` functions, e.g. the simulator's, are not gateway events)
        tree = ast.parse(text)
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
                f = call.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name in DISPATCHERS and len(call.args) > DISPATCHERS[name]:
                    got = _event_names(call.args[DISPATCHERS[name]], fn, path)
                    names |= got or set()
    return names


def documented_events() -> set[str]:
    doc = (REPO / "docs" / "mqtt.md").read_text()
    section = doc.split("### Events (`.../events`)", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return set(re.findall(r"`([a-z_]+)`", "".join(rows)))


def test_the_events_of_docs_mqtt_are_the_ones_the_gateway_emits() -> None:
    emitted = emitted_events()
    # the collector finds each kind of emission (a constant, a choice, a sink's state, a power change)
    assert {"forwarder_silent", "upstream_down", "upstream_back", "sink_down", "power_on_battery"} <= emitted
    assert {"forwarder_restart_gave_up", "power_restored", "power_mains_back"} <= emitted
    assert documented_events() == emitted


# ----------------------------------------------------------------- docs: the session epoch, metrics


def test_the_documented_abp_epoch_example_is_what_the_gateway_computes() -> None:
    doc = " ".join((REPO / "docs" / "mqtt.md").read_text().split())
    m = re.search(
        r"For DevAddr `([0-9A-F]{8})` and NwkSKey `([0-9A-F]{32})` the 20 bytes are `([0-9A-F]{40})`, the "
        r"digest begins `([0-9A-F]{8})` \((\d+)\), and the session epoch is `(\d+)`",
        doc,
    )
    assert m, "the worked example of the ABP session epoch is missing from docs/mqtt.md"
    addr, key = int(m[1], 16), bytes.fromhex(m[2])
    data = addr.to_bytes(4, "little") + key
    assert data.hex().upper() == m[3]
    assert hashlib.sha256(data).hexdigest().upper()[:8] == m[4] and int(m[4], 16) == int(m[5])
    assert import_epoch(addr, key) == int(m[6]) > 2**31


def upstream_section() -> str:
    doc = (REPO / "docs" / "gateway.md").read_text()
    return doc.split(SECTION, 1)[1].split("\n## ", 1)[0]


def test_the_documented_outcomes_and_metrics_are_the_codes() -> None:
    text = upstream_section()
    code = "".join(
        p.read_text() for p in (GATEWAY / "network" / "following.py", GATEWAY / "upstream" / "component.py")
    )
    outcomes = set(re.findall(r'"followed_total",[^=\n]*?what="([a-z_]+)"', code))
    assert {"join_request_mic", "join_accept_mic", "joined", "accepted"} <= outcomes
    listed = re.search(r"`followed_total\{what\}`[^.]*?: ([^.]*)\.", " ".join(text.split()))
    assert listed, "docs/gateway.md lists followed_total's outcomes"
    assert set(re.findall(r"`([a-z_]+)`", listed[1])) == outcomes
    described = set(re.findall(r'describe\(\s*"(upstream_[a-z_]+|followed_[a-z_]+)"', code, re.S))
    assert {"upstream_errors_total", "upstream_state_changes"} <= described
    assert described <= set(re.findall(r"`(?:havel_gateway_)?([a-z_]+)", text))
