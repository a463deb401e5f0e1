"""``havel gateway check`` refuses what ``havel gateway run`` refuses, and ``run`` refuses it before it
creates any file; the config reader turns any TOML, however broken or hostile, into a ConfigError naming
the key."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from havel.cli import main
from havel.errors import ConfigError, HavelError
from havel.gateway import config, preflight

GOOD = """\
[gateway]
id = "gw-check"
data_dir = "{data}"

[udp]
port = 17000
allowed_gateways = ["AA555A0000000001"]

[http]
port = 0
{extra}
[[sink]]
type = "file"
name = "local"
path = "{out}"
{sink}
"""

RELAY = """
[relay]
primary = "local"
key_file = "{key}"
[[relay.path]]
type = "aprs"
addressee = "DB0KST-1"
"""

# (what is wrong, text added to [forwarder]/[relay] sections, text added to the sink, key the error names)
CASES: list[tuple[str, str, str, str]] = [
    (
        "mqtt sink without a host",
        '[[sink]]\ntype = "mqtt"\nname = "platform"\ntls = false\n',
        "",
        "sink[platform].host",
    ),
    ("unknown key in a sink", "", "colour = 3\n", "sink[local].colour"),
    ("wrong type in a sink", "", "fsync = 1\n", "sink[local].fsync"),
    ("unknown key in [forwarder]", "[forwarder]\nbatchsize = 10\n", "", "forwarder.batchsize"),
    ("wrong type in [forwarder]", '[forwarder]\nbatch = "many"\n', "", "forwarder.batch"),
    ("nan in [forwarder]", "[forwarder]\ndown_after_s = nan\n", "", "forwarder.down_after_s"),
    ("fraction in [forwarder]", "[forwarder]\nbatch = 2.5\n", "", "forwarder.batch"),
    ("negative in [forwarder]", "[forwarder]\nack_interval_s = -5\n", "", "forwarder.ack_interval_s"),
    ("not a table in a file sink", "", "sensorthings = 5\n", "sink[local].sensorthings"),
    ("inf in [udp]", "", "", "udp.silent_after_s"),
    (
        "nan in a sink",
        '[[sink]]\ntype = "mqtt"\nname = "p"\nhost = "h"\nkeepalive_s = nan\n',
        "",
        "keepalive_s",
    ),
    ("APRS path without a callsign", RELAY, "", "callsign"),
]


def write(tmp_path: Path, extra: str = "", sink: str = "") -> Path:
    key = tmp_path / "relay.key"  # (outside the data dir: the test checks that nothing appears there)
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    text = GOOD.format(
        data=tmp_path / "data", out=tmp_path / "out.jsonl", extra=extra.format(key=key), sink=sink
    )
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``havel gateway check`` through the CLI's entry point: (exit status, stdout + stderr)."""
    try:
        main(["gateway", "check", "--config", str(path)])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_good_config_is_ok_and_says_what_it_understood(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(write(tmp_path), capsys)
    assert code == 0, out
    assert "config ok" in out and "AA555A0000000001" in out and "forwarder" in out
    assert not (tmp_path / "data").exists()  # check creates nothing


@pytest.mark.parametrize(("what", "extra", "sink", "key"), CASES, ids=[c[0] for c in CASES])
def test_check_and_run_refuse_the_same_config_before_creating_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, extra: str, sink: str, key: str
) -> None:
    path = write(tmp_path, extra, sink)
    if what == "inf in [udp]":
        path.write_text(path.read_text().replace("port = 17000", "port = 17000\nsilent_after_s = inf"))
    code, out = check(path, capsys)
    assert code != 0 and "config ok" not in out, out
    assert key in out and "Traceback" not in out, out
    # the daemon, as systemd runs it
    proc = subprocess.run(
        [sys.executable, "-m", "havel", "gateway", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0, proc.stderr
    assert key in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "data").exists(), os.listdir(tmp_path / "data")


def test_one_function_validates_for_both(tmp_path: Path) -> None:
    """What the CLI's check calls is what the daemon's start calls (a missing host found without a
    database, a socket or a file)."""
    path = write(tmp_path, '[[sink]]\ntype = "mqtt"\nname = "platform"\ntls = false\n')
    cfg = config.load(path)
    with pytest.raises(ConfigError, match=r"sink\[platform\]\.host"):
        preflight.validate(cfg)
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------------------------------ TOML poison

BASE = '[gateway]\nid = "gw"\ndata_dir = "/nonexistent/havel-test"\n'


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[udp]\nport = nan\n", "udp.port"),
        ("[udp]\nsilent_after_s = nan\n", "udp.silent_after_s"),
        ("[udp]\nsilent_after_s = -inf\n", "udp.silent_after_s"),
        ("[udp]\nsilent_after_s = 1e400\n", "udp.silent_after_s"),  # TOML reads it as infinity
        ("[udp]\nsilent_after_s = 99999999999999999999999\n", "udp.silent_after_s"),
        ("[udp]\nsilent_after_s = 9223372036854775807\n", "udp.silent_after_s"),
        ("[udp]\nport = 99999999999999999999999\n", "udp.port"),
        ('[udp]\nport = "1700"\n', "udp.port"),
        ("[udp]\nport = 1700.0\n", "udp.port"),
        ("[udp]\nport = true\n", "udp.port"),
        ('[udp]\nbind = ["127.0.0.1"]\n', "udp.bind"),
        ("[udp]\nallowed_gateways = 1\n", "udp.allowed_gateways"),
        ('[udp]\nallowed_gateways = ["AA55"]\n', "udp.allowed_gateways[0]"),
        ("[udp]\nallowed_gateways = [12]\n", "udp.allowed_gateways[0]"),
        ('[udp]\nallowed_gateways = ["ZZ555A0000000001"]\n', "udp.allowed_gateways[0]"),
        ("[udp]\nmax_datagrams_per_s = 0\n", "udp.max_datagrams_per_s"),
        ("[udp]\nmax_datagrams_per_s = nan\n", "udp.max_datagrams_per_s"),
        ("[udp]\nporty = 1\n", "udp.porty"),
        ("udp = 5\n", "udp"),
        ("[network]\nadr_margin_db = nan\n", "network.adr_margin_db"),
        ("[network]\nduplicate_ttl_s = inf\n", "network.duplicate_ttl_s"),
        ('[network]\nadr = "yes"\n', "network.adr"),
        ("[network]\nnet_id = {a = 1}\n", "network.net_id"),
        ("[network]\nrx1_delay_s = -1\n", "network.rx1_delay_s"),
        ("[outbox]\nquota_mb = nan\n", "outbox.quota_mb"),
        ("[outbox]\nquota_mb = 1e300\n", "outbox.quota_mb"),
        ('[log]\nlevel = ["info"]\n', "log.level"),
        ("[http]\nport = -1\n", "http.port"),
        ('[gateway]\nid = "x"\n', "gateway"),  # a table defined twice: not TOML
        ('[sink]\ntype = "file"\n', "sink"),
        ("[[sink]]\ntype = 3\n", "sink[0].type"),
        ('[[sink]]\ntype = "file"\nname = 3\n', "sink[0].name"),
        ('[[sink]]\ntype = "file"\nname = "a b"\n', "sink[0].name"),
        ('[[sink]]\ntype = "file"\npath = "a\\u0000b"\n', "sink[0].path"),
        ('[[sink]]\ntype = "file"\nx = 1e400\n', "sink[0].x"),
        ("[forwarder]\nbatch = nan\n", "forwarder.batch"),
        ("[forwarder]\nwindow = 99999999999999999999999\n", "forwarder.window"),
        ("[relay.a.b.c.d.e.f.g.h.i]\nx = 1\n", "relay.a.b.c.d.e.f.g"),
        ("[relay]\nrules = " + "[" * 20 + "]" * 20 + "\n", "relay.rules"),
        ("[relay]\nx = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n", "nested too deeply"),
        ("[relay]\nx = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("[relay]\ndown_after_s = nan\n", "relay.down_after_s"),
        ("[nonsense]\n", "nonsense"),
        ('[[sink]]\ntype = "file"\n' * 1000, "at most 32"),
    ],
)
def test_toml_poison_is_a_config_error_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert key in str(info.value)


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_bytes(BASE.encode() + b'[udp]\nbind = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        config.load(path)
    path.write_bytes(b"# " + b"x" * (config.MAX_FILE_BYTES + 1))
    with pytest.raises(ConfigError, match="larger"):
        config.load(path)


# Any TOML document built from these values, in any known section and key, gives a config or a HavelError
# naming a key: never another exception (a traceback for the operator).
_SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.just("AA555A0000000001"),
    st.just("127.0.0.1"),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "host", "type"]), inner, max_size=3),
    ),
    max_leaves=6,
)
_KEYS = {
    "udp": ["bind", "port", "silent_after_s", "allowed_gateways", "max_datagrams_per_s", "x"],
    "network": ["net_id", "dev_addr_prefix", "rx1_delay_s", "adr", "adr_margin_db", "x"],
    "http": ["bind", "port"],
    "log": ["format", "level"],
    "outbox": ["quota_mb"],
    "forwarder": ["batch", "window", "down_after_s", "ack_interval_s", "x"],
}
_SINK_KEYS = ["type", "name", "path", "fsync", "host", "port", "tls", "keepalive_s", "format", "prefix", "x"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    section=st.sampled_from(sorted(_KEYS)),
    data=st.data(),
    sink=st.dictionaries(st.sampled_from(_SINK_KEYS), _VALUES, max_size=4),
)
def test_random_values_never_give_a_traceback(section: str, data: Any, sink: dict[str, Any]) -> None:
    table = data.draw(st.dictionaries(st.sampled_from(_KEYS[section]), _VALUES, max_size=3))
    raw: dict[str, Any] = {
        "gateway": {"id": "gw", "data_dir": "/nonexistent/havel-test"},
        section: table,
        "sink": [{"type": "file", "path": "-", **sink}],
    }
    try:
        cfg = config.from_dict(raw)
        preflight.validate(cfg)
    except HavelError as exc:
        assert str(exc)


# ------------------------------------------------------------------------------------ the documented ones

REPO = Path(__file__).resolve().parents[2]


def test_the_udp_example_in_the_docs_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = (REPO / "docs" / "gateway.md").read_text()
    section = doc.split("## The packet-forwarder port", 1)[1].split("\n## ", 1)[0]
    [block] = [b.split("\n", 1)[1] for b in section.split("```")[1::2] if b.startswith("toml")]
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n' + block)
    cfg = config.load(path)
    assert cfg.udp.allowed_gateways == (0xAA555A0000000101,)
    assert (cfg.udp.bind, cfg.udp.port, cfg.udp.max_datagrams_per_s) == ("127.0.0.1", 1700, 2000.0)
    code, out = check(path, capsys)
    assert code == 0 and "AA555A0000000101" in out, out


def test_the_example_config_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(REPO / "gateway" / "gateway.example.toml", capsys)
    assert code == 0 and "config ok" in out and "the first one heard" in out, out


# --------------------------------------------------------------------------- [relay], read by the relay

_RELAY_KEYS = [
    "emergency",
    "primary",
    "sender",
    "down_after_s",
    "state_interval_s",
    "max_age_s",
    "rules",
    "path",
]
_PATH_KEYS = ["type", "callsign", "addressee", "telemetry", "host", "port", "tls", "config_dir", "amateur"]
_RELAY_SCALARS = st.one_of(
    _SCALARS, st.sampled_from(["aprs", "mqtt", "DB0XYZ-10", "local", "alarm", "water"])
)
_RELAY_VALUES = st.recursive(
    _RELAY_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["name", "class", "codec", "field", "op", "value"]), inner, max_size=4
        ),
    ),
    max_leaves=8,
)


@pytest.mark.parametrize(
    "relay",
    [
        "rules = 5.0\n",
        "rules = [true]\n",
        "path = true\n",
        'state_interval_s = "soon"\n',
        'key_file = ["a"]\n[[relay.path]]\ntype = "aprs"\ncallsign = "DB0XYZ-10"\naddressee = "DB0KST-1"\n',
        "[[relay.path]]\ntype = 3\n",
    ],
)
def test_relay_values_of_the_wrong_type_are_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], relay: str
) -> None:
    key = tmp_path / "relay.key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    head = f'[relay]\nprimary = "local"\nkey_file = "{key}"\n'
    if relay.startswith("key_file"):
        head = '[relay]\nprimary = "local"\n'
    path = write(tmp_path, head + relay)
    code, out = check(path, capsys)
    assert code != 0 and "relay" in out and "Traceback" not in out, out
    assert not (tmp_path / "data").exists()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    section=st.dictionaries(st.sampled_from(_RELAY_KEYS), _RELAY_VALUES, max_size=4),
    paths=st.lists(st.dictionaries(st.sampled_from(_PATH_KEYS), _RELAY_VALUES, max_size=5), max_size=2),
)
def test_random_relay_sections_never_give_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, section: dict[str, Any], paths: list[dict[str, Any]]
) -> None:
    tmp = tmp_path_factory.mktemp("relay")
    key = tmp / "relay.key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    relay = {"primary": "local", "key_file": str(key), **section}
    if paths:
        relay["path"] = paths
    raw = {
        "gateway": {"id": "gw", "data_dir": str(tmp / "data")},
        "sink": [{"type": "file", "name": "local", "path": "-"}],
        "relay": relay,
    }
    try:
        preflight.validate(config.from_dict(raw))
    except HavelError as exc:
        assert str(exc)
    assert not (tmp / "data").exists()


def test_check_warns_about_a_port_open_beyond_this_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("port = 17000", 'port = 17000\nbind = "0.0.0.0"'))
    code, out = check(path, capsys)
    assert code == 0 and "warning: udp.bind 0.0.0.0" in out and "firewall" in out, out
    code, out = check(write(tmp_path), capsys)
    assert code == 0 and "warning" not in out, out


_APRS = '[[relay.path]]\ntype = "aprs"\ncallsign = "DB0XYZ-10"\naddressee = "DB0KST-1"\n'
_MQTT = '[[relay.path]]\ntype = "mqtt"\nhost = "h"\n'


@pytest.mark.parametrize(
    ("relay", "exact"),
    [
        ("rules = 5.0\n", "relay.rules"),
        ("rules = [true]\n", "relay.rules[0]"),
        ("path = true\n", "relay.path must be a list of tables"),
        ('state_interval_s = "soon"\n', "relay.state_interval_s must be a number"),
        ("tick_s = 0\n", "relay.tick_s = 0 is out of range"),
        ("emergency = 1\n", "relay.emergency must be true or false"),
        ("sender = 5\n" + _APRS, "relay.sender must be a non-empty string"),
        ("colour = 1\n", "unknown key 'relay.colour'"),
        (_APRS + "path = [5]\n", "relay.path[0].path[0] must be a non-empty string"),
        (_APRS + 'port = "8001"\n', "relay.path[0].port must be an integer"),
        (_APRS + "telemetry = [1]\n", "relay.path[0].telemetry[0] must be a table"),
        (_APRS + "retries = true\n", "relay.path[0].retries must be an integer"),
        (_MQTT + 'port = "1883"\n', "relay.path[0].port must be an integer"),
        (_MQTT + 'tls = "no"\n', "relay.path[0].tls must be true or false"),
        (_MQTT + 'budget_messages = "many"\n', "relay.path[0].budget_messages must be a number"),
        (_MQTT + "password_file = 5\n", "relay.path[0].password_file must be a non-empty string"),
        (_APRS + _MQTT + "colour = 1\n", "relay.path[1].colour"),
    ],
)
def test_relay_errors_name_the_exact_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], relay: str, exact: str
) -> None:
    key = tmp_path / "relay.key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    path = write(tmp_path, f'[relay]\nprimary = "local"\nkey_file = "{key}"\n' + relay)
    code, out = check(path, capsys)
    assert code != 0 and exact in out and "Traceback" not in out, out
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("section", "exact"),
    [
        ('[power]\nups = "roofups"\npoll_s = "often"\n', "power.poll_s must be a number"),
        ('[power]\nups = "roofups"\nshutdown_command = ["poweroff", 1]\n', "power.shutdown_command[1]"),
        ("[power]\nups = 5\n", "power.ups must be a non-empty string"),
        ("[watchdog]\nmax_restarts = 2.5\n", "watchdog.max_restarts must be an integer"),
        ("[watchdog]\nrestart_command = [true]\n", "watchdog.restart_command[0]"),
        ("[watchdog]\nbackoff_s = 100\nbackoff_max_s = 10\n", "watchdog.backoff_max_s"),
        ("[watchdog]\nbackof_s = 100\n", "unknown key 'watchdog.backof_s'"),
    ],
)
def test_power_and_watchdog_errors_name_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, exact: str
) -> None:
    code, out = check(write(tmp_path, section), capsys)
    assert code != 0 and exact in out and "Traceback" not in out, out
