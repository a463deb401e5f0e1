"""32-bit frame counters from the 16 bits on the air.

Both ends keep a 32-bit counter; the frame carries its low 16 bits and the MIC is computed over all 32,
so a wrong guess of the upper half shows up as a MIC failure, never as a silently wrong counter.
"""

from __future__ import annotations

from havel.errors import InputError

MAX_FCNT_GAP = 16384  # LoRaWAN 1.0.0-1.0.2 section 4.3.1.5; 1.0.3 dropped the limit
_MOD = 1 << 16


def reconstruct(last_fcnt32: int | None, fcnt16: int) -> int:
    """The 32-bit counter whose low 16 bits are ``fcnt16``, nearest ahead of ``last_fcnt32``.

    ``last_fcnt32`` is the last counter accepted (None: nothing seen yet, upper half taken as 0). The result
    is the first value >= ``last_fcnt32`` with these low bits (a repeat of the last counter returns it
    unchanged), except when ``fcnt16`` lies at most ``MAX_FCNT_GAP`` behind it: then the older value is
    returned, so that the caller sees a replay instead of a jump of almost 65536 frames.
    """
    if not 0 <= fcnt16 < _MOD:
        raise InputError(f"FCnt {fcnt16} does not fit in 16 bits")
    if last_fcnt32 is None:
        return fcnt16
    if not 0 <= last_fcnt32 <= 0xFFFFFFFF:
        raise InputError(f"frame counter {last_fcnt32} does not fit in 32 bits")
    delta = (fcnt16 - last_fcnt32) % _MOD  # frames ahead of the last one, modulo 2^16
    behind = _MOD - delta
    if delta and behind <= MAX_FCNT_GAP and last_fcnt32 >= behind:
        return last_fcnt32 - behind
    return (last_fcnt32 + delta) & 0xFFFFFFFF


def within_gap(last_fcnt32: int | None, fcnt32: int) -> bool:
    """Whether ``fcnt32`` is a new counter no more than ``MAX_FCNT_GAP`` ahead of the last accepted one."""
    if last_fcnt32 is None:
        return True
    return 0 < fcnt32 - last_fcnt32 <= MAX_FCNT_GAP
