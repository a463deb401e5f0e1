# Stand-in for the ESP32 port's frozen `ds18x20` driver (same methods), written for the virtual board.
from micropython import const

_CONVERT = const(0x44)
_RD_SCRATCH = const(0xBE)


class DS18X20:
    def __init__(self, onewire):
        self.ow = onewire
        self.buf = bytearray(9)

    def scan(self):
        return [rom for rom in self.ow.scan() if rom[0] in (0x10, 0x22, 0x28)]

    def convert_temp(self):
        self.ow.reset(True)
        self.ow.writebyte(self.ow.SKIP_ROM)
        self.ow.writebyte(_CONVERT)

    def read_scratch(self, rom):
        self.ow.reset(True)
        self.ow.select_rom(rom)
        self.ow.writebyte(_RD_SCRATCH)
        self.ow.readinto(self.buf)
        if self.ow.crc8(self.buf):
            raise Exception("CRC error")
        return self.buf

    def read_temp(self, rom):
        buf = self.read_scratch(rom)
        t = buf[1] << 8 | buf[0]
        if t & 0x8000:
            t = -((t ^ 0xFFFF) + 1)
        return t / 16
