"""Firmware encoders/decoders against the shared vectors (codecs/vectors/*.json), byte for byte."""

from apps import APPS

from mptest import unhex, vectors

# every app's encoder, from the firmware's one list of apps
CODECS = [(name, getattr(__import__("payload." + name), name)) for name in APPS]


def _check_all(direction):
    seen = 0
    for name, mod in CODECS:
        for v in vectors(name):
            if v["direction"] != direction:
                continue
            raw = unhex(v["bytes"])
            if direction == "up":
                got = mod.encode(v["data"], v["fport"])
                assert got == raw, "%s %s: %s != %s" % (name, v["description"], got.hex(), v["bytes"])
            else:
                got = mod.decode_down(v["fport"], raw)
                assert got == v["data"], "%s %s: %r != %r" % (name, v["description"], got, v["data"])
            seen += 1
    return seen


def test_every_uplink_vector_encodes_to_its_bytes():
    assert _check_all("up") >= 30


def test_every_downlink_vector_decodes_to_its_data():
    assert _check_all("down") >= 24


def test_battery_above_range_is_sent_as_the_top_value_not_absent():
    """Every codec has a vector with battery 5080 mV (254): a reading above the range is sent as
    those same bytes (the host codec does the same), never as 0xFF (absent)."""
    for name, mod in CODECS:
        tops = [v for v in vectors(name) if v["direction"] == "up" and v["data"].get("battery") == 5080]
        assert tops, name
        for v in tops:
            for mv in (5081, 5090, 5400, 65535, 1e9):
                d = dict(v["data"])
                d["battery"] = mv
                got = mod.encode(d, v["fport"])
                assert got == unhex(v["bytes"]), "%s %s %r: %s" % (name, v["description"], mv, got.hex())
            for bad in (float("nan"), float("inf"), -20):
                d = dict(v["data"])
                d["battery"] = bad
                d_none = dict(v["data"])
                d_none["battery"] = None
                assert mod.encode(d, v["fport"]) == mod.encode(d_none, v["fport"]), (name, bad)
