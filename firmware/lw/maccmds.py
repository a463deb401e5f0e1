"""MAC commands of LoRaWAN 1.0.x (section 5) for EU868: the network's requests applied to the
MAC's settings, and the answers (with the NACK bits the spec defines) queued for the next uplink.

Downlink payload lengths per CID; an unknown CID stops processing (its length is unknown, so
everything after it is unreadable). Answers that must repeat until a downlink arrives
(RXParamSetupAns, RXTimingSetupAns, DlChannelAns) go to the MAC's sticky list.
"""

from micropython import const

from lw import region
from lw.mac import fit  # noqa: F401  (the uplink side lives in lw/mac.py, always loaded)

_LINK_CHECK = const(0x02)
_LINK_ADR = const(0x03)
_DUTY_CYCLE = const(0x04)
_RX_PARAM_SETUP = const(0x05)
_DEV_STATUS = const(0x06)
_NEW_CHANNEL = const(0x07)
_RX_TIMING_SETUP = const(0x08)
_TX_PARAM_SETUP = const(0x09)
_DL_CHANNEL = const(0x0A)
_DEVICE_TIME = const(0x0D)

# per CID (index) 0x00..0x0D: length of the downlink command's payload; 0xFF: not defined.
# bytes, not a dict: a bytes constant takes no RAM beyond its own bytes
_DOWN_LEN = b"\xff\xff\x02\x04\x01\x04\x00\x05\x01\x01\x04\xff\xff\x05"


def _freq(b, i):
    return (b[i] | b[i + 1] << 8 | b[i + 2] << 16) * 100


def _freq_ok(f):
    return region.FREQ_MIN_HZ <= f <= region.FREQ_MAX_HZ and region.subband(f) >= 0


def process(mac, data):
    """Apply the downlink MAC commands in data to mac; queue the answers. Returns the CIDs handled."""
    i = 0
    n = len(data)
    seen = []
    while i < n:
        cid = data[i]
        ln = _DOWN_LEN[cid] if cid < 14 else 0xFF
        if ln == 0xFF or i + 1 + ln > n:
            break  # unknown or truncated command: the rest cannot be parsed
        p = i + 1
        if cid == _LINK_ADR:
            # a contiguous block of LinkADRReq is applied as one (LoRaWAN 1.0.2 section 5.2)
            j = i
            while j + 5 <= n and data[j] == _LINK_ADR:
                j += 5
            _link_adr(mac, data, i, j)
            seen.append(cid)
            i = j
            continue
        if cid == _LINK_CHECK:
            mac.link_check = (data[p], data[p + 1])
        elif cid == _DUTY_CYCLE:
            mac.dc.max_dcycle = data[p] & 0x0F
            mac._answers.append(_DUTY_CYCLE)
        elif cid == _RX_PARAM_SETUP:
            _rx_param_setup(mac, data, p)
        elif cid == _DEV_STATUS:
            bat = 255 if mac.battery is None else mac.battery()
            snr = int(mac.last_snr)
            snr = -32 if snr < -32 else (31 if snr > 31 else snr)
            mac._answers.extend(bytes((_DEV_STATUS, bat & 0xFF, snr & 0x3F)))
        elif cid == _NEW_CHANNEL:
            _new_channel(mac, data, p)
        elif cid == _RX_TIMING_SETUP:
            mac.rx_delay_ms = ((data[p] & 0x0F) or 1) * 1000
            mac._sticky.append(_RX_TIMING_SETUP)
        elif cid == _TX_PARAM_SETUP:
            pass  # not defined for EU868 (RP002): ignored, not answered
        elif cid == _DL_CHANNEL:
            _dl_channel(mac, data, p)
        elif cid == _DEVICE_TIME:
            secs = data[p] | data[p + 1] << 8 | data[p + 2] << 16 | data[p + 3] << 24
            # GPS-epoch time in ms at the end of the uplink that asked, and that moment's clock time
            mac.device_time = (secs * 1000 + data[p + 4] * 1000 // 256, mac.tx_done_ms)
        seen.append(cid)
        i = p + ln
    return seen


def _link_adr(mac, data, start, end):
    mask = mac.ch_mask
    mask_ok = True
    defined = 0
    for c in range(region.MAX_CHANNELS):
        if mac.ch_freq[c]:
            defined |= 1 << c
    for k in range(start, end, 5):
        cm = data[k + 2] | data[k + 3] << 8
        cntl = (data[k + 4] >> 4) & 0x07
        if cntl == 0:
            mask = cm
        elif cntl == 6:
            mask = defined  # all defined channels on, ChMask ignored
        else:
            mask_ok = False  # ChMaskCntl 1..5 and 7 are RFU in EU868
    last = end - 5
    dr = data[last + 1] >> 4
    pw = data[last + 1] & 0x0F
    nb = data[last + 4] & 0x0F
    if mask == 0 or mask & ~defined:
        mask_ok = False  # no channel left, or a channel that does not exist
    dr_ok = dr == 15
    # the DR must be usable on some channel of the new mask (of the current one if the new is bad)
    check = mask if mask_ok else mac.ch_mask
    if not dr_ok and dr <= region.DR_MAX:
        for c in range(region.MAX_CHANNELS):
            d = mac.ch_drs[c]
            if check & (1 << c) and mac.ch_freq[c] and (d & 0x0F) <= dr <= (d >> 4):
                dr_ok = True
                break
    pw_ok = pw == 15 or pw <= region.TX_POWER_MAX_INDEX
    status = (4 if pw_ok else 0) | (2 if dr_ok else 0) | (1 if mask_ok else 0)
    if status == 7:
        mac.ch_mask = mask
        if dr != 15:
            mac.dr = dr
        if pw != 15:
            mac.tx_power = pw
        mac.nb_trans = nb or 1
    for _ in range(start, end, 5):
        mac._answers.extend(bytes((_LINK_ADR, status)))


def _rx_param_setup(mac, data, p):
    dl = data[p]
    off = (dl >> 4) & 0x07
    rx2dr = dl & 0x0F
    f = _freq(data, p + 1)
    status = (
        (4 if off <= region.MAX_RX1_DR_OFFSET else 0)
        | (2 if rx2dr <= region.DR_MAX else 0)
        | (1 if _freq_ok(f) else 0)
    )
    if status == 7:
        mac.rx1_dr_offset, mac.rx2_dr, mac.rx2_freq_hz = off, rx2dr, f
    mac._sticky.extend(bytes((_RX_PARAM_SETUP, status)))


def _new_channel(mac, data, p):
    idx = data[p]
    f = _freq(data, p + 1)
    drr = data[p + 4]
    lo, hi = drr & 0x0F, drr >> 4
    freq_ok = f == 0 or _freq_ok(f)
    dr_ok = lo <= hi <= region.DR_MAX
    if idx < len(region.DEFAULT_CHANNELS_HZ) or idx >= region.MAX_CHANNELS:
        freq_ok = dr_ok = False  # the default channels cannot be changed; 16+ do not exist
    status = (2 if dr_ok else 0) | (1 if freq_ok else 0)
    if status == 3:
        mac.ch_freq[idx] = f
        mac.ch_dl_freq[idx] = 0
        mac.ch_drs[idx] = drr if f else 0
        if f:
            mac.ch_mask |= 1 << idx
        else:
            mac.ch_mask &= ~(1 << idx)
    mac._answers.extend(bytes((_NEW_CHANNEL, status)))


def _dl_channel(mac, data, p):
    idx = data[p]
    f = _freq(data, p + 1)
    up_ok = idx < region.MAX_CHANNELS and mac.ch_freq[idx] != 0
    status = (2 if up_ok else 0) | (1 if _freq_ok(f) else 0)
    if status == 3:
        mac.ch_dl_freq[idx] = f
    mac._sticky.extend(bytes((_DL_CHANNEL, status)))
