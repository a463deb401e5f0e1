# A fake `machine` module for the virtual board: the same classes and methods as MicroPython's
# ESP32 port, backed by simulated parts staged in scenario.json (see tools/vboard/README.md).
# Wiring faults are staged by where the simulated parts are connected, so that the code under test
# talks to them exactly as it would to real ones.
import time

import _vboard_state as _vb

_PINS = {}
_LIVE_SPI = []
_I2C_PARTS = {}
_EDGES = {}  # pin -> (level, time in us it was driven to that level, first drive): rails and resets


def _driven(pin):
    """(level, since_us, first) of a pin the board drives, or None if it never drove it; `first` says
    the pin was floating before (a reset line pulled up inside the chip was never pulled low)."""
    return _EDGES.get(pin)


def unique_id():
    return bytes.fromhex(_vb.scenario().get("unique_id", "a4cf12345678"))


def freq(hz=None):
    return 240000000


def reset():
    raise SystemExit("machine.reset")


def soft_reset():
    raise SystemExit("machine.soft_reset")


def reset_cause():
    return 1


def idle():
    pass


def lightsleep(ms=0):
    time.sleep_ms(ms)


def deepsleep(ms=0):
    raise SystemExit("machine.deepsleep")


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self._value = 0 if value is None else value
        _PINS[id] = self
        if value is not None:
            self._edge()

    def _edge(self):
        old = _EDGES.get(self.id)
        if old is None or old[0] != self._value:
            _EDGES[self.id] = (self._value, _vb.now_us(), old is None)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self._value = value
            self._edge()

    def value(self, v=None):
        if v is None:
            ext = _external_level(self.id)
            return self._value if ext is None else ext
        self._value = 1 if v else 0
        self._edge()
        _trig_edge(self.id, self._value)
        if self._value:
            # NSS going high ends an SPI transaction.
            for spi in _LIVE_SPI:
                if spi._active is not None and spi._active.nss == self.id:
                    spi._active = None
                    spi._sent = bytearray()
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=0, **kw):
        return None


def _external_level(pin):
    """The level a simulated part drives onto an input pin: SX126x BUSY is high while the chip is in
    reset or starting up, low when it is ready (and low when it has no power: nothing drives it)."""
    for r in _vb.scenario().get("spi", []):
        if r.get("busy") == pin:
            if not r.get("chip"):
                return 1
            radio = _Radio(r)
            return 1 if radio.powered() and not radio.ready() else 0
    return None


def _pin_level(pin):
    p = _PINS.get(pin)
    return 1 if p is None else p._value


# ---------------------------------------------------------------- I2C
class _Chip:
    """Registers of a simulated I2C part; unknown registers read as zero."""

    def __init__(self, spec):
        self.addr = spec["addr"]
        self.kind = spec.get("chip", "generic")
        self.regs = bytearray(256)
        ids = {"bme280": 0x60, "bmp280": 0x58}
        if self.kind in ids:
            self.regs[0xD0] = ids[self.kind]
        # X-Powers PMUs: IC type in register 0x03 (AXP192 datasheet 9.2; AXP2101 datasheet reg 03H)
        pmu_ids = {"axp192": 0x03, "axp2101": 0x4A}
        if self.kind in pmu_ids:
            self.regs[0x03] = pmu_ids[self.kind]
        for k, v in spec.get("regs", {}).items():
            self.regs[int(k)] = v
        self.changed_at = {}  # register -> time of its last write (a PMU rail switched on)
        # {"pin", "active"}: the part sits on a switched rail (Heltec Vext) and needs `startup_ms` after
        # the rail comes up before it answers (BME280 datasheet rev 1.6, table 1: t_startup 2 ms).
        self.rail = spec.get("rail")
        self.startup_us = int(spec.get("startup_ms", 2) * 1000)

    def powered(self):
        if not self.rail:
            return True
        d = _driven(self.rail["pin"])
        if d is None or d[0] != self.rail.get("active", 0):
            return False
        return _vb.now_us() - d[1] >= self.startup_us

    def read(self, reg, n):
        return bytes(self.regs[(reg + i) & 0xFF] for i in range(n))

    def write(self, reg, data):
        now = _vb.now_us()
        for i, b in enumerate(data):
            self.regs[(reg + i) & 0xFF] = b
            self.changed_at[(reg + i) & 0xFF] = now


def _crc8_sensirion(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class _SCD41(_Chip):
    """Sensirion SCD41 CO2 sensor (SCD4x datasheet version 1.4): 16-bit commands, answers as 16-bit
    words each followed by a CRC-8.

    Timing, from the datasheet's command table and power-up section:
    - after power-up it needs 1000 ms before it answers (`startup_ms` on a switched rail);
    - stop_periodic_measurement (0x3F86): 500 ms before it answers again;
    - measure_single_shot (0x219D): 5000 ms; periodic measurement (0x21B1): a new sample every 5000 ms;
    - get_serial_number (0x3682), get_data_ready_status (0xE4B8), read_measurement (0xEC05): 1 ms.
    While a command runs it does not acknowledge its address (reads and writes fail with ENODEV, as the
    ESP32 port reports a NACK). During periodic measurement it ignores every command but read_measurement,
    get_data_ready_status and stop_periodic_measurement. Periodic measurement keeps running while the
    sensor has power, so its state lives in /_vboard/state.json across the board's soft resets.
    """

    commands = True

    def __init__(self, spec):
        _Chip.__init__(self, spec)
        self.spec = spec
        self.startup_us = int(spec.get("startup_ms", 1000) * 1000)
        st = _vb.state().setdefault("scd41", {})
        st.setdefault("periodic", bool(spec.get("periodic", False)))
        self.st = st
        self.busy_until = 0
        self.sample_at = _vb.now_us() + 5000000 if st["periodic"] else None
        self.has_data = False
        self.response = b""

    def powered(self):
        return _Chip.powered(self) and _vb.now_us() >= self.busy_until

    def _update(self, now):
        if self.sample_at is not None and now >= self.sample_at:
            self.has_data = True
            self.sample_at = now + 5000000 if self.st["periodic"] else None

    def _words(self, *words):
        out = bytearray()
        for w in words:
            pair = bytes((w >> 8 & 0xFF, w & 0xFF))
            out += pair + bytes((_crc8_sensirion(pair),))
        self.response = bytes(out)

    def on_write(self, data):
        now = _vb.now_us()
        self._update(now)
        if len(data) < 2:
            return
        cmd = data[0] << 8 | data[1]
        self.response = b""
        if self.st["periodic"] and cmd not in (0xEC05, 0xE4B8, 0x3F86):
            return  # ignored during periodic measurement
        busy_ms = 1
        if cmd == 0x21B1:  # start_periodic_measurement
            self.st["periodic"] = True
            self.sample_at = now + 5000000
            _vb.save_state()
        elif cmd == 0x3F86:  # stop_periodic_measurement
            if self.st["periodic"]:
                self.st["periodic"] = False
                _vb.save_state()
            self.sample_at = None
            busy_ms = 500
        elif cmd == 0x219D:  # measure_single_shot
            self.sample_at = now + 5000000
            busy_ms = 5000
        elif cmd == 0x3682:  # get_serial_number
            sn = self.spec.get("serial", "0x8a1f3b7c2d19")
            sn = int(sn, 0) if isinstance(sn, str) else int(sn)
            self._words(sn >> 32 & 0xFFFF, sn >> 16 & 0xFFFF, sn & 0xFFFF)
        elif cmd == 0xE4B8:  # get_data_ready_status: low 11 bits non-zero when a sample is waiting
            self._words(0x8006 if self.has_data else 0x8000)
        elif cmd == 0xEC05 and self.has_data:  # read_measurement (clears the sample)
            self.has_data = False
            raw_t = round((self.spec.get("temp_c", 21.0) + 45.0) * 65535.0 / 175.0)
            raw_h = round(self.spec.get("humidity", 50.0) * 65535.0 / 100.0)
            self._words(int(self.spec.get("co2_ppm", 600)), raw_t, raw_h)
        self.busy_until = now + busy_ms * 1000

    def on_read(self, n):
        if not self.response:
            raise OSError(19)  # nothing to send: it does not acknowledge the read
        data = self.response[:n]
        self.response = b""
        return data + b"\xff" * (n - len(data))


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self.scl = _vb.pin_id(scl)
        self.sda = _vb.pin_id(sda)
        self.freq = freq
        self._chips = {}
        for bus in _vb.scenario().get("i2c", []):
            if bus.get("sda") == self.sda and bus.get("scl") == self.scl:
                for spec in bus.get("devices", []):
                    # A part keeps its registers however many I2C objects talk to it.
                    key = (self.sda, self.scl, spec["addr"])
                    if key not in _I2C_PARTS:
                        _I2C_PARTS[key] = _SCD41(spec) if spec.get("chip") == "scd41" else _Chip(spec)
                    self._chips[spec["addr"]] = _I2C_PARTS[key]
        self._reg = {}

    def _chip(self, addr):
        c = self._chips.get(addr)
        if c is None or not c.powered():
            raise OSError(19)  # ENODEV: no ACK from that address, as the ESP32 port reports it
        return c

    def scan(self):
        return sorted(a for a, c in self._chips.items() if c.powered())

    def readfrom_mem(self, addr, reg, n, *, addrsize=8):
        return self._chip(addr).read(reg, n)

    def readfrom_mem_into(self, addr, reg, buf, *, addrsize=8):
        buf[:] = self._chip(addr).read(reg, len(buf))

    def writeto_mem(self, addr, reg, data, *, addrsize=8):
        self._chip(addr).write(reg, data)

    def writeto(self, addr, data, stop=True):
        c = self._chip(addr)
        if getattr(c, "commands", False):
            c.on_write(bytes(data))
            return len(data)
        if len(data):
            self._reg[addr] = data[0]
            if len(data) > 1:
                c.write(data[0], data[1:])
        return len(data)

    def readfrom(self, addr, n, stop=True):
        c = self._chip(addr)
        if getattr(c, "commands", False):
            return c.on_read(n)
        return c.read(self._reg.get(addr, 0), n)

    def readfrom_into(self, addr, buf, stop=True):
        buf[:] = self.readfrom(addr, len(buf))


SoftI2C = I2C


# ---------------------------------------------------------------- UART lines and the SDS011
# Bytes take time on the wire: 8N1 is 10 bits a byte, so at 9600 baud a byte takes 1042 us, a 19-byte
# SDS011 command 19.8 ms and a 10-byte reply 10.4 ms. Every byte gets the time its stop bit arrives and
# can be read only from then on, so replies arrive in pieces, back-to-back commands are answered one
# after the other, and a read gives up when its timeout passes, as on a real UART.


def _byte_us(baud):
    return 10000000 // baud


def _sds_sum(data):
    return sum(data) & 0xFF


class _SDS011:
    """Nova Fitness SDS011, after the Laser Dust Sensor Control Protocol V1.3 (2015-07-20) and the
    SDS011 datasheet V1.3.

    Timing, and where it comes from:
    - 9600 baud 8N1 (protocol V1.3 section 1): see _byte_us.
    - Active reporting: one data frame a second while working ("serial data output frequency 1 time/s",
      datasheet); `period_ms` (default 1000) changes it. The first frame comes one period after the
      sensor starts working or is switched to active mode.
    - Reply latency: the protocol gives none. A reply starts `reply_delay_ms` (default 10, an assumption)
      after the last byte of the command, then takes its own 10.4 ms on the wire; the sensor's TX line
      sends one frame at a time, so replies and data frames never interleave.
    - Sleep: while asleep the sensor ignores every command but "set work" (observed behaviour, recorded
      by the sds011-esp-raw project; the protocol itself says any command wakes it).
    - The reporting mode and the working period survive power cycles (protocol: "still effective after
      power off"), the sleep state does not; all three are kept in /_vboard/state.json, which survives
      the board's soft resets. The working period is stored and reported, but its duty cycle (30 s of
      work every n minutes) is not simulated: the sensor keeps reporting every `period_ms`.
    """

    def __init__(self, spec):
        self.spec = spec
        st = _vb.state().setdefault("sds011", {})
        st.setdefault("mode", spec.get("mode", "active"))
        st.setdefault("working", not spec.get("asleep", False))
        st.setdefault("period", int(spec.get("working_period", 0)))
        self.st = st
        self.dev_id = bytes((0xA1, 0x60))
        self.byte_us = _byte_us(spec.get("baud", 9600))
        self.reply_us = int(spec.get("reply_delay_ms", 10) * 1000)
        self.period_us = int(spec.get("period_ms", 1000) * 1000)
        self.out = []  # (arrival time in us, byte) on the sensor's TX wire
        self.tx_free = 0  # when the sensor's TX line is free again
        self.heard = bytearray()  # command bytes on the sensor's RX wire, not yet a frame
        self.commands = []  # (time the last byte arrived, 19-byte frame), in time order
        self.next_report = _vb.now_us() + self.period_us
        self.commands_seen = 0

    def _save(self):
        _vb.save_state()

    def data_frame(self):
        pm25 = int(self.spec.get("pm25", 12.3) * 10)
        pm10 = int(self.spec.get("pm10", 20.1) * 10)
        body = bytes((pm25 & 0xFF, pm25 >> 8, pm10 & 0xFF, pm10 >> 8)) + self.dev_id
        return b"\xaa\xc0" + body + bytes((_sds_sum(body),)) + b"\xab"

    def reply(self, cmd, d1, d2):
        body = bytes((cmd, d1, d2, 0)) + self.dev_id
        return b"\xaa\xc5" + body + bytes((_sds_sum(body),)) + b"\xab"

    def _emit(self, data, start):
        t = start if start > self.tx_free else self.tx_free
        for b in data:
            t += self.byte_us
            self.out.append((t, b))
        self.tx_free = t

    def hear(self, data, first_end, byte_us):
        """Bytes on the sensor's RX wire; byte k has fully arrived at first_end + k * byte_us."""
        t = first_end
        for b in data:
            self.heard.append(b)
            if len(self.heard) > 19:
                self.heard = self.heard[-19:]
            if len(self.heard) == 19 and self.heard[0] == 0xAA and self.heard[18] == 0xAB:
                self.commands.append((t, bytes(self.heard)))
                self.heard = bytearray()
            t += byte_us

    def _reporting(self):
        return self.st["mode"] == "active" and self.st["working"]

    def advance(self, now):
        """Run the sensor up to time `now`: commands and periodic reports, in the order they happen."""
        while True:
            t_cmd = self.commands[0][0] if self.commands else None
            t_rep = self.next_report if self._reporting() else None
            if t_cmd is not None and t_cmd <= now and (t_rep is None or t_cmd <= t_rep):
                t, frame = self.commands.pop(0)
                self._command(frame, t)
            elif t_rep is not None and t_rep <= now:
                self._emit(self.data_frame(), t_rep)
                self.next_report = t_rep + self.period_us
            else:
                return

    def take(self, now, since):
        """The bytes that have arrived on the sensor's TX wire by `now`; those before `since` are lost
        (nobody was listening then)."""
        self.advance(now)
        got = bytearray()
        i = 0
        while i < len(self.out) and self.out[i][0] <= now:
            if self.out[i][0] >= since:
                got.append(self.out[i][1])
            i += 1
        if i:
            self.out = self.out[i:]
        return bytes(got)

    def _command(self, frame, t):
        """Handle one 19-byte command frame that fully arrived at time t."""
        if frame[1] != 0xB4 or _sds_sum(frame[2:17]) != frame[17]:
            return  # the sensor ignores frames with a bad checksum
        self.commands_seen += 1
        cmd, d1, d2 = frame[2], frame[3], frame[4]
        if not self.st["working"] and not (cmd == 6 and d1 == 1 and d2 == 1):
            return  # asleep: only "set work" is heard
        out = b""
        if cmd == 2:
            if d1 == 1:
                mode = "query" if d2 else "active"
                if mode != self.st["mode"]:
                    self.st["mode"] = mode
                    self.next_report = t + self.period_us
                    self._save()
            out = self.reply(2, d1, 1 if self.st["mode"] == "query" else 0)
        elif cmd == 4:
            out = self.data_frame()
        elif cmd == 6:
            if d1 == 1 and bool(d2) != self.st["working"]:
                self.st["working"] = bool(d2)
                self.next_report = t + self.period_us
                self._save()
            out = self.reply(6, d1, 1 if self.st["working"] else 0)
        elif cmd == 8:
            # working period: 0 continuous, 1-30 minutes; kept across power-off (protocol V1.3)
            if d1 == 1 and d2 <= 30 and d2 != self.st["period"]:
                self.st["period"] = d2
                self._save()
            out = self.reply(8, d1, self.st["period"])
        elif cmd == 7:
            body = b"\x07\x12\x0b\x0f" + self.dev_id
            out = b"\xaa\xc5" + body + bytes((_sds_sum(body),)) + b"\xab"
        else:
            out = self.reply(cmd, d1, d2)
        self._emit(out, t + self.reply_us)


_SENSORS = {}


def _uart_part(spec):
    key = spec.get("device", "sds011")
    if key not in _SENSORS:
        _SENSORS[key] = _SDS011(spec)
    return _SENSORS[key]


class UART:
    """machine.UART of the ESP32 port: write() queues the bytes and returns at once (they leave one
    every 10 bits); read(n) waits up to `timeout` ms for n bytes and returns what has arrived, or None."""

    def __init__(
        self,
        id,
        baudrate=115200,
        bits=8,
        parity=None,
        stop=1,
        *,
        tx=None,
        rx=None,
        timeout=0,
        timeout_char=0,
        rxbuf=256,
        **kw,
    ):
        self.id = id
        self._rxbuf = bytearray()
        self.init(baudrate, bits, parity, stop, tx=tx, rx=rx, timeout=timeout, rxbuf=rxbuf)

    def init(
        self,
        baudrate=115200,
        bits=8,
        parity=None,
        stop=1,
        *,
        tx=None,
        rx=None,
        timeout=0,
        timeout_char=0,
        rxbuf=256,
        **kw,
    ):
        self.baudrate = baudrate
        self.tx = _vb.pin_id(tx)
        self.rx = _vb.pin_id(rx)
        self.timeout = timeout
        self.rxbuf_size = rxbuf
        self._rxbuf = bytearray()
        self._byte_us = _byte_us(baudrate)
        self._tx_free = 0
        self._since = _vb.now_us()  # what arrived before (re)initialising is lost
        self._hears = []  # parts whose TX wire is on our RX pin
        self._talks = []  # parts whose RX wire is on our TX pin
        for spec in _vb.scenario().get("uart", []):
            if spec.get("baud", 9600) != baudrate:
                continue
            part = _uart_part(spec)
            if spec.get("sensor_tx_to") == self.rx and self.rx is not None:
                self._hears.append(part)
            if spec.get("sensor_rx_to") == self.tx and self.tx is not None:
                self._talks.append(part)

    def deinit(self):
        self._rxbuf = bytearray()
        self._hears = []
        self._talks = []

    def _pump(self):
        now = _vb.now_us()
        for part in self._hears:
            self._rxbuf += part.take(now, self._since)
        for part in _SENSORS.values():
            if part not in self._hears:
                part.advance(now)  # it runs whether or not anyone listens
        if len(self._rxbuf) > self.rxbuf_size:
            # the receive buffer overflowed: the newest bytes are dropped (ESP-IDF UART driver)
            self._rxbuf = self._rxbuf[: self.rxbuf_size]

    def any(self):
        self._pump()
        return len(self._rxbuf)

    def read(self, n=-1):
        deadline = time.ticks_add(time.ticks_ms(), self.timeout)
        while True:
            self._pump()
            if self._rxbuf and (n < 0 or len(self._rxbuf) >= n):
                break
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                break
            time.sleep_ms(1)
        if not self._rxbuf:
            return None
        if n < 0:
            n = len(self._rxbuf)
        data = bytes(self._rxbuf[:n])
        self._rxbuf = self._rxbuf[n:]
        return data

    def readinto(self, buf, nbytes=-1):
        data = self.read(len(buf) if nbytes < 0 else nbytes)
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)

    def write(self, data):
        now = _vb.now_us()
        start = now if now > self._tx_free else self._tx_free
        self._tx_free = start + len(data) * self._byte_us
        for part in self._talks:
            part.hear(bytes(data), start + self._byte_us, self._byte_us)
        return len(data)

    def txdone(self):
        return _vb.now_us() >= self._tx_free

    def flush(self):
        while _vb.now_us() < self._tx_free:
            time.sleep_ms(1)


# ---------------------------------------------------------------- SPI and the LoRa radio
class _Radio:
    """Register reads of a Semtech SX1262 (DS_SX1261-2 rev 2.1) or SX1276 (DS rev 7), with their start-up
    times: after NRESET is released or power comes up, an SX126x keeps BUSY high for 3.5 ms while it
    calibrates (DS_SX1261-2 13.1.12, all blocks); an SX127x must be left alone for 5 ms after a manual
    reset and 10 ms after power-on (SX1276 DS 7.2.1, 7.2.2). Until then it does not answer on SPI."""

    def __init__(self, spec):
        self.chip = spec.get("chip")
        self.nss = spec.get("nss")
        self.rst = spec.get("rst")
        self.power = spec.get("power")  # {"sda", "scl", "addr", "reg", "mask"}: a PMU rail feeds the radio

    def _rail(self):
        p = self.power
        if not p:
            return None
        return _I2C_PARTS.get((p["sda"], p["scl"], p["addr"]))

    def powered(self):
        p = self.power
        if not p:
            return True
        part = self._rail()
        return part is not None and bool(part.regs[p["reg"]] & p["mask"])

    def ready(self):
        sx127 = self.chip in ("sx1276", "sx1278")
        now = _vb.now_us()
        part = self._rail()
        if part is not None:
            on_at = part.changed_at.get(self.power["reg"])
            if on_at is not None and now - on_at < (10000 if sx127 else 3500):
                return False
        d = _driven(self.rst) if self.rst is not None else None
        if d is not None:
            if d[0] == 0:
                return False  # held in reset
            if not d[2] and now - d[1] < (5000 if sx127 else 3500):
                return False
        return True

    def byte_at(self, sent, i):
        """The byte the chip shifts out at position i of a transaction whose bytes so far are `sent`."""
        if not self.powered() or not self.ready():
            return 0
        if self.chip == "sx1276" or self.chip == "sx1278":
            regs = {0x42: 0x12, 0x01: 0x09, 0x06: 0x6C, 0x07: 0x80, 0x08: 0x00}
            if i == 0 or sent[0] & 0x80:
                return 0
            return regs.get((sent[0] & 0x7F) + i - 1, 0)
        if self.chip in ("sx1262", "sx1261"):
            status = 0x22  # STDBY_RC, no command pending
            if i == 0:
                return status
            cmd = sent[0]
            if cmd == 0x1D and i >= 4:  # ReadRegister: cmd, addr[15:8], addr[7:0], status, data...
                addr = (sent[1] << 8 | sent[2]) + (i - 4)
                regs = {0x0740: 0x14, 0x0741: 0x24, 0x08AC: 0x94, 0x0889: 0x04}
                return regs.get(addr, 0)
            if cmd == 0xC0:  # GetStatus
                return status
            return status
        return 0  # nothing on the bus: MISO reads low


class SPI:
    MSB = 0
    LSB = 1

    def __init__(
        self,
        id=1,
        baudrate=1000000,
        *,
        polarity=0,
        phase=0,
        bits=8,
        firstbit=0,
        sck=None,
        mosi=None,
        miso=None,
    ):
        self.id = id
        self.sck = _vb.pin_id(sck)
        self._radios = [_Radio(s) for s in _vb.scenario().get("spi", []) if s.get("sck") in (None, self.sck)]
        self._sent = bytearray()
        self._active = None
        _LIVE_SPI.append(self)

    def init(self, *a, **kw):
        pass

    def deinit(self):
        pass

    def _xfer(self, out):
        sel = None
        for r in self._radios:
            if r.nss is not None and _pin_level(r.nss) == 0:
                sel = r
        if sel is not self._active:
            self._active = sel
            self._sent = bytearray()
        res = bytearray(len(out))
        for k, b in enumerate(out):
            i = len(self._sent)
            self._sent.append(b)
            res[k] = sel.byte_at(self._sent, i) if sel else 0
        return res

    def write(self, buf):
        self._xfer(buf)

    def read(self, n, write=0):
        return bytes(self._xfer(bytes([write]) * n))

    def readinto(self, buf, write=0):
        buf[:] = self._xfer(bytes([write]) * len(buf))

    def write_readinto(self, out, into):
        into[:] = self._xfer(out)


SoftSPI = SPI


# ---------------------------------------------------------------- JSN-SR04T ultrasonic ranger
_last_trig = {}


def _trig_edge(pin, level):
    if not level:
        _last_trig[pin] = time.ticks_us()


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    """Length of the next pulse on `pin`: a JSN-SR04T answers a trigger with an echo pulse whose length
    is the round trip of the sound (58 us per cm); -1/-2 on timeout as MicroPython's ports return."""
    pid = _vb.pin_id(pin)
    for u in _vb.scenario().get("ultrasonic", []):
        if u.get("echo") == pid and u.get("trig") in _last_trig:
            dist = u.get("distance_cm")
            if dist is None:
                break
            if time.ticks_diff(time.ticks_us(), _last_trig.pop(u["trig"])) > 100000:
                break  # trigger too long ago: the echo has passed
            us = int(dist * 58)
            return us if us <= timeout_us else -1
    time.sleep_ms(timeout_us // 1000)
    return -2 if pulse_level else -1


# ---------------------------------------------------------------- ADC, WDT, RTC, Timer
class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 3

    def __init__(self, pin, *, atten=None):
        self.pin = _vb.pin_id(pin)

    def atten(self, a):
        pass

    def width(self, w):
        pass

    def read_uv(self):
        return int(_vb.scenario().get("adc", {}).get(str(self.pin), 0))

    def read_u16(self):
        return min(65535, self.read_uv() * 65535 // 3300000)

    def read(self):
        return self.read_u16() >> 4


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


class RTC:
    def __init__(self):
        self._mem = b""

    def memory(self, data=None):
        if data is None:
            return self._mem
        self._mem = bytes(data)
        return None

    def datetime(self, dt=None):
        return (2026, 1, 1, 3, 0, 0, 0, 0)


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        pass

    def init(self, **kw):
        pass

    def deinit(self):
        pass
