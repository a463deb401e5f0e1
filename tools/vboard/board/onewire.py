# ruff: noqa: RUF046, UP  (MicroPython code: no contextlib, no exception chaining)
# Stand-in for the ESP32 port's frozen `onewire` module, with the same methods, backed by simulated
# DS18B20s on the pin named in scenario.json. The bus is simulated at the command level (ROM commands,
# function commands, scratchpad bytes), so a driver reads CRCs and power-on values as on a real bus.
import _vboard_state as _vb


class OneWireError(Exception):
    pass


def _crc8(data):
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


class _DS18B20:
    """A DS18B20 (Maxim datasheet 19-7487 rev 6): a temperature conversion takes up to 750 ms at 12 bits
    (tCONV, `conversion_ms` in the scenario); until it is done the scratchpad holds the previous value,
    +85.0 C after power-on, and the chip answers read slots with 0 (busy, when externally powered)."""

    def __init__(self, spec):
        rom = bytes.fromhex(spec["rom"])
        self.rom = rom[:7] + bytes((_crc8(rom[:7]),))
        self.spec = spec
        # Power-on scratchpad: +85.0 C, TH, TL, 12-bit config, reserved bytes.
        self.scratch = bytearray(b"\x50\x05\x4b\x46\x7f\xff\x0c\x10\x00")
        self.scratch[8] = _crc8(self.scratch[:8])
        self.done_at = None

    def convert(self):
        self.done_at = _vb.now_us() + int(self.spec.get("conversion_ms", 750) * 1000)

    def busy(self):
        self._finish()
        return self.done_at is not None

    def _finish(self):
        if self.done_at is None or _vb.now_us() < self.done_at:
            return
        self.done_at = None
        if not self.spec.get("converts", True):
            return  # e.g. VDD not connected (parasite power without a strong pull-up): stays at 85.0 C
        raw = int(round(self.spec.get("temp_c", 21.5) * 16)) & 0xFFFF
        self.scratch[0] = raw & 0xFF
        self.scratch[1] = raw >> 8
        self.scratch[8] = _crc8(self.scratch[:8])

    def read_scratch(self):
        self._finish()
        return bytearray(self.scratch)


# The probes keep their scratchpads while powered, however many OneWire objects talk to them.
_PARTS = {}


class OneWire:
    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin):
        self.pin = _vb.pin_id(pin)
        self._devs = []
        for bus in _vb.scenario().get("onewire", []):
            if bus.get("pin") == self.pin:
                for d in bus.get("devices", []):
                    key = (self.pin, d["rom"])
                    if key not in _PARTS:
                        _PARTS[key] = _DS18B20(d)
                    self._devs.append(_PARTS[key])
        self._selected = []
        self._phase = "idle"
        self._rom_buf = bytearray()
        self._out = bytearray()

    def reset(self, required=False):
        present = bool(self._devs)
        if required and not present:
            raise OneWireError
        self._phase = "rom"
        self._selected = []
        self._out = bytearray()
        return present

    def readbit(self):
        if not self._out and any(d.busy() for d in self._selected):
            return 0  # a conversion is running: the chip holds the line low in read slots
        return self.readbyte() & 1

    def readbyte(self):
        if self._out:
            b = self._out[0]
            self._out = self._out[1:]
            return b
        return 0xFF  # nobody drives the bus: the pull-up reads as ones

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.readbyte()

    def writebit(self, value, powerpin=None):
        pass

    def writebyte(self, value, powerpin=None):
        if self._phase == "rom":
            if value == self.SKIP_ROM:
                self._selected = list(self._devs)
                self._phase = "func"
            elif value == self.MATCH_ROM:
                self._rom_buf = bytearray()
                self._phase = "match"
            return
        if self._phase == "match":
            self._rom_buf.append(value)
            if len(self._rom_buf) == 8:
                self._selected = [d for d in self._devs if d.rom == bytes(self._rom_buf)]
                self._phase = "func"
            return
        if self._phase == "func":
            if value == 0x44:
                for d in self._selected:
                    d.convert()
            elif value == 0xBE and len(self._selected) == 1:
                self._out = self._selected[0].read_scratch()
            self._phase = "data"

    def write(self, buf):
        for b in buf:
            self.writebyte(b)

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def scan(self):
        return [bytearray(d.rom) for d in self._devs]

    def crc8(self, data):
        return _crc8(data)
