"""Maxim DS18B20 1-Wire thermometer (datasheet 19-7487, rev 6).

85.0 C is the scratchpad's power-on value: read back, it means the conversion never happened (a
reset during conversion, a weak supply), so it is a fault, not a temperature. A scratchpad of all
zeros passes the CRC but means a data line held low.
"""

from micropython import const

from sensors.base import ABSENT, FAULT, TIMEOUT, Sensor, SensorError
from sensors.crc import crc8_maxim

_FAMILY_DS18B20 = const(0x28)
_CMD_CONVERT_T = const(0x44)
_CMD_READ_SCRATCH = const(0xBE)
_POWER_ON_RAW = const(0x0550)  # 85.0 C
_CONVERT_POLL_MS = const(50)
# 750 ms at 12 bit; clones sold as DS18B20 take longer (the kit check waits 1.5 s too)
_CONVERT_MAX_MS = const(1500)


class DS18B20(Sensor):
    """read() -> temp_c or None. Uses the first DS18B20 on the bus unless a ROM is given."""

    name = "ds18b20"

    def __init__(self, ow, clock, rom=None):
        Sensor.__init__(self)
        self._ow = ow
        self._clock = clock
        self._fixed_rom = rom
        self._rom = rom
        self._buf = bytearray(9)

    def _reset_after_fault(self):
        self._rom = self._fixed_rom

    def _find(self):
        for rom in self._ow.scan():
            if rom[0] == _FAMILY_DS18B20 and crc8_maxim(rom, 0, 7) == rom[7]:
                return rom
            if not any(rom):
                raise SensorError(FAULT, "data line held low (short circuit?)")
        raise SensorError(ABSENT, "no DS18B20 on the 1-Wire bus (check wiring and the 4.7k pull-up)")

    def _read(self):
        ow = self._ow
        if self._rom is None:
            self._rom = self._find()
        if not ow.reset():
            raise SensorError(ABSENT, "no presence pulse")
        ow.select_rom(self._rom)
        ow.writebyte(_CMD_CONVERT_T)
        waited = 0
        while not ow.readbit():
            if waited >= _CONVERT_MAX_MS:
                raise SensorError(TIMEOUT, "conversion never finished")
            self._clock.sleep_ms(_CONVERT_POLL_MS)
            waited += _CONVERT_POLL_MS
        ow.select_rom(self._rom)
        ow.writebyte(_CMD_READ_SCRATCH)
        b = self._buf
        ow.readinto(b)
        if not any(b):
            raise SensorError(FAULT, "data line held low (scratchpad all zero)")
        if crc8_maxim(b, 0, 8) != b[8]:
            raise SensorError(FAULT, "scratchpad CRC error")
        raw = b[0] | (b[1] << 8)
        if raw == _POWER_ON_RAW:
            raise SensorError(FAULT, "85.0 C power-on value: no conversion (supply?)")
        if raw & 0x8000:
            raw -= 0x10000
        t = raw / 16.0
        if t < -55.0 or t > 125.0:
            raise SensorError(FAULT, "reading outside the sensor's range")
        return t
