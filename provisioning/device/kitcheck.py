# ruff: noqa: SIM105, UP  (MicroPython code: no contextlib, no exception chaining)
# mypy: ignore-errors
# Runs ON THE BOARD (MicroPython), loaded by havel.provisioning.kitcheck over the raw REPL.
# Each kc_* function probes one part of the kit and returns plain facts (numbers, lists, dicts);
# the host turns them into the checklist and the advice, so this file stays small.
import binascii
import time

from machine import ADC, I2C, SPI, UART, Pin


def kc_power(pin, level):
    Pin(pin, Pin.OUT, value=level)
    time.sleep_ms(50)  # let the sensors on the rail power up
    return True


def kc_i2c_scan(sda, scl, freq):
    try:
        bus = I2C(0, sda=Pin(sda), scl=Pin(scl), freq=freq)
        return {"found": bus.scan()}
    except OSError as e:
        return {"found": [], "error": e.args[0] if e.args else 0}


def kc_i2c_reg(sda, scl, freq, addr, reg):
    bus = I2C(0, sda=Pin(sda), scl=Pin(scl), freq=freq)
    try:
        return bus.readfrom_mem(addr, reg, 1)[0]
    except OSError:
        return None


# ---------------------------------------------------------------- PMU (LILYGO T-Beam)
def kc_pmu_lora_rail(sda, scl, freq, addr):
    """Identify the X-Powers PMU and switch the LoRa rail on at 3.3 V, as the firmware does at boot.

    AXP192 (T-Beam v1.0/1.1): LoRa on LDO2, REG28H[7:4] voltage (1.8 V + 100 mV steps), REG12H bit 2 on.
    AXP2101 (T-Beam v1.2): LoRa on ALDO2, REG93H voltage (0.5 V + 100 mV steps), REG90H bit 1 on.
    """
    bus = I2C(0, sda=Pin(sda), scl=Pin(scl), freq=freq)
    try:
        ic = bus.readfrom_mem(addr, 0x03, 1)[0]
    except OSError:
        return {"chip": None, "ic_type": None, "rail_on": False}
    if ic == 0x03:
        r = bus.readfrom_mem(addr, 0x28, 1)[0]
        bus.writeto_mem(addr, 0x28, bytes(((r & 0x0F) | 0xF0,)))
        r = bus.readfrom_mem(addr, 0x12, 1)[0]
        bus.writeto_mem(addr, 0x12, bytes((r | 0x04,)))
        on = bool(bus.readfrom_mem(addr, 0x12, 1)[0] & 0x04)
        chip = "axp192"
    elif ic == 0x4A:
        bus.writeto_mem(addr, 0x93, bytes((28,)))
        r = bus.readfrom_mem(addr, 0x90, 1)[0]
        bus.writeto_mem(addr, 0x90, bytes((r | 0x02,)))
        on = bool(bus.readfrom_mem(addr, 0x90, 1)[0] & 0x02)
        chip = "axp2101"
    else:
        return {"chip": None, "ic_type": ic, "rail_on": False}
    time.sleep_ms(20)  # let the rail and the radio's regulator settle
    return {"chip": chip, "ic_type": ic, "rail_on": on}


# ---------------------------------------------------------------- SDS011 (Nova control protocol V1.3)
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
            res["frame"] = _decode(link.frames)
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
    res["frame"] = _decode([f]) if f is not None else None
    if want_mode == "query":
        # The firmware wakes it for each reading: let the fan rest until then (it wears out).
        r = link.ask(6, 1, 0)
        res["asleep_now"] = r is not None and r[4] == 0
    res["junk"] = link.junk
    return res


def _decode(frames):
    for f in frames:
        if f[1] == 0xC0:
            return {"pm25": (f[2] | f[3] << 8) / 10, "pm10": (f[4] | f[5] << 8) / 10}
    return None


# ---------------------------------------------------------------- SCD41 (Sensirion SCD4x datasheet 1.4)
# Waits from the datasheet: 1000 ms after power-up before it answers, 500 ms after
# stop_periodic_measurement, 5000 ms for a single-shot measurement, 1 ms for the other commands used here.
def _scd_crc(b0, b1):
    crc = 0xFF
    for b in (b0, b1):
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _scd_ask(bus, addr, cmd, nwords, res):
    """Send a command, wait 1 ms, read its words; None on a NACK or a CRC error (counted)."""
    try:
        bus.writeto(addr, bytes((cmd >> 8, cmd & 0xFF)))
        time.sleep_ms(1)
        b = bus.readfrom(addr, 3 * nwords)
    except OSError:
        return None
    words = []
    for i in range(0, 3 * nwords, 3):
        if _scd_crc(b[i], b[i + 1]) != b[i + 2]:
            res["crc_errors"] += 1
            return None
        words.append(b[i] << 8 | b[i + 1])
    return words


def kc_scd41(sda, scl, freq, addr):
    res = {"found": False, "serial": None, "crc_errors": 0, "ready": False, "co2_ppm": None}
    bus = I2C(0, sda=Pin(sda), scl=Pin(scl), freq=freq)
    t0 = time.ticks_ms()
    while True:
        try:
            # stop_periodic_measurement: a sensor that was measuring before ignores everything else
            bus.writeto(addr, b"\x3f\x86")
            break
        except OSError:
            # no ACK yet: it may have been powered up (Vext) less than 1000 ms ago
            if time.ticks_diff(time.ticks_ms(), t0) > 1500:
                return res
            time.sleep_ms(50)
    res["found"] = True
    time.sleep_ms(500)
    sn = _scd_ask(bus, addr, 0x3682, 3, res)  # get_serial_number
    if sn is not None:
        res["serial"] = f"{sn[0]:04x}{sn[1]:04x}{sn[2]:04x}"
    try:
        bus.writeto(addr, b"\x21\x9d")  # measure_single_shot
    except OSError:
        return res
    time.sleep_ms(5000)
    for _ in range(10):
        w = _scd_ask(bus, addr, 0xE4B8, 1, res)  # get_data_ready_status
        if w is not None and w[0] & 0x07FF:
            res["ready"] = True
            break
        time.sleep_ms(100)
    if res["ready"]:
        m = _scd_ask(bus, addr, 0xEC05, 3, res)  # read_measurement
        if m is not None:
            res["co2_ppm"] = m[0]
            res["temp_c"] = round(-45 + 175 * m[1] / 65535, 1)
            res["humidity"] = round(100 * m[2] / 65535, 1)
    return res


# ---------------------------------------------------------------- DS18B20
def kc_ds18b20(pin):
    import ds18x20
    import onewire

    ow = onewire.OneWire(Pin(pin))
    ds = ds18x20.DS18X20(ow)
    roms = ds.scan()
    res = {"roms": [binascii.hexlify(bytes(r)).decode() for r in roms], "temps": [], "crc_errors": 0}
    if not roms:
        return res
    ds.convert_temp()
    # Poll read slots: a powered DS18B20 answers 0 while converting and 1 when done (datasheet,
    # Convert T). 750 ms is the maximum at 12 bits; clones are often slower, so allow 1.5 s.
    t0 = time.ticks_ms()
    while not ow.readbit():
        if time.ticks_diff(time.ticks_ms(), t0) > 1500:
            res["still_converting"] = True
            break
        time.sleep_ms(10)
    res["conversion_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    for r in roms:
        try:
            res["temps"].append(ds.read_temp(r))
        except Exception:
            res["temps"].append(None)
            res["crc_errors"] += 1
    return res


# ---------------------------------------------------------------- JSN-SR04T
def kc_ultrasonic(trig, echo, tries):
    """Echo pulse lengths in us (negative: no echo) for `tries` pings, 60 ms apart (the sensor's cycle)."""
    import machine

    t = Pin(trig, Pin.OUT, value=0)
    e = Pin(echo, Pin.IN)
    res = []
    for _ in range(tries):
        t(1)
        time.sleep_us(20)  # >= 10 us trigger; some v3 boards need more
        t(0)
        res.append(machine.time_pulse_us(e, 1, 30000))
        time.sleep_ms(60)
    return res


# ---------------------------------------------------------------- LoRa radio
def kc_radio(spi_id, sck, mosi, miso, nss, rst, busy):
    spi = SPI(spi_id, baudrate=1000000, polarity=0, phase=0, sck=Pin(sck), mosi=Pin(mosi), miso=Pin(miso))
    cs = Pin(nss, Pin.OUT, value=1)
    if rst is not None:
        r = Pin(rst, Pin.OUT, value=1)
        r(0)
        time.sleep_ms(2)
        r(1)
        time.sleep_ms(10)
    res = {"sx126x_sync": None, "sx127x_version": None, "busy_stuck": False}
    if busy is not None:
        b = Pin(busy, Pin.IN)
        t0 = time.ticks_ms()
        while b.value() and time.ticks_diff(time.ticks_ms(), t0) < 100:
            time.sleep_ms(1)
        res["busy_stuck"] = bool(b.value())
        if not res["busy_stuck"]:
            # SX126x ReadRegister(0x0740): LoRa sync word, reset value 0x1424 (DS_SX1261-2 13.4.1)
            buf = bytearray(6)
            cs(0)
            spi.write_readinto(b"\x1d\x07\x40\x00\x00\x00", buf)
            cs(1)
            res["sx126x_sync"] = buf[4] << 8 | buf[5]
    # SX127x RegVersion 0x42 reads 0x12 (SX1276/77/78/79 datasheet, register table)
    buf = bytearray(2)
    cs(0)
    spi.write_readinto(b"\x42\x00", buf)
    cs(1)
    res["sx127x_version"] = buf[1]
    return res


# ---------------------------------------------------------------- battery
def kc_battery(pin, ctrl, ctrl_on, divider):
    if ctrl is not None:
        c = Pin(ctrl, Pin.OUT, value=ctrl_on)
        time.sleep_ms(10)
    adc = ADC(Pin(pin))
    try:
        adc.atten(ADC.ATTN_11DB)
    except AttributeError:
        pass
    total = 0
    for _ in range(8):
        total += adc.read_uv()
    if ctrl is not None:
        c(1 - ctrl_on)
    return int(total / 8 * divider / 1000)
