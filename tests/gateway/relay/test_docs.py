"""The examples in docs/relay.md are real: every signed frame and envelope on the page verifies with the
test key the page names, written the way the page says (an implementer works from the page alone)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

from havel.gateway.relay import aprs, ax25
from havel.gateway.relay.events import parse_event_line
from havel.gateway.relay.lines import parse_line, parse_status_line

DOC = (Path(__file__).resolve().parents[3] / "docs" / "relay.md").read_text()
KEY = bytes(range(32))  # "000102...1e1f": the decoded bytes are the key


def tag(sender: str, channel: str, counter: int, body: bytes) -> str:
    """Written from the page's formula, not with the package's signer."""
    msg = (
        b"HVR1\0" + sender.encode() + b"\0" + channel.encode() + b"\0" + str(counter).encode() + b"\0" + body
    )
    return base64.urlsafe_b64encode(hmac.new(KEY, msg, hashlib.sha256).digest()[:8]).decode().rstrip("=")


def frames() -> list[str]:
    return [ln.strip() for ln in DOC.splitlines() if re.match(r"^ {4}DB0XYZ-10>APZHVL", ln)]


def split_sig(text: str) -> tuple[str, int, str]:
    line, _, sig = text.rpartition(" ")
    counter, _, t = sig.partition(".")
    return line, int(counter), t


def test_docs_examples_verify() -> None:
    """Alarm, outage report, definitions and telemetry report; then the JSON envelope."""
    lines = frames()
    assert len(lines) >= 7
    defs: list[str] = []
    for tnc2 in lines:
        head, _, info = tnc2.partition(":")
        source, _, rest = head.partition(">")
        assert source == "DB0XYZ-10" and rest == "APZHVL,WIDE2-1"  # the documented default path
        ax25.UIFrame.aprs(source, "APZHVL", info, ["WIDE2-1"])  # a frame our codec can build
        if info.startswith("T#"):
            aprs.parse_telemetry(info)
            line, counter, t = split_sig(info)
            assert t == tag(source, "aprs", counter, line.encode())
            continue
        msg = aprs.parse_message(info)
        if msg.addressee == source:  # a definition
            defs.append(msg.text)
            if msg.text.startswith("BITS."):
                bits, counter, t = split_sig(msg.text)
                body = "\n".join([*defs[:3], bits])
                assert t == tag(source, "aprs", counter, body.encode())
                assert len(bits.split(",", 1)[1] + " " + f"{counter}.{t}") <= aprs.BITS_TITLE_MAX
            continue
        line, counter, t = split_sig(msg.text)
        assert t == tag(source, "aprs", counter, (aprs.pad_addressee(msg.addressee) + ":" + line).encode())
        if line.startswith("HP "):
            assert parse_status_line(line)["at"] == 1795683600
        elif line.startswith("HE "):
            event = parse_event_line(line, "gw1")
            assert event["at"] == 1795683600 and event["id"] == "gw1-event-0123456789ab"
        else:
            rec = parse_line(line)
            assert rec.received_at == 1795683600 and rec.id == "70B3D57ED0001234-2-1000"
    assert [d[:5] for d in defs] == ["PARM.", "UNIT.", "EQNS.", "BITS."]
    # the test vector of the signature section
    body = b"DB0KST-1 :HA 70B3D57ED0001234-2-1000 TP3QC0 level=163"
    assert tag("DB0XYZ-10", "aprs", 123456, body) == "DPM6dlfw4b8" and "DPM6dlfw4b8" in DOC
    # the JSON envelope example
    m = re.search(r'\{"v":1,"sender":"DB0XYZ-10","sig":"(\d+)\.([\w-]+)",\s*"body":(".*?\}")\}', DOC, re.S)
    assert m is not None
    inner = json.loads(m.group(3))
    assert tag("DB0XYZ-10", "mqtt", int(m.group(1)), inner.encode()) == m.group(2)
    assert json.loads(inner)["received_at"] == 1795683600
