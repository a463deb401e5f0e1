"""The MAC's state for RAM that survives deep sleep (Mac.retained()): loaded for the call, once
before each deep sleep, and released after. lw/startup.py's restore_retained() reads it back."""

import binascii
import struct

from lw.mac import RET_HEAD, fit


def retained(mac):
    """Mac.retained(): the exact FCntUp, duty-cycle and join back-off timers and pending MAC
    answers, with a CRC."""
    now = mac.clock.now_ms()
    jb = mac.join_backoff
    body = bytearray(
        struct.pack(
            RET_HEAD,
            b"LWR1",
            mac._rec.seq,
            mac.dev_addr,
            mac.fcnt_up,
            mac.fcnt_up_limit,
            mac.fcnt_down_next,
            mac.adr_ack_cnt,
            mac.up_since_down,
            1 if mac._ack_pending else 0,
            mac.dc.max_dcycle,
            now,
            mac.dc.agg_free_ms,
            -1 if jb.t0_ms is None else jb.t0_ms,
            jb.win_start_ms,
            jb.win_len_ms,
            jb.budget_ms,
            jb.used_ms,
        )
    )
    for t in mac.dc.band_free_ms:
        body.extend(struct.pack("<q", t))
    for b in (mac._answers, mac._sticky):
        whole = fit(b, 32)[0]  # whole commands only
        body.append(len(whole))
        body.extend(whole)
    body.extend(mac.dc.pack(now))  # the airtime ledger as it is (with the reserve left)
    body.extend(struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF))
    return bytes(body)
