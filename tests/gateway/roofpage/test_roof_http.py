"""The roof status page on the daemon's local HTTP port, over real sockets: its files and /roof.json are
served with the local pages' security headers, only to an IP address or localhost as Host, and the
port's limits (head size, time, method) hold on the page's paths too, each refusal counted by reason."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
from pathlib import Path

import pytest
from support.gateway_run import InProcessGateway, http_get, write_config

from havel.gateway import config
from havel.gateway.roofpage import MINUTES, UplinkRate

pytestmark = pytest.mark.timeout(90)


def get(port: int, path: str, host: str | None = None, method: str = "GET") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Host": host} if host is not None else {}
    conn.request(method, path, headers=headers)
    return conn.getresponse()


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        with contextlib.suppress(OSError):  # (the server may answer and close before reading it all)
            s.sendall(data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        return got


def rejected(port: int) -> dict[str, float]:
    out = {}
    for line in http_get(port, "/metrics")[1].splitlines():
        if line.startswith("havel_gateway_http_rejected_total{"):
            out[line.split('reason="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out


def test_uplinks_per_minute_from_counter_samples() -> None:
    rate = UplinkRate(started=0.0)
    t0 = 1_800_000_000.0 - 1_800_000_000.0 % 60  # the start of a minute
    rate.sample(0, t0)
    rate.sample(4, t0 + 10)
    rate.sample(7, t0 + 50)  # 7 in the first minute
    rate.sample(7, t0 + 65)
    rate.sample(12, t0 + 130)  # 5 in the third; none in the second
    series = rate.series(t0 + 135)
    assert len(series["counts"]) == MINUTES
    assert series["counts"][-3:] == [7, 0, 5] and sum(series["counts"]) == 12
    assert series["first_minute"] == t0 + 120 - (MINUTES - 1) * 60
    rate.sample(2, t0 + 140)  # a counter that started again (a new process) adds what it counts now
    assert rate.series(t0 + 140)["counts"][-1] == 7
    later = rate.series(t0 + 130 + MINUTES * 60)  # an hour later the old minutes are out of the chart
    assert sum(later["counts"]) == 0


def test_the_page_and_its_json_are_served_with_the_local_page_headers(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path))
    with InProcessGateway(cfg) as gw:
        port = gw.gateway.http_port
        assert port is not None
        r = get(port, "/")
        page = r.read().decode()
        assert r.status == 200 and r.getheader("Content-Type") == "text/html; charset=utf-8"
        assert "default-src 'self'" in (r.getheader("Content-Security-Policy") or "")
        assert r.getheader("X-Content-Type-Options") == "nosniff"
        for name in ("roof.js", "roof.css", "favicon.svg", "/havel/havel.css", "/havel/havel.js"):
            assert name in page
        for path, ctype in (
            ("/roof.js", "text/javascript; charset=utf-8"),
            ("/roof.css", "text/css; charset=utf-8"),
            ("/favicon.svg", "image/svg+xml"),
            ("/havel/havel.css", "text/css; charset=utf-8"),
        ):
            r = get(port, path)
            assert (r.status, r.getheader("Content-Type")) == (200, ctype) and r.read()

        r = get(port, "/roof.json")
        doc = json.loads(r.read())
        assert r.status == 200
        assert doc["status"]["gateway_id"] == "gw-test" and doc["status"]["version"]
        assert len(doc["uplinks_per_minute"]["counts"]) == MINUTES
        disk = doc["status"]["storage"]["disk"]
        assert 0 < disk["free_bytes"] <= disk["total_bytes"]
        waiting = doc["status"]["outbox"]["waiting_per_sink"]  # (the daemon's own events count too)
        assert list(waiting) == [cfg.sinks[0]["name"]] and waiting[cfg.sinks[0]["name"]] >= 0

        # HEAD: the headers without a body
        r = get(port, "/", method="HEAD")
        assert r.status == 200 and int(r.getheader("Content-Length") or 0) > 0 and r.read() == b""
        # localhost and IP literals as Host are fine (a phone on the LAN types the Pi's address)
        for host in (f"localhost:{port}", f"192.168.1.20:{port}", f"[::1]:{port}", "127.0.0.1"):
            assert get(port, "/roof.json", host=host).status == 200, host


def test_poison_on_the_page_paths_is_refused_and_counted(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path))
    with InProcessGateway(cfg) as gw:
        port = gw.gateway.http_port
        assert port is not None
        # a DNS name as Host (DNS rebinding: a web site pointing its name at this machine) is refused
        r = get(port, "/roof.json", host=f"evil.example:{port}")
        assert r.status == 421 and b"gateway_id" not in r.read()
        assert get(port, "/", host="").status == 421
        assert raw(port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 421")  # no Host at all
        # /healthz and /metrics stay open to monitoring systems that scrape by name
        assert get(port, "/healthz", host="roof-1.lan").status == 200
        # the port's limits hold on the page's paths
        huge = b"GET /roof.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n"
        assert raw(port, huge).startswith(b"HTTP/1.1 431")
        assert raw(port, b"POST /roof.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").startswith(b"HTTP/1.1 405")
        assert raw(port, b"GET /roof.json junk HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert raw(port, b"GET /\x00roof HTTP/1.1\r\nHost: ::1\r\n\r\n").startswith(b"HTTP/1.1 404")
        # nothing outside the page's own files: no path out of the package, no hidden file, no source
        for path in ("/../__init__.py", "/static/roof.js", "/__init__.py", "/.hidden", "/havel/server.py"):
            assert get(port, path).status == 404, path
        counts = rejected(port)
        assert counts.get("host", 0) >= 3 and counts.get("too_large", 0) >= 1, counts
        assert counts.get("method", 0) >= 1 and counts.get("malformed", 0) >= 1, counts
        assert get(port, "/").status == 200  # and the page is still served


def test_the_documented_addresses_and_fields(tmp_path: Path) -> None:
    """docs/gateway.md, "The roof status page": its URLs answer, the fields it names are in /roof.json, and
    the bind it suggests for a phone is a valid config."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "gateway.md").read_text()
    section = doc.split("## The roof status page", 1)[1].split("\n## ", 1)[0]
    paths = set(re.findall(r"http://127\.0\.0\.1:9110(/[\w.]*)", section))
    assert paths == {"/", "/roof.json"}
    bind = re.search(r'`\[http\] bind = "([\d.]+)"`', section)
    assert bind is not None
    (tmp_path / "phone").mkdir()
    phone = write_config(tmp_path / "phone")
    phone.write_text(phone.read_text().replace("[http]\n", f'[http]\nbind = "{bind.group(1)}"\n', 1))
    assert config.load(phone).http.bind == bind.group(1)
    cfg = config.load(write_config(tmp_path))
    with InProcessGateway(cfg) as gw:
        port = gw.gateway.http_port
        assert port is not None
        for path in paths:
            assert get(port, path).status == 200, path
        got = json.loads(get(port, "/roof.json").read())
        assert set(got) == {"now", "status", "uplinks_per_minute"}
        assert set(got["uplinks_per_minute"]) == {"first_minute", "counts", "since"}
        assert "waiting_per_sink" in got["status"]["outbox"]
        assert set(got["status"]["storage"]["disk"]) == {"free_bytes", "total_bytes"}
