"""Firmware encoders/decoders against the shared vectors (codecs/vectors/*.json), byte for byte."""

from payload import air, cooling, temperature, water

from mptest import unhex, vectors

CODECS = (("air", air), ("water", water), ("temperature", temperature), ("cooling", cooling))


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
