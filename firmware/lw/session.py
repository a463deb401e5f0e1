"""The session a verified join-accept starts (LoRaWAN 1.0.x section 6.2.5): session keys, the
network's settings, the CFList channels. Mac.join() loads it once lw/join.py, which received and
checked the accept, is released, and releases it after."""

import struct

from lw import crypto, region


def session_keys(app_key, join_nonce_le3, net_id_le3, dev_nonce):
    """(NwkSKey, AppSKey) from AppKey and the join-accept fields as they are on air (3 bytes LE
    each) and DevNonce (int)."""
    aes = crypto.aes_key(app_key)
    blk = bytearray(16)
    blk[1:4] = join_nonce_le3
    blk[4:7] = net_id_le3
    struct.pack_into("<H", blk, 7, dev_nonce)
    blk[0] = 1
    nwk = aes.encrypt(bytes(blk))
    blk[0] = 2
    return nwk, aes.encrypt(bytes(blk))


def start(mac, plain, dev_nonce):
    """Start the session of the plain join-accept `plain` (MHDR + body + MIC, checked) answering
    the join-request with `dev_nonce`, and persist it."""
    nwk, app = session_keys(mac._app_key, plain[1:4], plain[4:7], dev_nonce)
    mac._reset_session_state()
    mac._set_keys(nwk, app)
    mac.dev_addr = struct.unpack_from("<I", plain, 7)[0]
    dl = plain[11]
    off = (dl >> 4) & 0x07
    mac.rx1_dr_offset = off if off <= region.MAX_RX1_DR_OFFSET else region.MAX_RX1_DR_OFFSET
    rx2 = dl & 0x0F
    mac.rx2_dr = rx2 if rx2 <= region.DR_MAX else mac._cfg_rx2_dr
    mac.rx_delay_ms = ((plain[12] & 0x0F) or 1) * 1000
    if len(plain) == 33 and plain[28] == 0:  # a CFList of frequencies (type 0): channels 3..7
        for k in range(5):
            o = 13 + 3 * k
            f = (plain[o] | plain[o + 1] << 8 | plain[o + 2] << 16) * 100
            if f and region.subband(f) >= 0:
                mac.ch_freq[3 + k] = f
                mac.ch_drs[3 + k] = 5 << 4
                mac.ch_mask |= 1 << (3 + k)
    mac.join_nonce_last = plain[1] | plain[2] << 8 | plain[3] << 16
    mac.joined = True
    mac._join_attempts = 0
    mac._answers = bytearray()
    mac._sticky = bytearray()
    mac._ack_pending = False
    mac.persist()
