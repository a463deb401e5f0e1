# A fake `machine` module for the virtual board: the same classes and methods as MicroPython's
# ESP32 port, backed by simulated parts staged in scenario.json (see tools/vboard/README.md).
# Wiring faults are staged by where the simulated parts are connected, so that the code under test
# talks to them exactly as it would to real ones.
import time

import _vboard_state as _vb

_PINS = {}
_LIVE_SPI = []
_I2C_PARTS = {}


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

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self._value = value

    def value(self, v=None):
        if v is None:
            ext = _external_level(self.id)
            return self._value if ext is None else ext
        self._value = 1 if v else 0
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
    """The level a simulated part drives onto an input pin (SX126x BUSY is low when idle)."""
    for r in _vb.scenario().get("spi", []):
        if r.get("busy") == pin:
            return 0 if r.get("chip") else 1
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

    def read(self, reg, n):
        return bytes(self.regs[(reg + i) & 0xFF] for i in range(n))

    def write(self, reg, data):
        for i, b in enumerate(data):
            self.regs[(reg + i) & 0xFF] = b


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
                        _I2C_PARTS[key] = _Chip(spec)
                    self._chips[spec["addr"]] = _I2C_PARTS[key]
        self._reg = {}

    def _chip(self, addr):
        c = self._chips.get(addr)
        if c is None:
            raise OSError(19)  # ENODEV: no ACK from that address, as the ESP32 port reports it
        return c

    def scan(self):
        return sorted(self._chips)

    def readfrom_mem(self, addr, reg, n, *, addrsize=8):
        return self._chip(addr).read(reg, n)

    def readfrom_mem_into(self, addr, reg, buf, *, addrsize=8):
        buf[:] = self._chip(addr).read(reg, len(buf))

    def writeto_mem(self, addr, reg, data, *, addrsize=8):
        self._chip(addr).write(reg, data)

    def writeto(self, addr, data, stop=True):
        c = self._chip(addr)
        if len(data):
            self._reg[addr] = data[0]
            if len(data) > 1:
                c.write(data[0], data[1:])
        return len(data)

    def readfrom(self, addr, n, stop=True):
        return self._chip(addr).read(self._reg.get(addr, 0), n)

    def readfrom_into(self, addr, buf, stop=True):
        buf[:] = self.readfrom(addr, len(buf))


SoftI2C = I2C


# ---------------------------------------------------------------- UART and the SDS011
def _sds_sum(data):
    return sum(data) & 0xFF


class _SDS011:
    """Nova SDS011 (laser dust sensor, datasheet V1.3 and the control protocol V1.3)."""

    def __init__(self, spec):
        self.spec = spec
        st = _vb.state().setdefault("sds011", {})
        st.setdefault("mode", spec.get("mode", "active"))
        st.setdefault("working", not spec.get("asleep", False))
        self.st = st
        self.dev_id = bytes((0xA1, 0x60))
        self.t0 = time.ticks_ms()
        self.sent = 0

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

    def periodic(self, now):
        """Frames the sensor sent on its own since the last call (active mode, fan running)."""
        if self.st["mode"] != "active" or not self.st["working"]:
            self.t0 = now
            self.sent = 0
            return b""
        period = self.spec.get("period_ms", 1000)
        due = time.ticks_diff(now, self.t0) // period
        frames = b""
        while self.sent < due:
            frames += self.data_frame()
            self.sent += 1
        return frames

    def command(self, frame):
        """Handle one 19-byte command frame; return the reply bytes."""
        if len(frame) != 19 or frame[0] != 0xAA or frame[1] != 0xB4 or frame[18] != 0xAB:
            return b""
        if _sds_sum(frame[2:17]) != frame[17]:
            return b""
        cmd, d1, d2 = frame[2], frame[3], frame[4]
        if not self.st["working"] and cmd != 6:
            return b""  # asleep: only the work command wakes it
        if cmd == 2:
            if d1 == 1:
                self.st["mode"] = "query" if d2 else "active"
                self._save()
            return self.reply(2, d1, 1 if self.st["mode"] == "query" else 0)
        if cmd == 4:
            return self.data_frame()
        if cmd == 6:
            if d1 == 1:
                self.st["working"] = bool(d2)
                self._save()
                self.t0 = time.ticks_ms()
                self.sent = 0
            return self.reply(6, d1, 1 if self.st["working"] else 0)
        if cmd == 7:
            return (
                b"\xaa\xc5\x07\x12\x0b\x0f"
                + self.dev_id
                + bytes((_sds_sum(b"\x07\x12\x0b\x0f" + self.dev_id),))
                + b"\xab"
            )
        return self.reply(cmd, d1, d2)


_SENSORS = {}


def _uart_part(spec):
    key = spec.get("device", "sds011")
    if key not in _SENSORS:
        _SENSORS[key] = _SDS011(spec)
    return _SENSORS[key]


class UART:
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
        rxbuf=256,
        **kw,
    ):
        self.id = id
        self._rxbuf = bytearray()
        self._cmd = bytearray()
        self.init(baudrate, bits, parity, stop, tx=tx, rx=rx, timeout=timeout, rxbuf=rxbuf)

    def init(
        self, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None, timeout=0, rxbuf=256, **kw
    ):
        self.baudrate = baudrate
        self.tx = _vb.pin_id(tx)
        self.rx = _vb.pin_id(rx)
        self.timeout = timeout
        self.rxbuf_size = rxbuf
        self._rxbuf = bytearray()
        self._hears = []  # parts whose TX wire is on our RX pin
        self._talks = []  # parts whose RX wire is on our TX pin
        for spec in _vb.scenario().get("uart", []):
            if spec.get("baud", 9600) != baudrate:
                continue
            part = _uart_part(spec)
            if spec.get("sensor_tx_to") == self.rx and self.rx is not None:
                self._hears.append(part)
                part.periodic(time.ticks_ms())  # what it sent before we listened is lost
                part.t0 = time.ticks_ms()
                part.sent = 0
            if spec.get("sensor_rx_to") == self.tx and self.tx is not None:
                self._talks.append(part)

    def deinit(self):
        self._rxbuf = bytearray()

    def _pump(self):
        now = time.ticks_ms()
        for part in self._hears:
            self._rxbuf += part.periodic(now)
        if len(self._rxbuf) > self.rxbuf_size:
            self._rxbuf = self._rxbuf[-self.rxbuf_size :]

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
            time.sleep_ms(5)
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
        for b in data:
            self._cmd.append(b)
            if len(self._cmd) > 19:
                self._cmd = self._cmd[-19:]
            if len(self._cmd) == 19 and self._cmd[0] == 0xAA and self._cmd[18] == 0xAB:
                for part in self._talks:
                    reply = part.command(bytes(self._cmd))
                    if part in self._hears:
                        self._rxbuf += reply
                self._cmd = bytearray()
        return len(data)

    def flush(self):
        pass


# ---------------------------------------------------------------- SPI and the LoRa radio
class _Radio:
    """Register reads of a Semtech SX1262 (DS_SX1261-2 rev 2.1) or SX1276 (DS rev 7)."""

    def __init__(self, spec):
        self.chip = spec.get("chip")
        self.nss = spec.get("nss")
        self.power = spec.get("power")  # {"sda", "scl", "addr", "reg", "mask"}: a PMU rail feeds the radio

    def powered(self):
        p = self.power
        if not p:
            return True
        part = _I2C_PARTS.get((p["sda"], p["scl"], p["addr"]))
        return part is not None and bool(part.regs[p["reg"]] & p["mask"])

    def byte_at(self, sent, i):
        """The byte the chip shifts out at position i of a transaction whose bytes so far are `sent`."""
        if not self.powered():
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
