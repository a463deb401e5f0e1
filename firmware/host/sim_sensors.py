"""Simulated sensor chips for the host (never flashed): byte-level models of the parts.

Each simulator behaves like the chip on its bus: registers and calibration words (BME280), 16-bit
commands with Sensirion CRC-8 words and "not ready" NACKs (SHT31, SCD41), 19-byte command frames and
10-byte reply frames with checksums, reporting mode and sleep state kept across "reboots" of the host
(SDS011), ROM and scratchpad with the 85.0 C power-on value and conversion time (DS18B20), echo
pulses timed by the speed of sound (JSN-SR04T). The environment (temperature, particulates, ...) is
set by the test; faults are scripted with attributes named after what goes wrong.
"""

from fake_buses import ENODEV, I2CDevice, OneWireDevice, RegisterDevice, UARTDevice, crc8_maxim


def _crc8_sensirion(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _word_crc(value):
    hi = (value >> 8) & 0xFF
    lo = value & 0xFF
    return bytes((hi, lo, _crc8_sensirion((hi, lo))))


# ---------------------------------------------------------------------------------------------- BME280

# The calibration example of the Bosch BMP280 datasheet (3.12) for T and P; humidity words as read
# from a real BME280 breakout.
DATASHEET_CAL_T = (27504, 26435, -1000)
DATASHEET_CAL_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
TYPICAL_CAL_H = (75, 362, 0, 313, 50, 30)


def _le16(v):
    v &= 0xFFFF
    return (v & 0xFF, v >> 8)


def _sim_t(adc, t):
    t1, t2, t3 = t
    v1 = (adc / 16384.0 - t1 / 1024.0) * t2
    d = adc / 131072.0 - t1 / 8192.0
    return v1 + d * d * t3


def _sim_p(adc, t_fine, p):
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = p
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * p6 / 32768.0 + v1 * p5 * 2.0
    v2 = v2 / 4.0 + p4 * 65536.0
    v1 = (p3 * v1 * v1 / 524288.0 + p2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * p1
    pa = (1048576.0 - adc - v2 / 4096.0) * 6250.0 / v1
    return pa + (p9 * pa * pa / 2147483648.0 + pa * p8 / 32768.0 + p7) / 16.0


def _sim_h(adc, t_fine, h):
    h1, h2, h3, h4, h5, h6 = h
    v = t_fine - 76800.0
    v = (adc - (h4 * 64.0 + h5 / 16384.0 * v)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v))
    )
    return v * (1.0 - h1 * v / 524288.0)


def _invert(fn, target, lo, hi, increasing):
    """Smallest raw ADC value whose physical value reaches `target` (binary search, monotonic fn)."""
    while lo < hi:
        mid = (lo + hi) // 2
        v = fn(mid)
        if (v < target) if increasing else (v > target):
            lo = mid + 1
        else:
            hi = mid
    return lo


class SimBME280(RegisterDevice):
    """BME280 (chip_id 0x60) or, with chip_id=0x58, a BMP280 (no humidity registers)."""

    def __init__(self, clock, addr=0x76, chip_id=0x60, temp_c=21.0, pressure_hpa=1013.25, humidity=50.0):
        RegisterDevice.__init__(self, addr)
        self.clock = clock
        self.chip_id = chip_id
        self.temp_c = temp_c
        self.pressure_hpa = pressure_hpa
        self.humidity = humidity
        self.stuck_measuring = False  # fault: status bit never clears
        self.measurements = 0
        self._last_key = None
        self._busy_until = None
        cal = bytearray()
        for v in DATASHEET_CAL_T + DATASHEET_CAL_P:
            cal.extend(_le16(v))
        self.regs[0x88 : 0x88 + 24] = cal
        self.regs[0xD0] = chip_id
        self._reset_data()
        if chip_id == 0x60:
            h1, h2, h3, h4, h5, h6 = TYPICAL_CAL_H
            self.regs[0xA1] = h1
            self.regs[0xE1:0xE3] = bytes(_le16(h2))
            self.regs[0xE3] = h3
            self.regs[0xE4] = (h4 >> 4) & 0xFF
            self.regs[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
            self.regs[0xE6] = (h5 >> 4) & 0xFF
            self.regs[0xE7] = h6 & 0xFF

    def _reset_data(self):
        # power-on values of the data registers: 0x80000 / 0x8000 ("skipped")
        self.regs[0xF7:0xFF] = bytes((0x80, 0, 0, 0x80, 0, 0, 0x80, 0))

    def write_reg(self, reg, value):
        if reg == 0xE0 and value == 0xB6:
            self._reset_data()
            self._last_key = None
            return
        if reg in (0xF2, 0xF4, 0xF5):
            self.regs[reg] = value
            if reg == 0xF4 and value & 0x03 in (1, 2):
                self._measure()

    def read_reg(self, reg):
        if reg == 0xF3:
            busy = self.stuck_measuring or (
                self._busy_until is not None and self.clock.now_ms() < self._busy_until
            )
            return 0x08 if busy else 0x00
        if self.chip_id != 0x60 and reg in (0xFD, 0xFE):
            return 0x80 if reg == 0xFD else 0x00  # a BMP280 has no humidity: reads as "skipped"
        return self.regs[reg]

    def _measure(self):
        self.measurements += 1
        self._busy_until = self.clock.now_ms() + 9  # t_measure,max at x1/x1/x1 is 9.3 ms
        key = (self.temp_c, self.pressure_hpa, self.humidity, self.regs[0xF2] & 0x07)
        if key == self._last_key:
            return  # same environment: same raw values (saves the inversion, and heap in benchmarks)
        self._last_key = key
        t = DATASHEET_CAL_T
        target_fine = self.temp_c * 5120.0
        adc_t = _invert(lambda a: _sim_t(a, t), target_fine, 0, 0xFFFFF, True)
        t_fine = _sim_t(adc_t, t)
        adc_p = _invert(
            lambda a: _sim_p(a, t_fine, DATASHEET_CAL_P), self.pressure_hpa * 100.0, 0, 0xFFFFF, False
        )
        r = self.regs
        r[0xF7] = (adc_p >> 12) & 0xFF
        r[0xF8] = (adc_p >> 4) & 0xFF
        r[0xF9] = (adc_p & 0x0F) << 4
        r[0xFA] = (adc_t >> 12) & 0xFF
        r[0xFB] = (adc_t >> 4) & 0xFF
        r[0xFC] = (adc_t & 0x0F) << 4
        if self.chip_id == 0x60 and self.regs[0xF2] & 0x07:
            adc_h = _invert(lambda a: _sim_h(a, t_fine, TYPICAL_CAL_H), self.humidity, 0, 0xFFFF, True)
            r[0xFD] = adc_h >> 8
            r[0xFE] = adc_h & 0xFF
        else:
            r[0xFD] = 0x80
            r[0xFE] = 0x00


# -------------------------------------------------------------------------------------- AXP192 / AXP2101


class SimPMU(RegisterDevice):
    """The T-Beam's PMU as a register file at 0x34 with its power-on defaults: the LoRa rail off.
    `lora_on()` says whether the radio has its supply (and at what voltage)."""

    def __init__(self, chip="axp192"):
        RegisterDevice.__init__(self, 0x34)
        self.chip = chip
        if chip == "axp192":
            self.regs[0x03] = 0x03
            self.regs[0x12] = 0x01 | 0x02 | 0x10  # DC-DC1/2/3 on (the ESP32), LDO2/LDO3 off
            self.regs[0x28] = 0x00
        else:
            self.regs[0x03] = 0x4A
            self.regs[0x90] = 0x00
            self.regs[0x93] = 0x00

    def lora_on(self):
        """(on, millivolts) of the radio's rail."""
        if self.chip == "axp192":
            return bool(self.regs[0x12] & 0x04), 1800 + 100 * (self.regs[0x28] >> 4)
        return bool(self.regs[0x90] & 0x02), 500 + 100 * (self.regs[0x93] & 0x1F)


# ------------------------------------------------------------------------------- Sensirion (SHT31, SCD41)


class _CommandDevice(I2CDevice):
    """Sensirion style: 16-bit command words, responses as (msb, lsb, crc) words."""

    def __init__(self, clock, addr):
        I2CDevice.__init__(self, addr)
        self.clock = clock
        self.response = b""
        self.corrupt_crc = 0  # fault: flip a bit of the CRC of this many following responses
        self.commands = []

    def on_write(self, data):
        if len(data) < 2:
            return
        cmd = (data[0] << 8) | data[1]
        self.commands.append(cmd)
        self.command(cmd, data[2:])

    def command(self, cmd, args):
        pass

    def _respond(self, words):
        out = bytearray()
        for w in words:
            out.extend(_word_crc(w))
        if self.corrupt_crc:
            self.corrupt_crc -= 1
            out[2] ^= 0x01
        self.response = bytes(out)

    def on_read(self, n):
        data = self.response[:n]
        self.response = b""
        return data + b"\xff" * (n - len(data))


class SimSeesawSoil(I2CDevice):
    """Adafruit STEMMA soil sensor (seesaw): a write of (0x0F, 0x10) then a 2-byte read gives the touch
    channel's capacitance, big-endian. ``percent`` sets it through the firmware's default calibration
    (300 dry, 1000 wet); ``busy`` answers 0xFFFF (no reading)."""

    DRY, WET = 300, 1000

    def __init__(self, clock, addr=0x36, capacitance=600):
        I2CDevice.__init__(self, addr)
        self.clock = clock
        self.capacitance = capacitance
        self.busy = False
        self._reg = None

    @property
    def percent(self):
        return (self.capacitance - self.DRY) * 100.0 / (self.WET - self.DRY)

    @percent.setter
    def percent(self, pct):
        self.capacitance = round(self.DRY + pct * (self.WET - self.DRY) / 100.0)

    def on_write(self, data):
        self._reg = bytes(data[:2])

    def on_read(self, n):
        if self._reg != b"\x0f\x10":
            return b"\xff" * n
        v = 0xFFFF if self.busy else max(0, min(0xFFFE, self.capacitance))
        return bytes(((v >> 8) & 0xFF, v & 0xFF))[:n] + b"\xff" * (n - 2)


class SimSHT31(_CommandDevice):
    """SHT31-DIS: single-shot high repeatability without clock stretching (0x2400): NACKs reads
    until the 15 ms conversion is over."""

    def __init__(self, clock, addr=0x44, temp_c=21.0, humidity=50.0):
        _CommandDevice.__init__(self, clock, addr)
        self.temp_c = temp_c
        self.humidity = humidity
        self._ready_at = None

    def command(self, cmd, args):
        if cmd in (0x2400, 0x2C06):
            self._ready_at = self.clock.now_ms() + 15
            raw_t = round((self.temp_c + 45.0) * 65535.0 / 175.0)
            raw_h = round(self.humidity * 65535.0 / 100.0)
            self._respond((max(0, min(65535, raw_t)), max(0, min(65535, raw_h))))
        elif cmd == 0x30A2:  # soft reset
            self.response = b""
        elif cmd == 0xF32D:  # read status
            self._respond((0x0000,))
            self._ready_at = None

    def nacks_read(self):
        return self._ready_at is not None and self.clock.now_ms() < self._ready_at


class SimSCD41(_CommandDevice):
    """SCD41 CO2 sensor: periodic (5 s) and single-shot (5 s) measurements, data-ready status,
    read_measurement clears the data; commands other than the allowed ones are ignored while a
    periodic measurement runs (datasheet table 9)."""

    def __init__(self, clock, addr=0x62, co2_ppm=600, temp_c=21.0, humidity=50.0):
        _CommandDevice.__init__(self, clock, addr)
        self.co2_ppm = co2_ppm
        self.temp_c = temp_c
        self.humidity = humidity
        self.periodic = False
        self._next_at = None
        self._has_data = False
        self.first_single_shot_invalid = False  # fault: returns CO2 0 ppm (datasheet: discard)

    def _update(self):
        now = self.clock.now_ms()
        if self._next_at is not None and now >= self._next_at:
            self._has_data = True
            self._next_at = now + 5000 if self.periodic else None

    def command(self, cmd, args):
        self._update()
        if self.periodic and cmd not in (0xEC05, 0xE4B8, 0x3F86):
            return  # ignored during periodic measurement
        if cmd == 0x21B1:  # start_periodic_measurement
            self.periodic = True
            self._next_at = self.clock.now_ms() + 5000
        elif cmd == 0x3F86:  # stop_periodic_measurement
            self.periodic = False
            self._next_at = None
        elif cmd == 0x219D:  # measure_single_shot
            self._next_at = self.clock.now_ms() + 5000
        elif cmd == 0xE4B8:  # get_data_ready_status: low 11 bits non-zero when ready
            self._respond((0x8006 if self._has_data else 0x8000,))
        elif cmd == 0xEC05:  # read_measurement
            if not self._has_data:
                self.response = b""
                return
            self._has_data = False
            co2 = self.co2_ppm
            if self.first_single_shot_invalid:
                self.first_single_shot_invalid = False
                co2 = 0
            raw_t = round((self.temp_c + 45.0) * 65535.0 / 175.0)
            raw_h = round(self.humidity * 65535.0 / 100.0)
            self._respond((int(co2), raw_t, raw_h))

    def on_read(self, n):
        self._update()
        return _CommandDevice.on_read(self, n)

    def nacks_read(self):
        return not self.response


# ----------------------------------------------------------------------------------------------- SDS011


class SimSDS011(UARTDevice):
    """Nova Fitness SDS011 (laser dust sensor control protocol V1.3).

    State that survives a host reboot lives in the sensor: `query_mode` (reporting mode) and
    `sleeping`. In active (continuous) mode it sends a data frame every second while awake
    ("serial data output frequency 1 time/s", datasheet).

    Timing: bytes at 9600 baud 8N1 (protocol V1.3 section 1), 1.04 ms each (UARTDevice). The protocol
    gives no reply latency: a reply starts `reply_delay_ms` (10, an assumption) after the command's last
    byte. While asleep it ignores all but the wake-up command (behaviour recorded by the sds011-esp-raw
    project).
    """

    reply_delay_ms = 10

    def __init__(self, clock, pm25=12.3, pm10=20.5, device_id=0xA160, query_mode=False, sleeping=False):
        UARTDevice.__init__(self)
        self.clock = clock
        self.pm25 = pm25
        self.pm10 = pm10
        self.device_id = device_id
        self.query_mode = query_mode
        self.sleeping = sleeping
        self.corrupt_checksum = 0  # fault: this many following data frames carry a wrong checksum
        self.fan_on_ms = 0  # total fan time (wear)
        self._rx = bytearray()
        self._next_frame = None
        self._woke_at = None if sleeping else clock.now_ms()

    def _frame(self, cmd, d):
        f = bytearray(10)
        f[0] = 0xAA
        f[1] = cmd
        f[2:8] = d
        f[8] = sum(f[2:8]) & 0xFF
        f[9] = 0xAB
        return f

    def _data_frame(self):
        a = round(self.pm25 * 10)
        b = round(self.pm10 * 10)
        f = self._frame(
            0xC0, bytes((a & 0xFF, a >> 8, b & 0xFF, b >> 8, self.device_id >> 8, self.device_id & 0xFF))
        )
        if self.corrupt_checksum:
            self.corrupt_checksum -= 1
            f[8] ^= 0x5A
        return f

    def tick(self, now_ms):
        if self.sleeping or self.query_mode:
            self._next_frame = None
            return
        if self._next_frame is None:
            self._next_frame = now_ms + 1000
        while now_ms >= self._next_frame:
            self.send(self._data_frame(), self._next_frame)
            self._next_frame += 1000

    def on_rx(self, data):
        self._rx.extend(data)
        while len(self._rx) >= 19:
            i = self._rx.find(b"\xaa\xb4")
            if i < 0:
                self._rx = self._rx[-1:]
                return
            if len(self._rx) - i < 19:
                self._rx = self._rx[i:]
                return
            f = bytes(self._rx[i : i + 19])
            self._rx = self._rx[i + 19 :]
            if f[18] != 0xAB or (sum(f[2:17]) & 0xFF) != f[17]:
                continue  # the sensor ignores frames with a bad checksum
            self._command(f)

    def _reply(self, cmd, a, b, c=0):
        data = self._frame(0xC5, bytes((cmd, a, b, c, self.device_id >> 8, self.device_id & 0xFF)))
        self.send(data, self.clock.now_ms() + self.reply_delay_ms)

    def _command(self, f):
        cmd, op, val = f[2], f[3], f[4]
        now = self.clock.now_ms()
        if self.sleeping and not (cmd == 6 and op == 1 and val == 1):
            return  # asleep: only the work command is heard
        if cmd == 2:  # data reporting mode
            if op == 1:
                self.query_mode = val == 1
            self._reply(2, op, 1 if self.query_mode else 0)
        elif cmd == 4:  # query data
            self.send(self._data_frame(), now + self.reply_delay_ms)
        elif cmd == 6:  # sleep / work
            if op == 1:
                if val == 0 and not self.sleeping:
                    self.sleeping = True
                    if self._woke_at is not None:
                        self.fan_on_ms += now - self._woke_at
                    self._woke_at = None
                elif val == 1 and self.sleeping:
                    self.sleeping = False
                    self._woke_at = now
            self._reply(6, op, 0 if self.sleeping else 1)
        elif cmd == 7:  # firmware version
            self._reply(7, 18, 11, 16)


# ---------------------------------------------------------------------------------------------- DS18B20


class SimDS18B20(OneWireDevice):
    """DS18B20: scratchpad with the 85.0 C power-on value until a conversion completes (750 ms at
    12 bits), CRC-protected ROM and scratchpad.

    Faults: `loses_power = True` (resets during every conversion, as with a weak parasite supply:
    the scratchpad keeps 85.0 C), `corrupt_crc` (flip a bit in the next scratchpad reads).
    `conversion_ms` is 750 (the datasheet's maximum at 12 bits); slow clones take longer.
    """

    def __init__(self, clock, temp_c=18.5, serial=b"\x01\x02\x03\x04\x05\x06"):
        rom = bytearray(b"\x28" + serial)
        rom.append(crc8_maxim(rom))
        OneWireDevice.__init__(self, rom)
        self.clock = clock
        self.temp_c = temp_c
        self.loses_power = False
        self.corrupt_crc = 0
        self.stuck_converting = False  # fault: the busy bit never clears (a hung conversion)
        self.conversion_ms = 750
        self.conversions = 0
        self.scratch = bytearray((0x50, 0x05, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10, 0))
        self._set_crc()
        self._done_at = None
        self._out = b""
        self._pos = 0

    def _set_crc(self):
        self.scratch[8] = crc8_maxim(self.scratch[:8])

    def _finish(self):
        if self._done_at is not None and self.clock.now_ms() >= self._done_at:
            self._done_at = None
            if self.loses_power:
                self.scratch[0:2] = b"\x50\x05"  # power-on reset: 85.0 C again
            else:
                raw = round(self.temp_c * 16) & 0xFFFF
                self.scratch[0] = raw & 0xFF
                self.scratch[1] = raw >> 8
            self._set_crc()

    def on_command(self, cmd):
        self._finish()
        if cmd == 0x44:  # convert T
            self.conversions += 1
            self._done_at = self.clock.now_ms() + self.conversion_ms
        elif cmd == 0xBE:  # read scratchpad
            out = bytearray(self.scratch)
            if self.corrupt_crc:
                self.corrupt_crc -= 1
                out[0] ^= 0x04
            self._out = bytes(out)
            self._pos = 0

    def read_byte(self):
        if self._pos < len(self._out):
            self._pos += 1
            return self._out[self._pos - 1]
        return 0xFF

    def read_bit(self):
        if self.stuck_converting:
            return 0
        self._finish()
        return 0 if self._done_at is not None else 1  # 0 while converting (external power)


# --------------------------------------------------------------------------------------------- JSN-SR04T


def speed_of_sound_m_s(temp_c):
    """Speed of sound in dry air (the physics the simulator follows; the driver has its own)."""
    return 331.3 * (1.0 + temp_c / 273.15) ** 0.5


class SimJSNSR04T:
    """JSN-SR04T: a trigger pulse on `trig` starts a ping; `time_pulse_us(echo, 1, timeout)` returns
    the echo width for the true distance at the true air temperature.

    Targets closer than `blind_mm` produce an echo as if at the blind-zone edge (the transducer is
    still ringing), as the real module does. Faults: `no_echo` (nothing reflects / unplugged: the
    echo pulse never comes, -2), `outliers` (a list of distances in mm returned for the next pings,
    spurious reflections).
    """

    def __init__(self, clock, distance_mm=1500, air_temp_c=20.0, blind_mm=200):
        from fake_buses import FakePin

        self.clock = clock
        self.distance_mm = distance_mm
        self.air_temp_c = air_temp_c
        self.blind_mm = blind_mm
        self.no_echo = False
        self.outliers = []
        self.pings = 0
        self._armed = False
        self.trig = FakePin(clock, 0, self._on_trig)
        self.echo = FakePin(clock, 0)

    def _on_trig(self, v):
        if v == 0:
            self._armed = True  # falling edge of the trigger pulse starts the burst

    def time_pulse_us(self, pin, level, timeout_us=1000000):
        if pin is not self.echo or level != 1 or not self._armed:
            self.clock.sleep_ms(timeout_us // 1000)
            return -2
        self._armed = False
        self.pings += 1
        if self.no_echo:
            self.clock.sleep_ms(timeout_us // 1000)
            return -2
        d = self.outliers.pop(0) if self.outliers else self.distance_mm
        d = max(d, self.blind_mm)
        width = int(2.0 * d / 1000.0 / speed_of_sound_m_s(self.air_temp_c) * 1e6)
        if width > timeout_us:
            self.clock.sleep_ms(timeout_us // 1000)
            return -1
        self.clock.sleep_ms(width // 1000 + 1)
        return width


__all__ = ["ENODEV", "SimBME280", "SimDS18B20", "SimJSNSR04T", "SimPMU", "SimSCD41", "SimSDS011", "SimSHT31"]
