"""The test helpers themselves, in both runtimes."""

from mptest import approx, raises, unhex


def test_raises_returns_exception():
    e = raises(ValueError, int, "x")
    assert isinstance(e, ValueError)


def test_raises_fails_when_nothing_raised():
    try:
        raises(ValueError, int, "1")
    except AssertionError:
        return
    assert False, "raises() accepted a call that did not raise"


def test_approx_and_unhex():
    assert approx(1.0, 1.05, 0.1)
    assert not approx(1.0, 1.2, 0.1)
    assert unhex("01 ff") == b"\x01\xff"
