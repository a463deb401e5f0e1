"""OTAA join (LoRaWAN 1.0.x section 6.2): the join-request, the join-accept and the session it
starts. Mac.join() imports this module for one attempt and releases it afterwards, so a joined
node does not keep the join code in RAM (a node waking from deep sleep with a session never
loads it)."""

import random
import struct

from micropython import const

from lw import crypto, region
from lw.frames import FrameError
from lw.mac import JOIN_BACKOFF, JOIN_FAILED, JOINED, Result

_MTYPE_JOIN_REQUEST = const(0)
_MTYPE_JOIN_ACCEPT = const(1)


def build_join_request(buf, join_eui, dev_eui, dev_nonce, app_aes):
    """Join-request into buf (>= 23 bytes); EUIs as ints (big-endian value). Returns length 23."""
    buf[0] = _MTYPE_JOIN_REQUEST << 5
    struct.pack_into("<QQH", buf, 1, join_eui, dev_eui, dev_nonce)
    buf[19:23] = crypto.join_mic(app_aes, memoryview(buf)[:19])
    return 23


def decrypt_join_accept(app_aes, phy):
    """Recover the plain join-accept: the server encrypted with AES *decrypt*, so the device
    applies AES *encrypt* to everything after MHDR. Returns MHDR + plain body incl. MIC."""
    n = len(phy) - 1
    if n not in (16, 32):
        raise ValueError("join-accept length")
    out = bytearray(len(phy))
    out[0] = phy[0]
    mv = memoryview(out)
    aes_out = bytearray(n)
    app_aes.encrypt(bytes(phy[1:]), aes_out)
    mv[1:] = aes_out
    return bytes(out)


def parse_join_accept(frame, app_aes):
    """Decrypt and verify a join-accept. Returns (join_nonce_le3, net_id_le3, dev_addr,
    dl_settings, rx_delay, cflist or None). Raises FrameError."""
    if len(frame) not in (17, 33) or frame[0] != _MTYPE_JOIN_ACCEPT << 5:
        raise FrameError("not a join-accept")
    plain = decrypt_join_accept(app_aes, frame)
    if not crypto.equal(crypto.join_mic(app_aes, memoryview(plain)[:-4]), plain[-4:]):
        raise FrameError("join-accept MIC check failed")
    dev_addr = struct.unpack_from("<I", plain, 7)[0]
    cflist = plain[13:29] if len(plain) == 33 else None
    return plain[1:4], plain[4:7], dev_addr, plain[11], plain[12], cflist


def attempt(mac, max_wait_ms):
    """Mac.join() without the checks it makes first (OTAA, DevNonces left)."""
    dr = mac.join_dr - mac._join_attempts // 2
    if dr < 0:
        dr = 0
    sf = region.DR_SF[dr]
    bw = region.DR_BW[dr]
    toa = (region.airtime_us(23, sf, bw) + 999) // 1000
    now = mac.clock.now_ms()
    wait = mac.join_backoff.wait_ms(toa, now)
    free = [
        i
        for i in range(len(region.DEFAULT_CHANNELS_HZ))
        if mac.dc.wait_ms(region.DEFAULT_CHANNELS_HZ[i], now, toa) == 0
    ]
    if not free:
        dcw = min(mac.dc.wait_ms(f, now, toa) for f in region.DEFAULT_CHANNELS_HZ)
        wait = max(wait, dcw)
    if wait:
        if wait > max_wait_ms:
            r = Result(JOIN_BACKOFF)
            r.wait_ms = wait
            return r
        mac.clock.sleep_ms(wait)
        return attempt(mac, 0)
    ch = free[random.getrandbits(8) % len(free)]
    freq = region.DEFAULT_CHANNELS_HZ[ch]
    dev_nonce = mac.dev_nonce_next
    start = mac.clock.now_ms()
    mac._save_airtime(freq, toa, start)
    mac.dc.record(freq, start, toa)
    mac.join_backoff.record(toa, start)
    # the DevNonce (and this attempt's airtime) are persisted before anything goes on air:
    # the nonce is never reused and the back-off budget is never refunded by a reset
    mac.dev_nonce_next = dev_nonce + 1
    mac.persist()
    n = build_join_request(mac._buf, mac.join_eui, mac.dev_eui, dev_nonce, mac._app_aes)
    mac._join_attempts += 1
    done = mac.radio.transmit(memoryview(mac._buf)[:n], freq, sf, bw, region.tx_power_dbm(mac._cfg_power))
    r = Result(JOIN_FAILED)
    r.dr, r.freq_hz, r.toa_ms, r.tx_count = dr, freq, toa, 1
    at1 = done + region.JOIN_ACCEPT_DELAY1_MS
    for at, f, rdr in ((at1, freq, dr), (at1 + 1000, mac._cfg_rx2_freq, mac._cfg_rx2_dr)):
        frame = mac._rx(at, f, rdr)
        if frame is not None and _accept(mac, frame, dev_nonce):
            r.status = JOINED
            break
    mac.radio.sleep()
    return r


def _accept(mac, frame, dev_nonce):
    try:
        jn, net_id, dev_addr, dl, rx_delay, cflist = parse_join_accept(frame, mac._app_aes)
    except FrameError:
        return False
    join_nonce = jn[0] | jn[1] << 8 | jn[2] << 16
    if mac.join_nonce_check and join_nonce <= mac.join_nonce_last:
        return False  # a replayed (older) join-accept must not reset the session
    nwk, app = crypto.session_keys(mac._app_key, jn, net_id, dev_nonce)
    mac._reset_session_state()
    mac._set_keys(nwk, app)
    mac.dev_addr = dev_addr
    off = (dl >> 4) & 0x07
    mac.rx1_dr_offset = off if off <= region.MAX_RX1_DR_OFFSET else region.MAX_RX1_DR_OFFSET
    rx2 = dl & 0x0F
    mac.rx2_dr = rx2 if rx2 <= region.DR_MAX else mac._cfg_rx2_dr
    mac.rx_delay_ms = ((rx_delay & 0x0F) or 1) * 1000
    if cflist is not None and cflist[15] == 0:
        for k in range(5):
            f = (cflist[3 * k] | cflist[3 * k + 1] << 8 | cflist[3 * k + 2] << 16) * 100
            if f and region.subband(f) >= 0:
                mac.ch_freq[3 + k] = f
                mac.ch_drs[3 + k] = 5 << 4
                mac.ch_mask |= 1 << (3 + k)
    mac.join_nonce_last = join_nonce
    mac.joined = True
    mac._join_attempts = 0
    mac._answers = bytearray()
    mac._sticky = bytearray()
    mac._ack_pending = False
    mac.persist()
    return True
