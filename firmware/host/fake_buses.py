"""Host stand-ins for the MicroPython bus objects the sensor drivers use (never flashed).

Each fake has the method set of its `machine` counterpart (I2C, UART, Pin, ADC) or of MicroPython's
`onewire.OneWire`, and moves bytes to and from device simulators (see sim_sensors.py) that behave
like the chips do on the wire. Bus-level faults are scripted here: a device that does not answer
(NACK -> OSError ENODEV, as on the ESP32 port), a bus that hangs (the transaction takes the bus
timeout on the clock, then OSError ETIMEDOUT), a UART with nothing on the other end.

The clock passed in is a Clock (firmware/README.md): `now_ms()` and `sleep_ms(ms)` (the fake clock
advances on sleep).
"""

ENODEV = 19
EIO = 5
ETIMEDOUT = 110


class I2CDevice:
    """Base of a simulated I2C target: override `on_write(data)` and `on_read(n)`.

    `present = False` makes it NACK its address. `nack_reads` makes it NACK reads only (a chip busy
    converting, like the SHT31 in "no clock stretching" mode).
    """

    addr = 0

    def __init__(self, addr):
        self.addr = addr
        self.present = True

    def on_write(self, data):
        raise NotImplementedError

    def on_read(self, n):
        raise NotImplementedError

    def nacks_read(self):
        return False


class RegisterDevice(I2CDevice):
    """A register-file device with an auto-incrementing address pointer (BME280 style)."""

    def __init__(self, addr, size=256):
        I2CDevice.__init__(self, addr)
        self.regs = bytearray(size)
        self.ptr = 0

    def on_write(self, data):
        if not data:
            return
        self.ptr = data[0]
        reg = data[0]
        for b in data[1:]:
            self.write_reg(reg, b)
            reg = (reg + 1) & 0xFF

    def write_reg(self, reg, value):
        self.regs[reg] = value

    def read_reg(self, reg):
        return self.regs[reg]

    def on_read(self, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = self.read_reg((self.ptr + i) & 0xFF)
        self.ptr = (self.ptr + n) & 0xFF
        return bytes(out)


class FakeI2C:
    """machine.I2C look-alike. `hang = True` simulates a bus held low (every transfer times out)."""

    def __init__(self, clock, devices=(), timeout_ms=50):
        self.clock = clock
        self.devices = {}
        for d in devices:
            self.devices[d.addr] = d
        self.timeout_ms = timeout_ms
        self.hang = False
        self.transfers = 0

    def add(self, device):
        self.devices[device.addr] = device
        return device

    def _target(self, addr, reading=False):
        self.transfers += 1
        if self.hang:
            self.clock.sleep_ms(self.timeout_ms)
            raise OSError(ETIMEDOUT)
        d = self.devices.get(addr)
        if d is None or not d.present or (reading and d.nacks_read()):
            raise OSError(ENODEV)
        return d

    def scan(self):
        if self.hang:
            self.clock.sleep_ms(self.timeout_ms)
            return []
        return sorted(a for a, d in self.devices.items() if d.present)

    def writeto(self, addr, buf, stop=True):
        self._target(addr).on_write(bytes(buf))
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        return self._target(addr, True).on_read(nbytes)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._target(addr, True).on_read(len(buf))
        buf[:] = data

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._target(addr).on_write(bytes([memaddr]) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        d = self._target(addr)
        d.on_write(bytes([memaddr]))
        return d.on_read(nbytes)

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        buf[:] = self.readfrom_mem(addr, memaddr, len(buf))


class UARTDevice:
    """Base of a simulated UART peer: `on_rx(data)` gets what the host wrote; `tick(now_ms)` may
    queue output with `send(data, at_ms)`; the fake UART pulls the bytes that have arrived.

    Bytes take time on the wire: at 9600 baud 8N1 (10 bits a byte) each takes `byte_ms` (1.04 ms), one
    after the other on the device's TX line, so a reply comes in pieces and a read made too early
    finds only part of it. `send(data)` without a time puts the bytes there at once.
    """

    byte_ms = 10 * 1000 / 9600

    def __init__(self):
        self.out = bytearray()
        self.out_at = []  # arrival time (ms) of each byte in `out`
        self.tx_free_ms = 0  # when the device's TX line is free again

    def on_rx(self, data):
        pass

    def tick(self, now_ms):
        pass

    def send(self, data, at_ms=None):
        if at_ms is None:
            self.out.extend(data)
            self.out_at.extend([0] * len(data))
            return
        t = at_ms if at_ms > self.tx_free_ms else self.tx_free_ms
        for b in data:
            t += self.byte_ms
            self.out.append(b)
            self.out_at.append(t)
        self.tx_free_ms = t

    def arrived(self, now_ms):
        """How many bytes of `out` have fully arrived by now_ms."""
        n = 0
        for t in self.out_at:
            if t > now_ms:
                break
            n += 1
        return n

    def take(self, n):
        data = bytes(self.out[:n])
        self.out = self.out[n:]
        self.out_at = self.out_at[n:]
        return data


class FakeUART:
    """machine.UART look-alike at 9600 baud: read(n) waits up to `timeout_ms` for n bytes that have
    arrived (see UARTDevice) and returns what there is, or None; write() takes the line time (1.04 ms a
    byte) before the device hears the command.

    `device=None` (nothing connected) and `swapped = True` (RX/TX crossed wrongly: the peer never
    hears us and we never hear it) are the classic wiring faults.
    """

    def __init__(self, clock, device=None, timeout_ms=1000):
        self.clock = clock
        self.device = device
        self.timeout_ms = timeout_ms
        self.swapped = False
        self.written = bytearray()

    def _pump(self):
        if self.device is not None and not self.swapped:
            self.device.tick(self.clock.now_ms())

    def any(self):
        self._pump()
        if self.device is None or self.swapped:
            return 0
        return self.device.arrived(self.clock.now_ms())

    def write(self, buf):
        self.written.extend(buf)
        # 10 bits per byte at 9600 baud
        self.clock.sleep_ms(1 + len(buf) * 10 * 1000 // 9600)
        if self.device is not None and not self.swapped:
            self.device.on_rx(bytes(buf))
        return len(buf)

    def read(self, n=None):
        waited = 0
        while True:
            avail = self.any()
            if n is None and avail:
                break
            if n is not None and avail >= n:
                break
            if waited >= self.timeout_ms:
                break
            self.clock.sleep_ms(10)
            waited += 10
        avail = self.any()
        if not avail:
            return None
        return self.device.take(avail if n is None else min(n, avail))

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else nbytes
        data = self.read(n)
        if data is None:
            return None
        buf[: len(data)] = data
        return len(data)


class OneWireDevice:
    """Base of a simulated 1-Wire slave: `rom` (8 bytes), `on_command(cmd)` after ROM selection,
    `read_byte()` for data it sends, `read_bit()` for status polls, `on_data(b)` for bytes after
    the command."""

    def __init__(self, rom):
        self.rom = bytes(rom)
        self.present = True

    def on_reset(self):
        pass

    def on_command(self, cmd):
        pass

    def on_data(self, b):
        pass

    def read_byte(self):
        return 0xFF

    def read_bit(self):
        return 1


def crc8_maxim(data):
    """Dallas/Maxim CRC-8 (1-Wire ROMs and scratchpads), the simulator's own: independent of the firmware's
    firmware/sensors/crc.py, so the driver's check is tested against another implementation."""
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


class FakeOneWire:
    """MicroPython `onewire.OneWire` look-alike with the ROM layer simulated (Match/Skip ROM).

    Faults: `shorted = True` (data line held low: presence pulse seen, every bit reads 0), no
    device present (reset() returns False, reads give 1s from the pull-up).
    """

    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, clock, devices=()):
        self.clock = clock
        self.devices = list(devices)
        self.shorted = False
        self._state = "idle"
        self._sel = []
        self._rom_buf = bytearray()

    def reset(self, required=False):
        self._state = "rom"
        self._sel = []
        self._rom_buf = bytearray()
        for d in self.devices:
            if d.present:
                d.on_reset()
        present = self.shorted or any(d.present for d in self.devices)
        if required and not present:
            raise OSError(ENODEV)
        return present

    def _active(self):
        return [d for d in self._sel if d.present]

    def writebyte(self, b):
        b &= 0xFF
        if self.shorted:
            return
        if self._state == "rom":
            if b == self.MATCH_ROM:
                self._state = "match"
            elif b == self.SKIP_ROM:
                self._sel = [d for d in self.devices if d.present]
                self._state = "cmd"
            else:
                self._state = "idle"  # search is done by scan() below
        elif self._state == "match":
            self._rom_buf.append(b)
            if len(self._rom_buf) == 8:
                self._sel = [d for d in self.devices if d.present and d.rom == bytes(self._rom_buf)]
                self._state = "cmd"
        elif self._state == "cmd":
            for d in self._active():
                d.on_command(b)
            self._state = "data"
        elif self._state == "data":
            for d in self._active():
                d.on_data(b)

    def write(self, buf):
        for b in buf:
            self.writebyte(b)

    def readbyte(self):
        if self.shorted:
            return 0
        v = 0xFF  # pull-up: an idle line reads 1s
        for d in self._active():
            v &= d.read_byte()  # wired-AND
        return v

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.readbyte()

    def readbit(self):
        if self.shorted:
            return 0
        v = 1
        for d in self._active():
            v &= d.read_bit()
        return v

    def writebit(self, value):
        pass

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def scan(self):
        """ROMs found by a search (bit-level search collapsed: with a shorted line it finds an
        all-zero ROM, as the real search algorithm does)."""
        if self.shorted:
            return [bytearray(8)]
        return [bytearray(d.rom) for d in self.devices if d.present]

    @staticmethod
    def crc8(data):
        return crc8_maxim(data)


class FakePin:
    """machine.Pin look-alike: remembers the level and every change (with the clock time)."""

    def __init__(self, clock=None, value=0, on_change=None):
        self.clock = clock
        self._v = value
        self.history = []
        self.on_change = on_change

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v:
            self._v = v
            self.history.append((self.clock.now_ms() if self.clock else 0, v))
            if self.on_change is not None:
                self.on_change(v)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)


class FakeADC:
    """machine.ADC look-alike: read_u16() returns `raw` (a number, or a list consumed in order)."""

    def __init__(self, raw=0):
        self.raw = raw
        self.reads = 0

    def read_u16(self):
        self.reads += 1
        r = self.raw
        if isinstance(r, list):
            return r.pop(0) if len(r) > 1 else r[0]
        return r


class FakeMachine:
    """The bits of the `machine` module the board glue uses, for host tests of apps/board.py.

    Pins are FakePins kept in `pins` by number (a test sees what the code drove). `radio_pins`
    maps pin numbers to a chip simulator's pins (host/fake_sx1262.py) and `spi` is its bus, so the
    real radio driver runs. lightsleep/deepsleep advance the clock; after `max_sleeps` of them
    they raise StopBoard, which ends a test's run of the board's endless loop.
    """

    PWRON_RESET = 1
    HARD_RESET = 2
    WDT_RESET = 3
    DEEPSLEEP_RESET = 4
    SOFT_RESET = 5

    def __init__(self, clock, cause=1, radio_pins=None, spi=None, max_sleeps=None, i2c=None, uart=None):
        self.clock = clock
        self._i2c = i2c
        self._uart = uart
        self.pins = {}
        self.cause = cause
        self.wdts = []
        self.resets = 0
        self.sleeps = 0
        self.max_sleeps = max_sleeps
        self._radio_pins = radio_pins or {}
        self._spi = spi
        self.Pin = _PinFactory(self)

    def reset_cause(self):
        return self.cause

    def reset(self):
        self.resets += 1

    def WDT(self, timeout=5000):
        w = FakeWDT(timeout)
        self.wdts.append(w)
        return w

    def I2C(self, *args, **kwargs):
        return self._i2c if self._i2c is not None else FakeI2C(self.clock)

    def UART(self, *args, **kwargs):
        return self._uart if self._uart is not None else FakeUART(self.clock)

    def ADC(self, pin):
        return FakeADC(int(3700 / 2 / 3300 * 65535))

    def SPI(self, *args, **kwargs):
        if self._spi is None:
            raise OSError(ENODEV)
        return self._spi

    def lightsleep(self, ms):
        self.sleeps += 1
        if self.max_sleeps is not None and self.sleeps > self.max_sleeps:
            raise StopBoard()
        self.clock.sleep_ms(ms)

    deepsleep = lightsleep


class StopBoard(Exception):
    """Raised by FakeMachine's sleep after max_sleeps: ends a test's run of the board loop."""


class _PinFactory:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, machine):
        self.machine = machine

    def __call__(self, n, mode=0, pull=None, value=None):
        m = self.machine
        if n in m._radio_pins:
            p = m._radio_pins[n]
            if value is not None:
                p.value(value)
            return p
        p = FakePin(m.clock, 0 if value is None else value)
        p.n = n
        p.mode = mode
        m.pins[n] = p
        return p


class FakeWDT:
    def __init__(self, timeout):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1
