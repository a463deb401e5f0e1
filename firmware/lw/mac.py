"""LoRaWAN 1.0.x class-A end-device MAC, EU868 (LoRaWAN 1.0.2/1.0.4, RP002-1.0.x).

The MAC owns timing, counters, channels and persistence; it talks to the world through three
small interfaces passed in (see firmware/README.md): a Radio, a Clock and a Store. It imports no
`machine`, so it runs unchanged under CPython with host/ stand-ins.

Typical node loop:
    mac = Mac(radio, clock, FileStore(), cfg)
    if not mac.joined:
        mac.join()                      # one attempt; honours the join back-off
    res = mac.send(fport, payload)      # Result: status, fcnt, downlink, wait_ms ...
"""

import random
import struct
import sys

from micropython import const

from lw import crypto, dutycycle, frames, region
from lw.store import Record

# Result.status values
SENT = "sent"  # unconfirmed uplink transmitted (nb_trans times or until a downlink)
ACKED = "acked"  # confirmed uplink acknowledged
NO_ACK = "no_ack"  # confirmed uplink transmitted, no ACK after all retries
DUTY_CYCLE = "duty_cycle"  # refused: would exceed a duty-cycle limit; see wait_ms
TOO_LONG = "too_long"  # refused: payload too long for the current data rate
NOT_JOINED = "not_joined"  # refused: no session (call join())
JOINED = "joined"  # join(): accepted
JOIN_FAILED = "join_failed"  # join(): request sent, no valid join-accept
JOIN_BACKOFF = "join_backoff"  # join(): refused by the join back-off or duty cycle; see wait_ms
NONCE_EXHAUSTED = "devnonce_exhausted"
NOTHING = "nothing"  # send_mac(): no MAC command pending  # join(): all 65536 DevNonces used (LoRaWAN 1.0.4)

# layout of the stored state (written by Mac._pack, read by lw/startup.py) and of retained()
# (lw/retain.py)
STATE_VER = const(1)
HEAD = "<BBIiIIIBBBBBBBBIHIIQ"
HEAD_LEN = struct.calcsize(HEAD)
CH_FMT = "<IIB"
JB_FMT = "<qqIIIq"  # join back-off: t0, window start, window length, budget, used, saved at
JB_LEN = const(36)
RET_HEAD = "<4sIIIIIIIBBqqqqIII"
CH_LEN = const(9)
_RX_EARLY_MS = const(20)  # open RX this early: tick jitter and wake-up latency on boards
_RX_MIN_SYMS = const(8)
_MAX_FOPTS = const(15)
_FCTRL_ADR = const(0x80)
_FCTRL_ADR_ACK_REQ = const(0x40)
_FCTRL_ACK = const(0x20)
_LINK_CHECK_REQ = const(0x02)
_DEVICE_TIME_REQ = const(0x0D)


# total length (CID included) of each uplink MAC command (answers and the device's own requests)
# per CID 0x00..0x0D; 0xFF: not defined. bytes, not a dict: no RAM beyond its own bytes
_UP_LEN = b"\xff\xff\x01\x02\x01\x02\x03\x02\x01\xff\x02\xff\xff\x01"


def fit(cmds, room):
    """Split uplink MAC commands into (whole commands that fit in room bytes, the rest)."""
    i = 0
    n = len(cmds)
    while i < n:
        c = cmds[i]
        ln = _UP_LEN[c] if c < 14 else 0xFF
        if ln == 0xFF:
            ln = n - i  # unknown: the rest
        if i + ln > room:
            break
        i += ln
    return bytes(cmds[:i]), bytearray(cmds[i:])


def release(name):
    """Forget the module `name` (loaded for one job) so that the collector can free its code; its
    interned names stay (MicroPython never frees them). On the host the simulator runs many nodes as
    threads of one process, where forgetting a module would race another node's import of it."""
    if sys.implementation.name != "micropython":
        return
    sys.modules.pop(name, None)
    pkg, _, leaf = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and getattr(parent, leaf, None) is not None:
        delattr(parent, leaf)


class ConfigError(ValueError):
    """A MAC configuration value is missing or invalid (the message names the key)."""


class Result:
    """Outcome of send()/join(). `downlink` is (fport, payload) of application data or None."""

    def __init__(self, status):
        self.status = status
        self.fcnt = -1
        self.wait_ms = 0
        self.downlink = None  # type: tuple | None
        self.fpending = False
        self.acked = False
        self.dr = -1
        self.freq_hz = 0
        self.toa_ms = 0
        self.tx_count = 0

    @property
    def ok(self):
        return self.status in (SENT, ACKED, JOINED)


class Mac:
    """Class-A MAC. cfg keys (units in the names; hex strings or bytes/ints accepted):
    activation "otaa"|"abp"; OTAA: dev_eui, join_eui, app_key; ABP: dev_addr, nwk_s_key,
    app_s_key. Optional: adr (True), dr (5, used without ADR and as the start), join_dr (5),
    tx_power (0 = 16 dBm EIRP), rx2_dr (0), rx2_freq_hz (869525000), fcnt_persist_every (16),
    confirm_retries (3), max_wait_ms (0: refuse rather than wait for the duty cycle),
    rejoin_after_s (3 days), rejoin_min_uplinks (96), rejoin_retry_s (6 h),
    join_nonce_check (True). battery(): 0 external power, 1..254 level, 255 unknown.
    """

    # set by lw/startup.py init_state() (annotations only: MicroPython compiles no code for them)
    dc: "dutycycle.DutyCycle"
    join_backoff: "dutycycle.JoinBackoff"
    _dcrec: "Record"
    _rec: "Record"
    _buf: bytearray
    _answers: bytearray
    _sticky: bytearray
    _ack_pending: bool
    link_check: "tuple | None"
    device_time: "tuple | None"
    last_snr: int
    last_rssi: int
    tx_done_ms: int
    _join_attempts: int
    _next_rejoin_s: int
    dev_nonce_next: int
    join_nonce_last: int
    joined: bool

    def __init__(self, radio, clock, store, cfg, battery=None):
        self.radio = radio
        self.clock = clock
        self.battery = battery
        # reading the config is boot-only code: lw/startup.py, released once the Mac exists
        from lw import startup

        try:
            (
                self.otaa,
                self.dev_eui,
                self.join_eui,
                self._app_key,
                abp,
                self.adr,
                self._cfg_dr,
                self.join_dr,
                self._cfg_power,
                self._cfg_rx2_dr,
                self._cfg_rx2_freq,
                self.persist_every,
                self.confirm_retries,
                self.max_wait_ms,
                self.rejoin_after_s,
                self.rejoin_min_uplinks,
                self.rejoin_retry_s,
                self.join_nonce_check,
            ) = startup.config(cfg)
            if self.otaa:
                self._app_aes = crypto.aes_key(self._app_key)
            startup.init_state(self, store, abp)
        finally:
            del startup
            release("lw.startup")

    # ---- session state -------------------------------------------------------------------------

    def _reset_session_state(self):
        self.dev_addr = 0
        self._nwk_s_key = bytes(16)
        self._app_s_key = bytes(16)
        self._nwk_aes = None
        self._app_aes_s = None
        self.fcnt_up = 0
        self.fcnt_up_limit = 0
        self.fcnt_down_next = 0
        self.rx1_dr_offset = 0
        self.rx2_dr = self._cfg_rx2_dr
        self.rx2_freq_hz = self._cfg_rx2_freq
        self.rx_delay_ms = region.RECEIVE_DELAY1_MS
        self.dr = self._cfg_dr
        self.tx_power = self._cfg_power
        self.nb_trans = 1
        self.adr_ack_cnt = 0
        self.up_since_down = 0
        self.last_down_s = self.clock.now_ms() // 1000
        # channels: uplink freq, downlink (RX1) freq, DR range (max << 4 | min)
        self.ch_freq = [0] * region.MAX_CHANNELS
        self.ch_dl_freq = [0] * region.MAX_CHANNELS
        self.ch_drs = [0] * region.MAX_CHANNELS
        for i in range(len(region.DEFAULT_CHANNELS_HZ)):
            self.ch_freq[i] = region.DEFAULT_CHANNELS_HZ[i]
            self.ch_drs[i] = 5 << 4
        self.ch_mask = 0x0007
        self.dc.max_dcycle = 0

    def _set_keys(self, nwk, app):
        self._nwk_s_key = nwk
        self._app_s_key = app
        self._nwk_aes = crypto.aes_key(nwk)
        self._app_aes_s = crypto.aes_key(app)

    def _pack(self):
        flags = (1 if self.joined else 0) | (2 if self.otaa else 0)
        out = bytearray(HEAD_LEN + 32 + CH_LEN * region.MAX_CHANNELS + JB_LEN)
        struct.pack_into(
            HEAD,
            out,
            0,
            STATE_VER,
            flags,
            self.dev_nonce_next,
            self.join_nonce_last,
            self.dev_addr,
            self.fcnt_up_limit,
            self.fcnt_down_next,
            self.rx1_dr_offset,
            self.rx2_dr,
            self.rx_delay_ms // 1000,
            self.dr,
            self.tx_power,
            self.nb_trans,
            self.dc.max_dcycle,
            min(self.adr_ack_cnt, 255),
            self.rx2_freq_hz,
            self.ch_mask,
            self.up_since_down,
            self.last_down_s & 0xFFFFFFFF,
            self.dev_eui,
        )
        out[HEAD_LEN : HEAD_LEN + 16] = self._nwk_s_key
        out[HEAD_LEN + 16 : HEAD_LEN + 32] = self._app_s_key
        o = HEAD_LEN + 32
        for i in range(region.MAX_CHANNELS):
            struct.pack_into(CH_FMT, out, o, self.ch_freq[i], self.ch_dl_freq[i], self.ch_drs[i])
            o += CH_LEN
        # the join back-off rides along (written with each DevNonce anyway): a node that resets in a
        # loop must not restart its join airtime budget every time
        jb = self.join_backoff.state()
        struct.pack_into(JB_FMT, out, o, jb[0], jb[1], jb[2], jb[3], jb[4], self.clock.now_ms())
        return out

    def persist(self):
        """Write the state now (two-slot record: a power cut mid-write keeps the previous copy)."""
        self._rec.save(self._pack())

    def _save_airtime(self, freq, toa, now):
        # before a frame goes out, its airtime must be on the store (in a reserved chunk, so
        # that most frames need no write)
        if self.dc.needs_save(freq, toa):
            self.dc.reserve(freq, toa)
            self._dcrec.save(self.dc.pack(now))

    # ---- deep sleep ----------------------------------------------------------------------------

    def retained(self):
        """Volatile state for RAM that survives deep sleep (ESP32 RTC memory), as bytes: the exact
        FCntUp (so a wake-up needs no skip-ahead and no flash write), duty-cycle and join back-off
        timers, pending MAC answers. Give it back with restore_retained() after waking. Its code
        (lw/retain.py) is loaded for the call, once before each deep sleep, and released after."""
        from lw import retain

        try:
            return retain.retained(self)
        finally:
            del retain
            release("lw.retain")

    def restore_retained(self, data):
        """Take back retained() state after a deep-sleep wake-up. Returns False (and changes
        nothing) when it is torn, from another session, or older than the flash record."""
        from lw import startup  # wake-up only code, released after use

        try:
            return startup.restore_retained(self, data)
        finally:
            del startup
            release("lw.startup")

    # ---- channels ------------------------------------------------------------------------------

    def _pick_channel(self, dr, now, toa):
        """(channel index, wait ms): a random enabled channel for dr that may send a frame of toa
        ms now, or the shortest wait among them (-1 when no channel supports dr)."""
        free = []
        best = -1
        for i in range(region.MAX_CHANNELS):
            if not self.ch_mask & (1 << i) or not self.ch_freq[i]:
                continue
            drs = self.ch_drs[i]
            if not (drs & 0x0F) <= dr <= (drs >> 4):
                continue
            w = self.dc.wait_ms(self.ch_freq[i], now, toa)
            if w == 0:
                free.append(i)
            elif w > 0 and (best < 0 or w < best):
                best = w
        if free:
            return free[random.getrandbits(8) % len(free)], 0
        return -1, best

    def _wait_for_channel(self, dr, max_wait, toa):
        ch, wait = self._pick_channel(dr, self.clock.now_ms(), toa)
        if ch < 0 and 0 < wait <= max_wait:
            self.clock.sleep_ms(wait)
            ch, wait = self._pick_channel(dr, self.clock.now_ms(), toa)
        return ch, wait

    def enabled_channels(self):
        """[(index, freq_hz, min_dr, max_dr)] of the channels uplinks may use."""
        return [
            (i, self.ch_freq[i], self.ch_drs[i] & 0x0F, self.ch_drs[i] >> 4)
            for i in range(region.MAX_CHANNELS)
            if self.ch_mask & (1 << i) and self.ch_freq[i]
        ]

    # ---- radio windows -------------------------------------------------------------------------

    def _rx(self, at_ms, freq_hz, dr):
        sf = region.DR_SF[dr]
        bw = region.DR_BW[dr]
        sym_ms = ((1 << sf) + bw - 1) // bw
        early = self.clock.now_ms() < at_ms - _RX_EARLY_MS
        wait = at_ms - _RX_EARLY_MS - self.clock.now_ms()
        if wait > 0:
            self.clock.sleep_ms(wait)
        if not early and self.clock.now_ms() > at_ms + sym_ms * 3:
            return None  # too late to catch this window's preamble: do not pretend
        frame = self.radio.receive(freq_hz, sf, bw, 2 * _RX_EARLY_MS + _RX_MIN_SYMS * sym_ms)
        if frame is not None:
            self.last_rssi = self.radio.rssi
            self.last_snr = self.radio.snr
        return frame

    def _transmit(self, n, ch, dr):
        freq = self.ch_freq[ch]
        sf = region.DR_SF[dr]
        bw = region.DR_BW[dr]
        start = self.clock.now_ms()
        toa = (region.airtime_us(n, sf, bw) + 999) // 1000
        # account before sending: a crash mid-TX must not leave the budget unspent
        self._save_airtime(freq, toa, start)
        self.dc.record(freq, start, toa)
        power = region.tx_power_dbm(self.tx_power)
        done = self.radio.transmit(memoryview(self._buf)[:n], freq, sf, bw, power)
        self.tx_done_ms = done
        return done, toa

    # ---- join ----------------------------------------------------------------------------------

    def join(self, max_wait_ms=None):
        """One OTAA join attempt. Returns a Result: JOINED, JOIN_FAILED, JOIN_BACKOFF (wait_ms
        says when a join-request would be allowed) or NONCE_EXHAUSTED."""
        if not self.otaa:
            raise ConfigError("join() needs activation 'otaa'")
        if self.dev_nonce_next > 0xFFFF:
            return Result(NONCE_EXHAUSTED)
        # the join code (lw/join.py) is in RAM only during the attempt, the code that starts the
        # session (lw/session.py) only after it
        from lw import join as lwjoin

        try:
            r, acc = lwjoin.attempt(self, self.max_wait_ms if max_wait_ms is None else max_wait_ms)
        finally:
            del lwjoin
            release("lw.join")
        if acc is not None:
            from lw import session

            try:
                session.start(self, acc[0], acc[1])
            finally:
                del session
                release("lw.session")
            r.status = JOINED
        return r

    # ---- uplink --------------------------------------------------------------------------------

    def request_link_check(self):
        """Ask for a LinkCheckAns in the next downlink (sent with the next uplink)."""
        self._answers.append(_LINK_CHECK_REQ)

    def request_device_time(self):
        """Ask for the network time (DeviceTimeReq) with the next uplink."""
        self._answers.append(_DEVICE_TIME_REQ)

    def max_payload(self):
        """Largest application payload for the current data rate (no FOpts)."""
        return region.MAX_APP_PAYLOAD[self.dr]

    def rejoin_due(self):
        """True when an OTAA node has heard nothing for rejoin_after_s over many uplinks."""
        if not self.otaa or not self.joined:
            return False
        now_s = self.clock.now_ms() // 1000
        if now_s < self.last_down_s:
            self.last_down_s = now_s  # clock went back (RTC lost): restart the silence timer
        return (
            self.up_since_down >= self.rejoin_min_uplinks
            and now_s - self.last_down_s >= self.rejoin_after_s
            and now_s >= self._next_rejoin_s
        )

    def send(self, fport, payload, confirmed=False, max_wait_ms=None):
        """Send application data on fport 1..223. Returns a Result (see the status constants).
        Never transmits over a duty-cycle limit: waits up to max_wait_ms, else DUTY_CYCLE."""
        if not 1 <= fport <= 223:
            raise ValueError("fport must be 1..223")
        return self._send(fport, payload, confirmed, max_wait_ms)

    def send_mac(self, confirmed=False, max_wait_ms=None):
        """Send the pending MAC answers and requests alone on FPort 0 (encrypted with NwkSKey), e.g.
        when they do not fit into FOpts. Result NOTHING when none are pending."""
        cmds = bytes(self._sticky + self._answers)
        if not cmds:
            return Result(NOTHING)
        return self._send(0, cmds, confirmed, max_wait_ms)

    def _send(self, fport, payload, confirmed, max_wait_ms):
        if max_wait_ms is None:
            max_wait_ms = self.max_wait_ms
        if self.rejoin_due():
            self._next_rejoin_s = self.clock.now_ms() // 1000 + self.rejoin_retry_s
            self.join(0)  # on failure the old session stays in use
        if not self.joined:
            return Result(NOT_JOINED)
        dr = self.dr
        if len(payload) > region.MAX_APP_PAYLOAD[dr]:
            r = Result(TOO_LONG)
            r.dr = dr
            return r
        # as many whole MAC commands as FOpts and the DR's payload size allow (sticky answers
        # first); the rest waits for the next uplink (or send_mac()). FPort 0 carries its own.
        room = region.MAX_APP_PAYLOAD[dr] - len(payload)
        if room > _MAX_FOPTS:
            room = _MAX_FOPTS
        fopts = b""
        rest = self._answers
        if fport != 0:
            fopts, rest = fit(self._sticky + self._answers, room)
            if len(fopts) < len(self._sticky):
                rest = self._answers  # not even the sticky answers fitted: nothing was taken
        fctrl = 0
        if self.adr:
            fctrl |= _FCTRL_ADR
            if self.adr_ack_cnt >= region.ADR_ACK_LIMIT:
                fctrl |= _FCTRL_ADR_ACK_REQ
        if self._ack_pending:
            fctrl |= _FCTRL_ACK
        n = 13 + len(fopts) + len(payload)
        toa = (region.airtime_us(n, region.DR_SF[dr], region.DR_BW[dr]) + 999) // 1000
        ch, wait = self._wait_for_channel(dr, max_wait_ms, toa)
        r = Result(DUTY_CYCLE)
        r.dr = dr
        r.fcnt = self.fcnt_up
        if ch < 0:
            r.wait_ms = wait
            return r
        if self.fcnt_up >= self.fcnt_up_limit:
            # reserve the next block of counters on flash before using any of them
            self.fcnt_up_limit = self.fcnt_up + self.persist_every
            self.persist()
        n = frames.build_data_up(
            self._buf,
            confirmed,
            self.dev_addr,
            self.fcnt_up,
            fctrl,
            fopts,
            fport,
            payload,
            self._nwk_aes,
            self._app_aes_s,
        )
        # the counter is spent once the frame exists: a radio error must never lead to a second,
        # different frame under the same FCnt (same keystream)
        self.fcnt_up += 1
        self._answers = bytearray() if fport == 0 else bytearray(rest)
        self._ack_pending = False
        tries = (1 + self.confirm_retries) if confirmed else self.nb_trans
        got_down = False
        for attempt in range(tries):
            if attempt:
                if confirmed:
                    self.clock.sleep_ms(region.ACK_TIMEOUT_MS - 1000 + random.getrandbits(10) % 2000)
                ch, wait = self._wait_for_channel(dr, max_wait_ms, toa)
                if ch < 0:
                    r.wait_ms = wait
                    break
            done, toa = self._transmit(n, ch, dr)
            r.tx_count += 1
            r.freq_hz, r.toa_ms = self.ch_freq[ch], toa
            d = self._rx_windows(done, ch, dr)
            if d is not None:
                got_down = True
                if d.ack:
                    r.acked = True
                r.fpending = d.fpending
                if d.fport and d.payload:
                    r.downlink = (d.fport, d.payload)
            if (confirmed and r.acked) or (not confirmed and got_down):
                break
        self._after_uplink(got_down)
        if confirmed:
            r.status = ACKED if r.acked else NO_ACK
        else:
            r.status = SENT if r.tx_count else DUTY_CYCLE
        self.radio.sleep()
        return r

    def _rx_windows(self, done, ch, dr):
        at1 = done + self.rx_delay_ms
        f1 = self.ch_dl_freq[ch] or self.ch_freq[ch]
        for at, freq, rdr in (
            (at1, f1, region.rx1_dr(dr, self.rx1_dr_offset)),
            (at1 + 1000, self.rx2_freq_hz, self.rx2_dr),
        ):
            frame = self._rx(at, freq, rdr)
            if frame is None:
                continue
            d = self._handle_downlink(frame)
            if d is not None:
                return d  # a valid frame in RX1 means no RX2
        return None

    def _handle_downlink(self, frame):
        try:
            d = frames.parse_data_down(
                frame, self.dev_addr, self.fcnt_down_next, self._nwk_aes, self._app_aes_s
            )
        except frames.FrameError:
            return None
        self.fcnt_down_next = d.fcnt32 + 1
        self._sticky = bytearray()  # any class-A downlink ends the repetition of sticky answers
        if d.confirmed:
            self._ack_pending = True
        if d.fopts or (d.fport == 0 and d.payload):
            # the MAC-command handlers (lw/maccmds.py) are in RAM only while a downlink carries some
            from lw import maccmds

            try:
                if d.fopts:
                    maccmds.process(self, d.fopts)
                if d.fport == 0 and d.payload:
                    maccmds.process(self, d.payload)
            finally:
                del maccmds
                release("lw.maccmds")
        self.up_since_down = 0
        self.adr_ack_cnt = 0
        self.last_down_s = self.clock.now_ms() // 1000
        self.persist()  # downlinks are rare; keep FCntDown and settings exact
        return d

    def _after_uplink(self, got_down):
        if got_down:
            return
        self.up_since_down += 1
        if not self.adr:
            return
        self.adr_ack_cnt += 1
        # ADR back-off (LoRaWAN 1.0.2 section 4.3.1.1): after LIMIT + DELAY uplinks without a
        # downlink, and every DELAY after that, first full power, then one DR lower, and at
        # DR0 re-enable the default channels
        over = self.adr_ack_cnt - region.ADR_ACK_LIMIT
        if over >= region.ADR_ACK_DELAY and over % region.ADR_ACK_DELAY == 0:
            if self.tx_power != 0:
                self.tx_power = 0
            elif self.dr > 0:
                self.dr -= 1
            else:
                self.ch_mask |= 0x0007
            self.persist()
