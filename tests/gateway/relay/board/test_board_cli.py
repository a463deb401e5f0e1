"""``havel relay receive --web`` as documented (README and docs/relay.md), as a real process on a real
broker: it prints the board's address, the board answers, SIGTERM stops both; wildcard addresses are
refused."""

from __future__ import annotations

import http.client
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from havel.gateway.relay.cli import receive
from havel.gateway.relay.signing import SigningKey

REPO = Path(__file__).resolve().parents[4]
EXAMPLE = re.compile(r"^\s*(havel relay receive --config receiver\.toml --web.*?)\s*(#.*)?$", re.M)


def documented() -> list[str]:
    found = []
    for doc in (REPO / "README.md", REPO / "docs" / "relay.md"):
        found += [m.group(1) for m in EXAMPLE.finditer(doc.read_text())]
    return found


def test_the_docs_show_the_board_command_and_its_default_port() -> None:
    assert len(documented()) >= 3
    port = next(p for p in receive.params if p.name == "web_port")
    host = next(p for p in receive.params if p.name == "web_host")
    assert (port.default, host.default) == (8766, "127.0.0.1")
    assert "http://127.0.0.1:8766/" in (REPO / "README.md").read_text()


def configs(tmp_path: Path, broker_port: int) -> dict[str, Path]:
    SigningKey.generate().save(tmp_path / "gw.key")
    conf = tmp_path / "receiver.toml"
    conf.write_text(
        f"""
data_dir = "data"
[publish]
port = {broker_port}
[[sender]]
name = "DB0XYZ-10"
key_file = "gw.key"
gateway_id = "potsdam-roof-1"
[mqtt]
port = {broker_port}
topic = "havel/+/relay/#"
client_id = "board-cli-{uuid.uuid4().hex[:8]}"
"""
    )
    rules = tmp_path / "gateway.toml"
    rules.write_text(
        '[relay]\nrules = [{name = "flood", class = "alarm", field = "level", op = ">=", value = 150}]\n'
    )
    return {"receiver.toml": conf, "/etc/havel/gateway.toml": rules}


def run(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "havel", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def follow(proc: subprocess.Popen[str]) -> tuple[list[str], threading.Event]:
    """The process's stderr lines as they come, and an event set once it printed the board's address."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "crisis-centre board at" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    return lines, found


@pytest.mark.parametrize("example", documented())
def test_the_documented_board_command_serves_the_board(tmp_path: Path, mosquitto: Any, example: str) -> None:
    files = configs(tmp_path, mosquitto.port)
    argv = [str(files.get(a, a)) for a in shlex.split(example)[1:]]
    argv = ["0" if a == "8766" else a for a in argv]  # a free port: tests run side by side
    if "--web-port" not in argv:
        argv += ["--web-port", "0"]
    proc = run([*argv, "--no-live", "--duration", "120"])
    lines, found = follow(proc)
    try:
        assert found.wait(60), "".join(lines)
        url = next(line for line in lines if "crisis-centre board at" in line).split()[-1]
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/", url)
        assert m, url
        c = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=30)
        deadline = time.monotonic() + 30
        while True:  # the MQTT path is up once the receiver's client connected
            c.request("GET", "/api/board")
            snap = json.loads(c.getresponse().read())
            paths = {p["key"]: p["state"] for p in snap["paths"]}
            if paths.get("mqtt") == "up" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        c.close()
        assert paths == {"mqtt": "up", "primary:potsdam-roof-1": "unknown"}
        assert not any(line.startswith("warning:") for line in lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0, "".join(lines)
    time.sleep(0.1)
    assert any("receiver stopped" in line for line in lines), "".join(lines)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "not-an-address"])
def test_wildcard_and_bad_addresses_are_refused(tmp_path: Path, host: str) -> None:
    files = configs(tmp_path, 1)
    proc = run(
        [
            "relay",
            "receive",
            "--config",
            str(files["receiver.toml"]),
            "--no-live",
            "--web",
            "--web-host",
            host,
        ]
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "--web-host" in err and "crisis-centre board at" not in err, err


# A board on an address other than loopback, in a network namespace of the test's own: the address exists
# only there (on that namespace's loopback device), so nothing is sent beyond this process tree.
NETNS_HOST = "192.0.2.10"
NETNS_CLIENT = """
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            print("STATUS", r.status, flush=True)
            break
    except OSError:
        if time.monotonic() > deadline:
            print("STATUS none", flush=True)
            break
        time.sleep(0.2)
"""


def test_another_address_is_served_with_a_warning(tmp_path: Path) -> None:
    files = configs(tmp_path, 1)  # no broker in the namespace: the board serves while the listener retries
    port = 18766
    script = tmp_path / "in_netns.sh"
    script.write_text(
        "set -e\n"
        "ip link set lo up\n"
        f"ip addr add {NETNS_HOST}/32 dev lo\n"
        f"{shlex.quote(sys.executable)} -m havel relay receive "
        f"--config {shlex.quote(str(files['receiver.toml']))} "
        f"--no-live --web --web-host {NETNS_HOST} --web-port {port} --duration 120 2> board.err &\n"
        "board=$!\n"
        f"{shlex.quote(sys.executable)} -c {shlex.quote(NETNS_CLIENT)} http://{NETNS_HOST}:{port}/api/board\n"
        "kill -TERM $board\n"
        "wait $board; echo EXIT $?\n"
        "cat board.err\n"
    )
    proc = subprocess.run(
        ["unshare", "--net", "sh", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "STATUS 200" in out, out
    assert "EXIT 0" in out, out
    assert any(line.startswith(f"warning: the board listens on {NETNS_HOST}") for line in out.splitlines()), (
        out
    )
    assert f"crisis-centre board at http://{NETNS_HOST}:{port}/" in out, out
