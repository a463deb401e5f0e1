# mypy: ignore-errors
# Runs ON THE BOARD (MicroPython), loaded by havel.provisioning.kitcheck over the raw REPL for a kit with
# an SDS011 only (its serial protocol is most of the probe code; other kits do not spend RAM on it).
# kc_sds011 finds out how the sensor is wired and in which mode it reports, sets the mode the firmware
# wants, and returns plain facts; the host turns them into the checklist line.
# SDS011: Nova Fitness laser dust sensor, control protocol V1.3.
import time

from machine import UART


def _sds_cmd(cmd, d1=0, d2=0):
    b = bytearray(19)
    b[0] = 0xAA
    b[1] = 0xB4
    b[2] = cmd
    b[3] = d1
    b[4] = d2
    b[15] = 0xFF
    b[16] = 0xFF
    b[17] = sum(b[2:17]) & 0xFF
    b[18] = 0xAB
    return b


# Timing (protocol V1.3 and the datasheet): 9600 baud 8N1, so a 19-byte command takes 19.8 ms on the wire
# and a 10-byte reply 10.4 ms; in active mode a data frame comes once a second. The protocol gives no
# reply latency, and real sensors often take about a second (sds011lib measured ~1 s). So each reply is
# awaited up to _REPLY_MS after the command was first sent, and the command is sent once more after
# _RESEND_MS in case the sensor missed it. Replies are matched by command id, so a prompt sensor costs
# no waiting at all.
_REPLY_MS = 3000
_RESEND_MS = 1500
_HELLO_MS = 1000  # no mode reply by then: also send the wake-up (a sleeping sensor hears only that)
_REPORT_MS = 2500  # active mode: one frame a second, plus the time after waking or switching mode


def _sds_frames(data):
    """Split received bytes into checked 10-byte frames. Returns (frames, junk, rest): the bytes that
    fit no frame are counted as junk; `rest` is the start of a frame still arriving."""
    frames = []
    junk = 0
    i = 0
    n = len(data)
    while i < n:
        if data[i] == 0xAA:
            if i + 10 > n:
                break  # a frame still arriving: keep it for the next read
            if data[i + 9] == 0xAB and sum(data[i + 2 : i + 8]) & 0xFF == data[i + 8]:
                frames.append(bytes(data[i : i + 10]))
                i += 10
                continue
        junk += 1
        i += 1
    return frames, junk, data[i:]


def _is(f, kind, cmd, op):
    return f[1] == kind and (cmd is None or (f[2] == cmd and (op is None or f[3] == op)))


class _SdsLink:
    """The SDS011's serial line: one command at a time, and the reply picked by its command id (and
    whether it was a query or a setting), so a late reply to an earlier command or a data frame in
    between is never taken for the answer."""

    def __init__(self, u):
        self.u = u
        self.rest = b""
        self.frames = []  # every good frame heard, in order
        self.junk = 0

    def _wait(self, kind, cmd, op, ms, resend=None):
        """Read until a frame of `kind` (0xC5 reply to `cmd`/`op`, or 0xC0 data) arrives, or `ms` pass;
        `resend` (a command) goes out once more after _RESEND_MS without an answer."""
        seen = len(self.frames)
        t0 = time.ticks_ms()
        while True:
            d = self.u.read()
            if d:
                fr, junk, self.rest = _sds_frames(self.rest + d)
                self.frames.extend(fr)
                self.junk += junk
                while seen < len(self.frames):
                    f = self.frames[seen]
                    seen += 1
                    if _is(f, kind, cmd, op):
                        return f
            else:
                waited = time.ticks_diff(time.ticks_ms(), t0)
                if waited >= ms:
                    return None
                if resend is not None and waited >= _RESEND_MS:
                    self.u.write(resend)
                    resend = None
                time.sleep_ms(5)

    def send(self, cmd, d1=0, d2=0):
        b = _sds_cmd(cmd, d1, d2)
        self.u.write(b)
        return b

    def ask(self, cmd, d1=0, d2=0):
        """Send one command; its reply frame, or None when none came within _REPLY_MS."""
        b = self.send(cmd, d1, d2)
        if cmd == 4:
            return self._wait(0xC0, None, None, _REPLY_MS, b)
        return self._wait(0xC5, cmd, d1, _REPLY_MS, b)

    def heard(self, kind, cmd, op):
        """The first frame of that kind heard so far, or None."""
        for f in self.frames:
            if _is(f, kind, cmd, op):
                return f
        return None

    def report(self):
        return self._wait(0xC0, None, None, _REPORT_MS)


def _sds_hello(link):
    """Ask for the reporting mode; without an answer within _HELLO_MS, wake it (a sleeping sensor
    ignores everything else) and keep listening: an awake but slow sensor answers the mode query
    before the wake-up (one frame at a time, in order), a sleeping one only the wake-up.
    Returns (mode reply or None, woke: it was asleep and answered the wake-up)."""
    link.send(2, 0, 0)
    r = link._wait(0xC5, 2, 0, _HELLO_MS)
    if r is not None:
        return r, False
    w = link.ask(6, 1, 1)  # set work
    m = link.heard(0xC5, 2, 0)
    if m is not None:
        return m, False  # it was awake, only slow
    if w is None:
        return None, False
    return link.ask(2, 0, 0), True


def kc_sds011(uart_id, tx, rx, want_mode):
    res = {
        "wiring": "ok",
        "heard": False,
        "was_asleep": False,
        "mode_found": None,
        "mode_now": None,
        "asleep_now": False,
        "frame": None,
        "junk": 0,
    }
    u = UART(uart_id, 9600, tx=tx, rx=rx, timeout=0)
    u.read()
    link = _SdsLink(u)
    mode, woke = _sds_hello(link)
    if mode is None and not link.frames:
        # Nothing on our RX pin: try the wires the other way round before blaming the sensor.
        res["junk"] = link.junk
        try:
            u.init(9600, tx=rx, rx=tx, timeout=0)
        except ValueError:
            # RP2040: UART pins are fixed per function, the swap cannot be tried in software
            u.init(9600, tx=tx, rx=rx, timeout=0)
            res["wiring"] = "garbled" if link.junk else "silent_noswap"
            return res
        u.read()
        sw = _SdsLink(u)
        _sds_hello(sw)
        u.init(9600, tx=tx, rx=rx, timeout=0)
        if any(f[1] == 0xC5 for f in sw.frames):
            res["wiring"] = "swapped"  # it talks and hears with the wires the other way round
        elif sw.frames:
            res["wiring"] = "tx_on_tx"  # it talks on the board's TX pin but hears the board on neither
        else:
            res["wiring"] = "garbled" if link.junk else "silent"
        return res
    if mode is None:
        if woke or any(f[1] == 0xC5 for f in link.frames):
            res["wiring"] = "no_mode_reply"  # it hears us (it answered) but not about its mode
        else:
            res["wiring"] = "deaf"  # it talks (active mode) but never answers: its RX wire is off
            res["mode_found"] = "active"
            res["mode_now"] = "active"
            res["frame"] = _sds_decode(link.frames)
        res["junk"] = link.junk
        return res
    res["heard"] = True
    res["was_asleep"] = woke
    found = "query" if mode[4] else "active"
    res["mode_found"] = found
    res["mode_now"] = found
    if found != want_mode:
        r = link.ask(2, 1, 1 if want_mode == "query" else 0)
        if r is not None:
            res["mode_now"] = "query" if r[4] else "active"
    # Working period (protocol V1.3, command 8): the firmware wants 0, continuous while awake; a sensor
    # left with n minutes by other software switches itself off and on by that schedule.
    p = link.ask(8, 0, 0)
    if p is not None:
        res["period_found"] = p[4]
        res["period_now"] = p[4]
        if p[4]:
            q = link.ask(8, 1, 0)
            if q is not None:
                res["period_now"] = q[4]
    # One measurement, in the mode the sensor is in now.
    f = link.ask(4) if res["mode_now"] == "query" else link.report()
    res["frame"] = _sds_decode([f]) if f is not None else None
    if want_mode == "query":
        # The firmware wakes it for each reading: let the fan rest until then (it wears out).
        r = link.ask(6, 1, 0)
        res["asleep_now"] = r is not None and r[4] == 0
    res["junk"] = link.junk
    return res


def _sds_decode(frames):
    for f in frames:
        if f[1] == 0xC0:
            return {"pm25": (f[2] | f[3] << 8) / 10, "pm10": (f[4] | f[5] << 8) / 10}
    return None
