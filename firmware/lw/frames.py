"""LoRaWAN 1.0.x frame layout (section 4): building uplinks into a caller's buffer, reading
downlinks (the join frames are in lw/join.py). Pure functions: no radio, no clock, no persistence.
"""

import struct

from micropython import const

from lw import crypto

# private consts (leading underscore): inlined by the compiler, no RAM
_MTYPE_UNCONF_UP = const(2)
_MTYPE_UNCONF_DOWN = const(3)
_MTYPE_CONF_UP = const(4)
_MTYPE_CONF_DOWN = const(5)

_FCTRL_ACK = const(0x20)
_FCTRL_FPENDING = const(0x10)  # downlink only
_MAX_FOPTS = const(15)
_MAX_FCNT_GAP = const(16384)


class FrameError(ValueError):
    """A received frame that must be dropped (bad length, type, address, counter or MIC)."""


def build_data_up(buf, confirmed, dev_addr, fcnt32, fctrl, fopts, fport, payload, nwk_aes, app_aes):
    """Uplink data frame into buf. fctrl holds ADR/ADRACKReq/ACK bits; FOptsLen is set here.
    fport None sends no FPort and no payload; FPort 0 encrypts with NwkSKey. Returns the length."""
    nf = len(fopts)
    if nf > _MAX_FOPTS:
        raise ValueError("FOpts longer than 15 bytes")
    if fport == 0 and nf:
        raise ValueError("FOpts and FPort 0 together")
    buf[0] = (_MTYPE_CONF_UP if confirmed else _MTYPE_UNCONF_UP) << 5
    struct.pack_into("<IBH", buf, 1, dev_addr, (fctrl & 0xF0) | nf, fcnt32 & 0xFFFF)
    n = 8
    buf[n : n + nf] = fopts
    n += nf
    if fport is not None:
        buf[n] = fport
        n += 1
        pl = len(payload)
        if pl:
            key = nwk_aes if fport == 0 else app_aes
            crypto.crypt_payload_into(key, True, dev_addr, fcnt32, payload, buf, n)
            n += pl
    buf[n : n + 4] = crypto.data_mic(nwk_aes, True, dev_addr, fcnt32, memoryview(buf)[:n])
    return n + 4


class Downlink:
    """A verified, decrypted downlink data frame."""

    def __init__(self):
        self.confirmed = False
        self.fcnt32 = 0
        self.fctrl = 0
        self.fopts = b""
        self.fport = None  # type: int | None
        self.payload = b""

    @property
    def ack(self):
        return bool(self.fctrl & _FCTRL_ACK)

    @property
    def fpending(self):
        return bool(self.fctrl & _FCTRL_FPENDING)


def fcnt32_from16(next_expected, fcnt16):
    """The 32-bit counter nearest above next_expected whose low 16 bits are fcnt16."""
    c = (next_expected & 0xFFFF0000) | fcnt16
    if c < next_expected:
        c += 0x10000
    return c


def parse_data_down(frame, dev_addr, fcnt_down_next, nwk_aes, app_aes):
    """Check and decrypt a downlink for dev_addr. fcnt_down_next is the lowest acceptable 32-bit
    FCntDown (replays and counters that jump back are refused). Raises FrameError."""
    n = len(frame)
    if n < 12:
        raise FrameError("downlink too short")
    mtype = frame[0] >> 5
    if mtype not in (_MTYPE_UNCONF_DOWN, _MTYPE_CONF_DOWN) or frame[0] & 0x03:
        raise FrameError("not a LoRaWAN R1 data downlink")
    addr, fctrl, fcnt16 = struct.unpack_from("<IBH", frame, 1)
    if addr != dev_addr:
        raise FrameError("downlink for another DevAddr")
    nf = fctrl & 0x0F
    if 8 + nf + 4 > n:
        raise FrameError("FOpts run past the MIC")
    fcnt32 = fcnt32_from16(fcnt_down_next, fcnt16)
    if fcnt32 - fcnt_down_next >= _MAX_FCNT_GAP:
        raise FrameError("FCntDown jumped back or too far ahead")
    msg = memoryview(frame)[: n - 4]
    if not crypto.equal(crypto.data_mic(nwk_aes, False, dev_addr, fcnt32, msg), frame[n - 4 :]):
        raise FrameError("MIC check failed")
    d = Downlink()
    d.confirmed = mtype == _MTYPE_CONF_DOWN
    d.fcnt32 = fcnt32
    d.fctrl = fctrl
    d.fopts = bytes(frame[8 : 8 + nf])
    p = 8 + nf
    if p < n - 4:
        d.fport = frame[p]
        body = frame[p + 1 : n - 4]
        if d.fport == 0 and nf:
            raise FrameError("FOpts and FPort 0 together")
        if body:
            key = nwk_aes if d.fport == 0 else app_aes
            d.payload = crypto.crypt_payload(key, False, dev_addr, fcnt32, body)
    return d
