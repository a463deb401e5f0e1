"""Helpers for the firmware tests; they run in MicroPython (wasm) and in CPython alike.

Tests are plain modules with `test_*()` functions and plain `assert`. Import what you need:
`from mptest import raises, approx, vectors, unhex`.
"""

import json

try:
    _HERE = __file__.rsplit("/", 1)[0]
except (NameError, AttributeError):
    _HERE = "tests/firmware/mp"

# tests/firmware/mp -> repository root; the runners lay the same tree out in the wasm FS.
REPO_ROOT = _HERE.rsplit("/", 3)[0] if _HERE.count("/") >= 3 else "."


def raises(exc_type, fn, *args, **kwargs):
    """Call fn(*args, **kwargs); return the exception if it is an exc_type, else fail the test."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s from %r" % (exc_type.__name__, fn))


def approx(a, b, tol):
    """True when |a - b| <= tol (use as `assert approx(x, 21.5, 0.01)`)."""
    return abs(a - b) <= tol


def unhex(s):
    """bytes from a hex string (spaces allowed)."""
    import binascii

    return binascii.unhexlify(s.replace(" ", ""))


def vectors(codec_name):
    """The list of vectors in codecs/vectors/<codec_name>.json (each a dict, "bytes" as hex)."""
    with open(REPO_ROOT + "/codecs/vectors/" + codec_name + ".json") as f:
        return json.load(f)
