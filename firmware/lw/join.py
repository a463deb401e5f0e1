"""OTAA join (LoRaWAN 1.0.x section 6.2): the join-request and the checks of a join-accept.
Mac.join() imports this module for one attempt and releases it before a verified accept starts
the session (lw/session.py), so the two are never in RAM together and a joined node keeps
neither (a node waking from deep sleep with a session never loads them)."""

import random
import struct

from micropython import const

from lw import crypto, region
from lw.mac import JOIN_BACKOFF, JOIN_FAILED, Result

_MTYPE_JOIN_ACCEPT = const(1)


def decrypt_join_accept(app_aes, phy):
    """Recover the plain join-accept: the server encrypted with AES *decrypt*, so the device
    applies AES *encrypt* to everything after MHDR. Returns MHDR + plain body incl. MIC."""
    n = len(phy) - 1
    if n != 16 and n != 32:
        raise ValueError("join-accept length")
    out = bytearray(n)
    app_aes.encrypt(bytes(phy[1:]), out)
    return bytes(phy[:1]) + out


def _verify(mac, frame):
    """The plain join-accept in `frame` when it is one, its MIC checks out and (with
    join_nonce_check) its JoinNonce is newer than the last; else None."""
    if len(frame) not in (17, 33) or frame[0] != _MTYPE_JOIN_ACCEPT << 5:
        return None
    plain = decrypt_join_accept(mac._app_aes, frame)
    if not crypto.equal(crypto.join_mic(mac._app_aes, memoryview(plain)[:-4]), plain[-4:]):
        return None
    if mac.join_nonce_check and (plain[1] | plain[2] << 8 | plain[3] << 16) <= mac.join_nonce_last:
        return None  # a replayed (older) join-accept must not reset the session
    return plain


def attempt(mac, max_wait_ms):
    """Mac.join() without the checks it makes first (OTAA, DevNonces left). Returns the Result and
    (plain join-accept, DevNonce) when a valid accept arrived, else None."""
    dr = mac.join_dr - mac._join_attempts // 2
    if dr < 0:
        dr = 0
    sf = region.DR_SF[dr]
    bw = region.DR_BW[dr]
    toa = (region.airtime_us(23, sf, bw) + 999) // 1000
    now = mac.clock.now_ms()
    wait = mac.join_backoff.wait_ms(toa, now)
    free = []
    dcw = -1
    for f in region.DEFAULT_CHANNELS_HZ:
        w = mac.dc.wait_ms(f, now, toa)
        if w == 0:
            free.append(f)
        elif w > 0 and (dcw < 0 or w < dcw):
            dcw = w
    if not free and dcw > wait:
        wait = dcw
    if wait:
        if wait > max_wait_ms:
            r = Result(JOIN_BACKOFF)
            r.wait_ms = wait
            return r, None
        mac.clock.sleep_ms(wait)
        return attempt(mac, 0)
    freq = free[random.getrandbits(8) % len(free)]
    dev_nonce = mac.dev_nonce_next
    start = mac.clock.now_ms()
    mac._save_airtime(freq, toa, start)
    mac.dc.record(freq, start, toa)
    mac.join_backoff.record(toa, start)
    # the DevNonce (and this attempt's airtime) are persisted before anything goes on air:
    # the nonce is never reused and the back-off budget is never refunded by a reset
    mac.dev_nonce_next = dev_nonce + 1
    mac.persist()
    buf = mac._buf
    buf[0] = 0  # MHDR: join-request
    struct.pack_into("<QQH", buf, 1, mac.join_eui, mac.dev_eui, dev_nonce)
    buf[19:23] = crypto.join_mic(mac._app_aes, memoryview(buf)[:19])
    mac._join_attempts += 1
    done = mac.radio.transmit(memoryview(buf)[:23], freq, sf, bw, region.tx_power_dbm(mac._cfg_power))
    r = Result(JOIN_FAILED)
    r.dr, r.freq_hz, r.toa_ms, r.tx_count = dr, freq, toa, 1
    at1 = done + region.JOIN_ACCEPT_DELAY1_MS
    plain = mac._rx(at1, freq, dr)
    if plain is not None:
        plain = _verify(mac, plain)
    if plain is None:
        plain = mac._rx(at1 + 1000, mac._cfg_rx2_freq, mac._cfg_rx2_dr)
        if plain is not None:
            plain = _verify(mac, plain)
    mac.radio.sleep()
    return r, None if plain is None else (plain, dev_nonce)
