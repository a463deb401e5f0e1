"""PHYPayload parsing and building for every LoRaWAN 1.0.x message type.

PHYPayload = MHDR(1) | MACPayload | MIC(4). Parsing is a pure function of the bytes (no keys, no I/O);
checking the MIC and decrypting are separate steps in :mod:`crypto` and :mod:`decode`, because both need
the 32-bit frame counter, which the air does not carry. Plain ``struct`` on purpose: this is the hot path
of the gateway and a declarative parser costs more here than the whole MIC check.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from havel.codecs.lorawan import crypto
from havel.codecs.lorawan.ids import check_key
from havel.errors import FrameError, InputError

# MType (MHDR bits 7..5) -> the names the CLI prints.
MTYPE_NAMES = (
    "JoinRequest",
    "JoinAccept",
    "UnconfirmedDataUp",
    "UnconfirmedDataDown",
    "ConfirmedDataUp",
    "ConfirmedDataDown",
    "RFU",
    "Proprietary",
)
MTYPE_BY_NAME = {name: i for i, name in enumerate(MTYPE_NAMES)}
JOIN_REQUEST, JOIN_ACCEPT, PROPRIETARY = 0, 1, 7
MAJOR_LORAWAN_R1 = 0

JOIN_REQUEST_LEN = 23
JOIN_ACCEPT_LENS = (17, 33)  # without / with CFList
MIN_DATA_LEN = 12  # MHDR 1 + DevAddr 4 + FCtrl 1 + FCnt 2 + MIC 4
MAX_PHY_LEN = 255  # the LoRa PHY length field is one byte

_fhdr = struct.Struct("<IBH")
_join_req = struct.Struct("<QQH")


@dataclass(slots=True)
class DataFrame:
    """A data frame (un/confirmed, up/down). ``frm_payload`` is as on the air (still encrypted)."""

    mtype: str
    major: int
    uplink: bool
    confirmed: bool
    dev_addr: int
    adr: bool
    adr_ack_req: bool
    ack: bool
    fpending: bool
    class_b: bool
    fcnt16: int
    fopts: bytes
    fport: int | None
    frm_payload: bytes
    mic: bytes
    msg: bytes  # MHDR..FRMPayload: what the MIC covers

    @property
    def fopts_len(self) -> int:
        """FOptsLen of FCtrl."""
        return len(self.fopts)


@dataclass(slots=True)
class JoinRequest:
    """A join-request. ``join_eui``/``dev_eui`` are big-endian ints, ``dev_nonce`` the on-air LE value."""

    mtype: str
    major: int
    join_eui: int
    dev_eui: int
    dev_nonce: int
    mic: bytes
    msg: bytes


@dataclass(slots=True)
class JoinAccept:
    """A join-accept as received: ``raw`` is the whole PHYPayload, still encrypted with the AppKey."""

    mtype: str
    major: int
    raw: bytes


@dataclass(slots=True)
class JoinAcceptPlain:
    """The fields of a decrypted join-accept. ``cflist_hz`` lists the five CFList frequencies (0 = none)."""

    major: int
    join_nonce: int
    net_id: int
    dev_addr: int
    rx1_dr_offset: int
    rx2_dr: int
    rx_delay: int
    cflist_hz: list[int] | None
    cflist_type: int | None
    mic: bytes
    msg: bytes  # MHDR..CFList in clear: what the MIC covers


@dataclass(slots=True)
class Proprietary:
    """A proprietary frame (MType 111): its layout is vendor-defined, so only the bytes are given."""

    mtype: str
    major: int
    payload: bytes  # everything after MHDR
    raw: bytes


Frame = DataFrame | JoinRequest | JoinAccept | Proprietary


def parse(data: bytes) -> Frame:
    """Parse a PHYPayload into its message type's fields; FrameError if it cannot be a LoRaWAN 1.0.x frame."""
    n = len(data)
    if n == 0:
        raise FrameError("empty frame", hint="a PHYPayload has at least the MHDR byte")
    if n > MAX_PHY_LEN:
        raise FrameError(f"frame of {n} bytes is longer than the 255 a LoRa packet can carry")
    mhdr = data[0]
    mtype = mhdr >> 5
    major = mhdr & 0x03
    if major != MAJOR_LORAWAN_R1:
        raise FrameError(
            f"unknown LoRaWAN major version {major} (MHDR 0x{mhdr:02X})",
            hint="only major version 0 (LoRaWAN R1) exists",
        )
    if mtype >= 2 and mtype <= 5:
        return _parse_data(data, mtype, major)
    if mtype == JOIN_REQUEST:
        if n != JOIN_REQUEST_LEN:
            raise FrameError(f"a join-request has {JOIN_REQUEST_LEN} bytes, got {n}")
        join_eui, dev_eui, dev_nonce = _join_req.unpack_from(data, 1)
        return JoinRequest(
            "JoinRequest", major, join_eui, dev_eui, dev_nonce, bytes(data[19:]), bytes(data[:19])
        )
    if mtype == JOIN_ACCEPT:
        if n not in JOIN_ACCEPT_LENS:
            raise FrameError(f"a join-accept has 17 bytes, or 33 with CFList, got {n}")
        return JoinAccept("JoinAccept", major, bytes(data))
    if mtype == PROPRIETARY:
        return Proprietary("Proprietary", major, bytes(data[1:]), bytes(data))
    raise FrameError("MType 110 is reserved in LoRaWAN 1.0.x (RejoinRequest exists only in 1.1)")


def _parse_data(data: bytes, mtype: int, major: int) -> DataFrame:
    n = len(data)
    if n < MIN_DATA_LEN:
        raise FrameError(f"truncated data frame: {n} bytes, at least {MIN_DATA_LEN} needed")
    dev_addr, fctrl, fcnt16 = _fhdr.unpack_from(data, 1)
    fopts_len = fctrl & 0x0F
    end = n - 4
    pos = 8 + fopts_len
    if pos > end:
        raise FrameError(f"FOptsLen {fopts_len} runs past the end of the frame ({n} bytes)")
    uplink = not mtype & 1
    fport: int | None = None
    frm_payload = b""
    if pos < end:
        fport = data[pos]
        frm_payload = bytes(data[pos + 1 : end])
        if fport == 0 and fopts_len:
            raise FrameError("MAC commands in both FOpts and an FPort-0 payload (forbidden by 1.0.x 4.3.1.6)")
    bit4 = bool(fctrl & 0x10)
    return DataFrame(
        MTYPE_NAMES[mtype],
        major,
        uplink,
        mtype >= 4,
        dev_addr,
        bool(fctrl & 0x80),
        uplink and bool(fctrl & 0x40),
        bool(fctrl & 0x20),
        not uplink and bit4,
        uplink and bit4,
        fcnt16,
        bytes(data[8 : 8 + fopts_len]),
        fport,
        frm_payload,
        bytes(data[end:]),
        bytes(data[:end]),
    )


def parse_join_accept(plain_phy: bytes) -> JoinAcceptPlain:
    """Fields of a decrypted join-accept (see :func:`crypto.decrypt_join_accept`)."""
    n = len(plain_phy)
    if n not in JOIN_ACCEPT_LENS:
        raise FrameError(f"a join-accept has 17 bytes, or 33 with CFList, got {n}")
    if plain_phy[0] >> 5 != JOIN_ACCEPT:
        raise FrameError(f"MHDR 0x{plain_phy[0]:02X} is not a join-accept")
    join_nonce = int.from_bytes(plain_phy[1:4], "little")
    net_id = int.from_bytes(plain_phy[4:7], "little")
    dev_addr = int.from_bytes(plain_phy[7:11], "little")
    dl = plain_phy[11]
    cflist: list[int] | None = None
    cflist_type: int | None = None
    if n == 33:
        cflist = [int.from_bytes(plain_phy[i : i + 3], "little") * 100 for i in range(13, 28, 3)]
        cflist_type = plain_phy[28]
    return JoinAcceptPlain(
        plain_phy[0] & 0x03,
        join_nonce,
        net_id,
        dev_addr,
        (dl >> 4) & 0x07,
        dl & 0x0F,
        plain_phy[12] & 0x0F,
        cflist,
        cflist_type,
        bytes(plain_phy[-4:]),
        bytes(plain_phy[:-4]),
    )


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise InputError(message)


def build_data_frame(
    *,
    uplink: bool,
    confirmed: bool,
    dev_addr: int,
    fcnt32: int,
    fport: int | None,
    payload: bytes,
    fopts: bytes = b"",
    adr: bool = False,
    adr_ack_req: bool = False,
    ack: bool = False,
    fpending: bool = False,
    class_b: bool = False,
    nwk_s_key: bytes,
    app_s_key: bytes,
) -> bytes:
    """A complete data frame: FRMPayload encrypted (AppSKey, or NwkSKey for FPort 0), MIC appended.

    ``payload`` is the plaintext FRMPayload, ``fcnt32`` the full counter (the low 16 bits go on the air).
    InputError names the field when the combination is not a valid 1.0.x frame.
    """
    check_key(nwk_s_key, "NwkSKey")
    check_key(app_s_key, "AppSKey")
    _need(0 <= dev_addr <= 0xFFFFFFFF, f"DevAddr {dev_addr} does not fit in 32 bits")
    _need(0 <= fcnt32 <= 0xFFFFFFFF, f"FCnt {fcnt32} does not fit in 32 bits")
    _need(len(fopts) <= 15, f"FOpts holds at most 15 bytes, got {len(fopts)}")
    _need(fport is None or 0 <= fport <= 255, f"FPort {fport} is outside 0..255")
    _need(fport is not None or not payload, "a payload needs an FPort")
    _need(not (fport == 0 and fopts), "MAC commands go in FOpts or in an FPort-0 payload, not both")
    _need(uplink or not (adr_ack_req or class_b), "ADRACKReq and ClassB are uplink-only FCtrl bits")
    _need(not uplink or not fpending, "FPending is a downlink-only FCtrl bit")
    mtype = (4 if confirmed else 2) + (0 if uplink else 1)
    fctrl = (
        (0x80 if adr else 0)
        | (0x40 if adr_ack_req else 0)
        | (0x20 if ack else 0)
        | (0x10 if (class_b or fpending) else 0)
        | len(fopts)
    )
    msg = bytes([mtype << 5]) + _fhdr.pack(dev_addr, fctrl, fcnt32 & 0xFFFF) + bytes(fopts)
    if fport is not None:
        key = nwk_s_key if fport == 0 else app_s_key
        msg += bytes([fport]) + crypto.crypt_frm_payload(key, uplink, dev_addr, fcnt32, bytes(payload))
    _need(len(msg) + 4 <= MAX_PHY_LEN, f"frame of {len(msg) + 4} bytes exceeds the 255 a LoRa packet carries")
    return msg + crypto.data_mic(nwk_s_key, uplink, dev_addr, fcnt32, msg)


def build_join_request(*, join_eui: int, dev_eui: int, dev_nonce: int, app_key: bytes) -> bytes:
    """A join-request with its MIC. EUIs are big-endian ints; ``dev_nonce`` is the value (sent LE)."""
    check_key(app_key, "AppKey")
    _need(0 <= join_eui < 1 << 64 and 0 <= dev_eui < 1 << 64, "EUIs have 64 bits")
    _need(0 <= dev_nonce < 1 << 16, f"DevNonce {dev_nonce} does not fit in 16 bits")
    msg = bytes([JOIN_REQUEST << 5]) + _join_req.pack(join_eui, dev_eui, dev_nonce)
    return msg + crypto.join_request_mic(app_key, msg)


def build_join_accept(
    *,
    app_key: bytes,
    join_nonce: int,
    net_id: int,
    dev_addr: int,
    rx1_dr_offset: int = 0,
    rx2_dr: int = 0,
    rx_delay: int = 1,
    cflist_hz: list[int] | None = None,
) -> bytes:
    """A join-accept, MIC added and encrypted with the AppKey: ready to send.

    ``cflist_hz`` lists up to five extra channel frequencies in Hz (multiples of 100 Hz; CFListType 0).
    """
    check_key(app_key, "AppKey")
    _need(0 <= join_nonce < 1 << 24, f"JoinNonce {join_nonce} does not fit in 24 bits")
    _need(0 <= net_id < 1 << 24, f"NetID {net_id} does not fit in 24 bits")
    _need(0 <= dev_addr <= 0xFFFFFFFF, f"DevAddr {dev_addr} does not fit in 32 bits")
    _need(0 <= rx1_dr_offset <= 7, f"RX1DRoffset {rx1_dr_offset} is outside 0..7")
    _need(0 <= rx2_dr <= 15, f"RX2DataRate {rx2_dr} is outside 0..15")
    _need(0 <= rx_delay <= 15, f"RxDelay {rx_delay} is outside 0..15 (seconds; 0 means 1)")
    msg = (
        bytes([JOIN_ACCEPT << 5])
        + join_nonce.to_bytes(3, "little")
        + net_id.to_bytes(3, "little")
        + dev_addr.to_bytes(4, "little")
        + bytes([(rx1_dr_offset << 4) | rx2_dr, rx_delay])
    )
    if cflist_hz is not None:
        _need(len(cflist_hz) <= 5, f"a CFList holds at most 5 frequencies, got {len(cflist_hz)}")
        for freq in cflist_hz:
            _need(
                0 <= freq < 100 << 24 and freq % 100 == 0,
                f"CFList frequency {freq} Hz is not a multiple of 100 Hz below 1677.7216 MHz",
            )
        padded = list(cflist_hz) + [0] * (5 - len(cflist_hz))
        msg += b"".join((f // 100).to_bytes(3, "little") for f in padded) + b"\x00"
    plain = msg + crypto.join_accept_mic(app_key, msg)
    return crypto.encrypt_join_accept(app_key, plain)
