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


def _sds_frames(data):
    """Split received bytes into checked 10-byte frames; count the bytes that fit no frame."""
    frames = []
    junk = 0
    i = 0
    while i < len(data):
        if data[i] == 0xAA and i + 10 <= len(data) and data[i + 9] == 0xAB:
            f = data[i : i + 10]
            if sum(f[2:8]) & 0xFF == f[8]:
                frames.append(bytes(f))
                i += 10
                continue
        junk += 1
        i += 1
    return frames, junk


def _listen(u, ms, until=None):
    buf = b""
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        d = u.read()
        if d:
            buf += d
            if until is not None:
                frames, _ = _sds_frames(buf)
                if any(f[1] == until for f in frames):
                    break
        else:
            time.sleep_ms(10)
    return buf


def _ask_mode(u):
    u.read()
    u.write(_sds_cmd(6, 1, 1))  # work (wake a sleeping sensor: it ignores all else while asleep)
    u.write(_sds_cmd(2, 0, 0))  # which reporting mode?
    return _listen(u, 1200, until=0xC5)


def kc_sds011(uart_id, tx, rx, want_mode):
    res = {"wiring": "ok", "heard": False, "mode_found": None, "mode_now": None, "frame": None, "junk": 0}
    u = UART(uart_id, 9600, tx=tx, rx=rx, timeout=0)
    frames, junk = _sds_frames(_ask_mode(u))
    res["junk"] = junk
    if not frames:
        # Nothing on our RX pin: try the wires the other way round before blaming the sensor.
        try:
            u.init(9600, tx=rx, rx=tx, timeout=0)
        except ValueError:
            # RP2040: UART pins are fixed per function, the swap cannot be tried in software
            u.init(9600, tx=tx, rx=rx, timeout=0)
            res["wiring"] = "garbled" if junk else "silent_noswap"
            return res
        sw, _ = _sds_frames(_ask_mode(u))
        u.init(9600, tx=tx, rx=rx, timeout=0)
        res["wiring"] = "swapped" if sw else ("garbled" if junk else "silent")
        return res
    replies = [f for f in frames if f[1] == 0xC5 and f[2] == 2]
    if not replies:
        res["wiring"] = "deaf"  # it talks (active mode) but never answers: its RX wire is off
        res["mode_found"] = "active"
        res["mode_now"] = "active"
        res["frame"] = _decode(frames)
        return res
    res["heard"] = True
    found = "query" if replies[-1][4] else "active"
    res["mode_found"] = found
    if found != want_mode:
        u.read()
        u.write(_sds_cmd(2, 1, 1 if want_mode == "query" else 0))
        fr, _ = _sds_frames(_listen(u, 1200, until=0xC5))
        set_ok = [f for f in fr if f[1] == 0xC5 and f[2] == 2]
        res["mode_now"] = ("query" if set_ok[-1][4] else "active") if set_ok else found
    else:
        res["mode_now"] = found
    # One measurement, in the mode the sensor is in now.
    u.read()
    if res["mode_now"] == "query":
        u.write(_sds_cmd(4))
        fr, j = _sds_frames(_listen(u, 1200, until=0xC0))
    else:
        fr, j = _sds_frames(_listen(u, 2500, until=0xC0))
    res["junk"] += j
    res["frame"] = _decode(fr)
    return res


def _decode(frames):
    for f in frames:
        if f[1] == 0xC0:
            return {"pm25": (f[2] | f[3] << 8) / 10, "pm10": (f[4] | f[5] << 8) / 10}
    return None


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
    time.sleep_ms(750)  # 12-bit conversion time (datasheet: 750 ms max)
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
