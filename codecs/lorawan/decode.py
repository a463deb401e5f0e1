"""One frame in, the JSON object of ``havel frame decode`` out: parse, verify MIC, decrypt, read MAC commands.

A chain of pure functions with the keys passed in; no I/O, no logging (keys never leave this module except
as the session keys a join-accept yields, which the caller asked for).
"""

from __future__ import annotations

from typing import Any

from havel.codecs.lorawan import crypto, maccmds, phy
from havel.codecs.lorawan.ids import check_key, dev_addr_hex, eui_hex, net_id_hex
from havel.errors import FrameError, InputError


def decode_frame(
    data: bytes,
    *,
    nwk_s_key: bytes | None = None,
    app_s_key: bytes | None = None,
    app_key: bytes | None = None,
    dev_nonce: int | None = None,
    fcnt32: int | None = None,
) -> dict[str, Any]:
    """Decode a PHYPayload to a JSON-ready dict; verifies and decrypts with whichever keys are given.

    ``fcnt32`` is this frame's full counter (its low 16 bits must be the frame's FCnt); without it the
    upper 16 bits are taken as 0. ``dev_nonce`` (with ``app_key``) derives the session keys of a join-accept.
    Raises FrameError for bytes that are not a frame, InputError for a wrong key length or counter.
    """
    for key, what in ((nwk_s_key, "NwkSKey"), (app_s_key, "AppSKey"), (app_key, "AppKey")):
        if key is not None:
            check_key(key, what)
    frame = phy.parse(data)
    if isinstance(frame, phy.DataFrame):
        return _data(frame, nwk_s_key, app_s_key, fcnt32)
    if isinstance(frame, phy.JoinRequest):
        mic_valid = None
        if app_key is not None:
            mic_valid = crypto.verify_mic(crypto.join_request_mic(app_key, frame.msg), frame.mic)
        return {
            "mtype": frame.mtype,
            "major": frame.major,
            "join_eui": eui_hex(frame.join_eui),
            "dev_eui": eui_hex(frame.dev_eui),
            "dev_nonce": frame.dev_nonce,
            "mic": frame.mic.hex().upper(),
            "mic_valid": mic_valid,
        }
    if isinstance(frame, phy.JoinAccept):
        return _join_accept(frame, app_key, dev_nonce)
    return {
        "mtype": frame.mtype,
        "major": frame.major,
        "payload": frame.payload.hex(),
        "mic": None,
        "mic_valid": None,
    }


def _data(
    frame: phy.DataFrame, nwk_s_key: bytes | None, app_s_key: bytes | None, fcnt32: int | None
) -> dict[str, Any]:
    if fcnt32 is None:
        fcnt32 = frame.fcnt16
    elif not 0 <= fcnt32 <= 0xFFFFFFFF or fcnt32 & 0xFFFF != frame.fcnt16:
        raise InputError(
            f"fcnt32 {fcnt32} does not end in this frame's FCnt {frame.fcnt16}",
            hint="give this frame's full 32-bit counter, or none to take the upper half as 0",
        )
    fctrl: dict[str, Any] = {"adr": frame.adr}
    if frame.uplink:
        fctrl.update(adr_ack_req=frame.adr_ack_req, ack=frame.ack, class_b=frame.class_b)
    else:
        fctrl.update(ack=frame.ack, fpending=frame.fpending)
    fctrl["fopts_len"] = frame.fopts_len
    mic_valid = None
    if nwk_s_key is not None:
        mic = crypto.data_mic(nwk_s_key, frame.uplink, frame.dev_addr, fcnt32, frame.msg)
        mic_valid = crypto.verify_mic(mic, frame.mic)
    payload = frame.frm_payload
    key = nwk_s_key if frame.fport == 0 else app_s_key
    encrypted = bool(payload) and key is None
    if payload and key is not None:
        payload = crypto.crypt_frm_payload(key, frame.uplink, frame.dev_addr, fcnt32, payload)
    out: dict[str, Any] = {
        "mtype": frame.mtype,
        "major": frame.major,
        "dev_addr": dev_addr_hex(frame.dev_addr),
        "fctrl": fctrl,
        "fcnt": frame.fcnt16,
        "fcnt32": fcnt32,
        "fopts": frame.fopts.hex(),
        "fport": frame.fport,
        "frm_payload": payload.hex(),
        "encrypted": encrypted,
    }
    try:
        commands = maccmds.decode(frame.fopts, frame.uplink)
        if frame.fport == 0 and not encrypted:
            commands += maccmds.decode(payload, frame.uplink)
        out["mac_commands"] = None if frame.fport == 0 and encrypted else commands
    except FrameError as exc:
        out["mac_commands"] = None
        out["mac_error"] = str(exc)
    out["mic"] = frame.mic.hex().upper()
    out["mic_valid"] = mic_valid
    return out


def _join_accept(frame: phy.JoinAccept, app_key: bytes | None, dev_nonce: int | None) -> dict[str, Any]:
    if app_key is None:
        # Everything after MHDR, the MIC included, is encrypted: nothing more can be read.
        return {
            "mtype": frame.mtype,
            "major": frame.major,
            "encrypted": True,
            "payload": frame.raw[1:].hex(),
            "mic": None,
            "mic_valid": None,
        }
    plain = phy.parse_join_accept(crypto.decrypt_join_accept(app_key, frame.raw))
    out: dict[str, Any] = {
        "mtype": frame.mtype,
        "major": frame.major,
        "encrypted": False,
        "join_nonce": plain.join_nonce,
        "net_id": net_id_hex(plain.net_id),
        "dev_addr": dev_addr_hex(plain.dev_addr),
        "dl_settings": {"rx1_dr_offset": plain.rx1_dr_offset, "rx2_dr": plain.rx2_dr},
        "rx_delay": plain.rx_delay,
        # CFListType 0 is a list of five frequencies (EU868); other types (1: the channel mask of US915 and
        # AU915) are not frequencies, so they are not printed as if they were.
        "cflist": plain.cflist_hz if plain.cflist_type == 0 else None,
        "cflist_type": plain.cflist_type,
        "mic": plain.mic.hex().upper(),
        "mic_valid": crypto.verify_mic(crypto.join_accept_mic(app_key, plain.msg), plain.mic),
    }
    if dev_nonce is not None:
        if not 0 <= dev_nonce <= 0xFFFF:
            raise InputError(f"DevNonce {dev_nonce} does not fit in 16 bits")
        nwk_s_key, app_s_key = crypto.derive_session_keys(app_key, plain.join_nonce, plain.net_id, dev_nonce)
        out["nwk_s_key"] = nwk_s_key.hex().upper()
        out["app_s_key"] = app_s_key.hex().upper()
    return out
