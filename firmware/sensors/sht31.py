"""Sensirion SHT31 temperature / humidity over I2C (datasheet SHT3x-DIS, version 7, 2022).

Single shot, high repeatability, no clock stretching (command 0x2400): the chip NACKs reads until
the conversion (15 ms max) is done, which keeps a slow sensor from holding the bus.
"""

from micropython import const

from sensors.base import FAULT, Sensor, SensorError
from sensors.crc import crc8_sensirion

_CMD_MEAS_HIGH_NOSTRETCH = const(0x2400)
_MEAS_WAIT_MS = const(16)


class SHT31(Sensor):
    """read() -> (temp_c, humidity_pct) or None."""

    name = "sht31"

    def __init__(self, i2c, clock, addr=0x44):
        Sensor.__init__(self)
        self._i2c = i2c
        self._clock = clock
        self._addr = addr
        self._cmd = bytearray((_CMD_MEAS_HIGH_NOSTRETCH >> 8, _CMD_MEAS_HIGH_NOSTRETCH & 0xFF))
        self._buf = bytearray(6)

    def _read(self):
        self._i2c.writeto(self._addr, self._cmd)
        self._clock.sleep_ms(_MEAS_WAIT_MS)
        b = self._buf
        self._i2c.readfrom_into(self._addr, b)
        if crc8_sensirion(b, 0, 2) != b[2] or crc8_sensirion(b, 3, 5) != b[5]:
            raise SensorError(FAULT, "CRC error")
        raw_t = (b[0] << 8) | b[1]
        raw_h = (b[3] << 8) | b[4]
        # datasheet 4.13: T = -45 + 175 * S_T / (2^16 - 1), RH = 100 * S_RH / (2^16 - 1)
        return -45.0 + 175.0 * raw_t / 65535.0, 100.0 * raw_h / 65535.0
