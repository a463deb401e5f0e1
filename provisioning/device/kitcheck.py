# ruff: noqa: SIM105, UP  (MicroPython code: no contextlib, no exception chaining)
# mypy: ignore-errors
# Runs ON THE BOARD (MicroPython), loaded by havel.provisioning.kitcheck over the raw REPL.
# Each kc_* function probes one part of the kit and returns plain facts (numbers, lists, dicts);
# the host turns them into the checklist and the advice, so this file stays small.
import binascii
import time

from machine import ADC, I2C, SPI, Pin


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
