"""What a Mac needs only once, when it starts: reading its config, the stored state, and the
state retained in RTC memory across deep sleep. Mac imports this module for that and releases it
afterwards, so its code is not in RAM while the node runs (MicroPython keeps only its names)."""

import binascii
import struct

from lw import dutycycle, region
from lw import mac as m
from lw.mac import ConfigError
from lw.store import Record


def _hexbytes(cfg, key, n):
    v = cfg.get(key)
    if isinstance(v, str):
        try:
            v = binascii.unhexlify(v)
        except ValueError:
            v = None
    if not isinstance(v, (bytes, bytearray)) or len(v) != n:
        raise ConfigError("config %r: need %d bytes (hex string or bytes)" % (key, n))
    return bytes(v)


def _int(cfg, key, lo, hi, default=None):
    v = cfg.get(key, default)
    if isinstance(v, str):
        try:
            v = int(v, 16)
        except ValueError:
            v = None
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError("config %r: need an integer in %d..%d" % (key, lo, hi))
    return v


def config(cfg):
    """The MAC settings of cfg (see Mac), checked; ConfigError names a bad key."""
    act = cfg.get("activation", "otaa")
    if act not in ("otaa", "abp"):
        raise ConfigError("config 'activation': need 'otaa' or 'abp'")
    otaa = act == "otaa"
    join_eui = 0
    app_key = abp = None
    if otaa:
        dev_eui = _int(cfg, "dev_eui", 0, 0xFFFFFFFFFFFFFFFF)
        join_eui = _int(cfg, "join_eui", 0, 0xFFFFFFFFFFFFFFFF)
        app_key = _hexbytes(cfg, "app_key", 16)
    else:
        dev_eui = _int(cfg, "dev_eui", 0, 0xFFFFFFFFFFFFFFFF, 0)
        abp = (
            _int(cfg, "dev_addr", 0, 0xFFFFFFFF),
            _hexbytes(cfg, "nwk_s_key", 16),
            _hexbytes(cfg, "app_s_key", 16),
        )
    adr = bool(cfg.get("adr", True))
    cfg_dr = _int(cfg, "dr", 0, region.DR_MAX, 5)
    join_dr = _int(cfg, "join_dr", 0, 5, 5)
    cfg_power = _int(cfg, "tx_power", 0, region.TX_POWER_MAX_INDEX, 0)
    cfg_rx2_dr = _int(cfg, "rx2_dr", 0, region.DR_MAX, region.RX2_DR)
    cfg_rx2_freq = _int(cfg, "rx2_freq_hz", region.FREQ_MIN_HZ, region.FREQ_MAX_HZ, region.RX2_FREQ_HZ)
    persist_every = _int(cfg, "fcnt_persist_every", 1, 1024, 16)
    confirm_retries = _int(cfg, "confirm_retries", 0, 7, 3)
    max_wait_ms = _int(cfg, "max_wait_ms", 0, 0x7FFFFFFF, 0)
    rejoin_after_s = _int(cfg, "rejoin_after_s", 3600, 0x7FFFFFFF, 3 * 86400)
    rejoin_min_uplinks = _int(cfg, "rejoin_min_uplinks", 1, 0x7FFFFFFF, 96)
    rejoin_retry_s = _int(cfg, "rejoin_retry_s", 600, 0x7FFFFFFF, 6 * 3600)
    join_nonce_check = bool(cfg.get("join_nonce_check", True))

    return (
        otaa,
        dev_eui,
        join_eui,
        app_key,
        abp,
        adr,
        cfg_dr,
        join_dr,
        cfg_power,
        cfg_rx2_dr,
        cfg_rx2_freq,
        persist_every,
        confirm_retries,
        max_wait_ms,
        rejoin_after_s,
        rejoin_min_uplinks,
        rejoin_retry_s,
        join_nonce_check,
    )


def init_state(mac, store, abp):
    """The Mac's state at start: defaults, then the airtime ledger and the session from the store
    (or the ABP session of the config)."""
    mac.dc = dutycycle.DutyCycle()
    mac.join_backoff = dutycycle.JoinBackoff()
    mac._buf = bytearray(256)  # the one uplink frame buffer
    mac._answers = bytearray()  # MAC answers and requests for the next uplink (FOpts)
    mac._sticky = bytearray()  # answers repeated until any downlink arrives (1.0.2+)
    mac._ack_pending = False  # a confirmed downlink to acknowledge
    # (margin dB, gateway count) from the last LinkCheckAns
    mac.link_check = None
    # (GPS time ms, clock ms it refers to) from the last DeviceTimeAns
    mac.device_time = None
    mac.last_snr = 0
    mac.last_rssi = 0
    mac.tx_done_ms = 0
    mac._join_attempts = 0
    mac._next_rejoin_s = 0
    mac._reset_session_state()
    mac.dev_nonce_next = 0
    mac.join_nonce_last = -1
    mac.joined = False

    # the sub-band airtime ledger: a reset must not refund airtime (dutycycle.DutyCycle)
    mac._dcrec = Record(store, "lwdc")
    draw = mac._dcrec.load()
    now = mac.clock.now_ms()
    if mac._dcrec.damaged or (draw is not None and not dc_unpack(mac.dc, draw, now)):
        dc_assume_full(mac.dc, now)  # unknown (perhaps newer) airtime: count every band as full

    mac._rec = Record(store, "lwstate")
    raw = mac._rec.load()
    if raw is not None:
        unpack(mac, raw)
    if abp is not None:
        abp_addr, abp_nwk, abp_app = abp
        if not mac.joined or mac.dev_addr != abp_addr:
            mac._reset_session_state()
            mac.fcnt_up = mac.fcnt_up_limit = 0
            mac.fcnt_down_next = 0
        mac.dev_addr = abp_addr
        mac._set_keys(abp_nwk, abp_app)
        mac.joined = True
        if raw is None:
            mac.persist()


def unpack(mac, raw):
    """Take back the state Mac._pack() stored (an unknown layout or identity is ignored)."""
    o = m.HEAD_LEN + 32 + m.CH_LEN * region.MAX_CHANNELS
    if len(raw) != o + m.JB_LEN or raw[0] != m.STATE_VER:
        return  # unknown layout: start fresh
    v = struct.unpack_from(m.HEAD, raw, 0)
    if v[19] != mac.dev_eui:
        return  # another device identity was provisioned: its counters do not apply
    flags = v[1]
    # a slot that could not be read may have held a newer copy than this one (a bit flip after
    # a completed write): it may have reserved the next FCnt block and spent one more DevNonce,
    # so skip beyond both (a counter may jump, never repeat)
    lost = mac._rec.damaged
    mac.dev_nonce_next = v[2] + (1 if lost else 0)
    mac.join_nonce_last = v[3]
    jb = struct.unpack_from(m.JB_FMT, raw, o)
    now = mac.clock.now_ms()
    # a clock that restarted (no RTC) cannot say how long we were off: assume no time passed
    if jb[0] >= 0:  # the join back-off's state(), with stored times moved onto this clock
        shift = 0 if now >= jb[5] else now - jb[5]
        b = mac.join_backoff
        b.t0_ms = jb[0] + shift
        b.win_start_ms = jb[1] + shift
        b.win_len_ms, b.budget_ms, b.used_ms = jb[2], jb[3], jb[4]
    if not flags & 1 or bool(flags & 2) != mac.otaa:
        return
    mac.joined = True
    mac.dev_addr = v[4]
    # skip ahead: counters up to the persisted limit may have been used before the reset
    mac.fcnt_up = mac.fcnt_up_limit = v[5] + (mac.persist_every if lost else 0)
    mac.fcnt_down_next = v[6]
    mac.rx1_dr_offset, mac.rx2_dr = v[7], v[8]
    mac.rx_delay_ms = (v[9] or 1) * 1000
    mac.dr, mac.tx_power, mac.nb_trans, mac.dc.max_dcycle, mac.adr_ack_cnt = v[10:15]
    mac.rx2_freq_hz, mac.ch_mask, mac.up_since_down, mac.last_down_s = v[15:19]
    mac._set_keys(bytes(raw[m.HEAD_LEN : m.HEAD_LEN + 16]), bytes(raw[m.HEAD_LEN + 16 : m.HEAD_LEN + 32]))
    o = m.HEAD_LEN + 32
    for i in range(region.MAX_CHANNELS):
        mac.ch_freq[i], mac.ch_dl_freq[i], mac.ch_drs[i] = struct.unpack_from(m.CH_FMT, raw, o)
        o += m.CH_LEN


def restore_retained(mac, data):
    """Take back retained() state after a deep-sleep wake-up. Returns False (and changes
    nothing) when it is torn, from another session, or older than the flash record."""
    hl = struct.calcsize(m.RET_HEAD)
    nb = len(mac.dc.band_free_ms)
    if not data or len(data) < hl + 8 * nb + 6:
        return False
    if struct.unpack_from("<I", data, len(data) - 4)[0] != binascii.crc32(data[:-4]) & 0xFFFFFFFF:
        return False
    v = struct.unpack_from(m.RET_HEAD, data, 0)
    if (
        v[0] != b"LWR1"
        or v[1] != mac._rec.seq
        or not mac.joined
        or v[2] != mac.dev_addr
        or v[4] != mac.fcnt_up_limit
        or v[3] > mac.fcnt_up_limit
    ):
        return False
    now = mac.clock.now_ms()
    saved = v[10]
    # if the clock kept running through the sleep (RTC), timers stay absolute; if it restarted,
    # assume no time passed (the cautious choice: never earlier than allowed)
    shift = 0 if now >= saved else now - saved
    mac.fcnt_up = v[3]
    mac.fcnt_down_next = max(mac.fcnt_down_next, v[5])
    mac.adr_ack_cnt, mac.up_since_down = v[6], v[7]
    mac._ack_pending = bool(v[8])
    mac.dc.max_dcycle = v[9]
    mac.dc.agg_free_ms = v[11] + shift
    jb = mac.join_backoff
    if v[12] >= 0:
        jb.t0_ms, jb.win_start_ms = v[12] + shift, v[13] + shift
        jb.win_len_ms, jb.budget_ms, jb.used_ms = v[14], v[15], v[16]
    o = hl
    for i in range(nb):
        mac.dc.band_free_ms[i] = struct.unpack_from("<q", data, o)[0] + shift
        o += 8
    n = data[o]
    mac._answers = bytearray(data[o + 1 : o + 1 + n])
    o += 1 + n
    n = data[o]
    mac._sticky = bytearray(data[o + 1 : o + 1 + n])
    o += 1 + n
    dc_unpack(mac.dc, memoryview(data)[o : len(data) - 4], now, True)
    return True


def dc_unpack(dc, data, now_ms, exact=False):
    """Take back DutyCycle.pack() after a reset (boot code: here, not in lw/dutycycle.py). Returns
    False (and changes nothing) when malformed.

    Time: if the clock kept running (RTC, now_ms >= the saved time), stored times stay as they
    are; if it restarted, they move so that the save was "just now": the time the node was off
    counts as zero, which is never more than what really passed. The reserve counts as sent
    just now (the frames it covered went out at unknown times before the reset), unless
    `exact` (RTC memory written at sleep time, after the last frame: the reserve is left)."""
    nb = len(dc.ledger)
    try:
        saved, agg = struct.unpack_from("<qq", data, 0)
        o = 16
        bands = []
        for _ in range(nb):
            free, res, n = struct.unpack_from("<qIB", data, o)
            o += 13
            led = []
            for _ in range(n):
                e = struct.unpack_from("<qI", data, o)
                led.append([e[0], e[1]])
                o += 12
            bands.append((free, res, led))
        if o != len(data):
            return False
    except Exception:  # struct.error (CPython) / ValueError (MicroPython): torn or foreign
        return False
    shift = 0 if now_ms >= saved else now_ms - saved
    dc.agg_free_ms = agg + shift
    for b in range(nb):
        free, res, led = bands[b]
        dc.band_free_ms[b] = free + shift
        dc.ledger[b] = []
        for e in led:
            dc._add(b, e[0] + shift, e[1])
        if exact:
            dc.reserve_ms[b] = res
        else:
            if res:
                dc._add(b, now_ms, res)
            dc.reserve_ms[b] = 0
    return True


def dc_assume_full(dc, now_ms):
    """The stored ledger was unreadable: count every band's hourly limit as just spent."""
    for b in range(len(dc.ledger)):
        dc.ledger[b] = [[now_ms, dc.limit_ms(b)]]
        dc.reserve_ms[b] = 0
