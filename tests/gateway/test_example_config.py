"""gateway/gateway.example.toml is the reference of the config: every key the gateway reads is documented
there (active or commented out), and every key written there is one the gateway reads."""

from __future__ import annotations

import re
from pathlib import Path

from havel.gateway import config

EXAMPLE = Path(__file__).resolve().parents[2] / "gateway" / "gateway.example.toml"
HEADER = re.compile(r"^\[\[?([a-z_.]+)\]\]?\s*(#.*)?$")
KEY = re.compile(r"^([a-z_][a-z0-9_]*)\s*=")


def documented(text: str) -> dict[str, set[str]]:
    """The keys of each table in the example, from its active lines and its commented-out ones
    (``# key = ...`` under ``[section]`` or ``# [section]``); prose holds no ``key =`` at a line's start."""
    out: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        body = line.strip()
        if body.startswith("#"):
            body = body[1:].strip()
        header = HEADER.match(body)
        if header:
            section = header.group(1)
            parent, _, child = section.rpartition(".")
            if parent:  # [[relay.path]] documents relay.path
                out.setdefault(parent, set()).add(child)
            out.setdefault(section, set())
            continue
        key = KEY.match(body)
        if key and section:
            out.setdefault(section, set()).add(key.group(1))
    return out


def test_every_key_is_documented_once_in_the_example_and_nothing_else() -> None:
    have = documented(EXAMPLE.read_text())
    want = config.schema()
    # an mqtt [[relay.path]] takes the broker connection keys of an mqtt [[sink]]: documented there, once
    want["relay.path"] -= have["sink"] - have["relay.path"]
    missing = {s: sorted(k - have.get(s, set())) for s, k in want.items() if k - have.get(s, set())}
    extra = {s: sorted(k - want.get(s, set())) for s, k in have.items() if k - want.get(s, set())}
    assert not missing, f"keys the gateway reads but gateway.example.toml does not document: {missing}"
    assert not extra, f"keys in gateway.example.toml that the gateway does not read: {extra}"


def test_the_scanner_sees_commented_keys() -> None:
    text = '[udp]\nport = 1\n# [relay]\n# key_file = "k"  # x\n#   {name = "a"},\n'
    text += '# [[relay.path]]\n# type = "aprs"\n'
    assert documented(text) == {"udp": {"port"}, "relay": {"key_file", "path"}, "relay.path": {"type"}}
