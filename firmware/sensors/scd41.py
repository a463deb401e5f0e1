"""Sensirion SCD41 CO2 sensor over I2C (datasheet SCD4x, version 1.4, 2023).

Single-shot measurements (SCD41 only, 5 s each): the node reads once per cycle and the sensor idles
in between at ~0.5 mA, instead of the periodic mode's 15 mA. Every 16-bit word carries a CRC-8.
"""

from micropython import const

from sensors.base import FAULT, TIMEOUT, Sensor, SensorError
from sensors.crc import crc8_sensirion

_CMD_STOP_PERIODIC = const(0x3F86)
_CMD_SINGLE_SHOT = const(0x219D)
_CMD_DATA_READY = const(0xE4B8)
_CMD_READ_MEAS = const(0xEC05)
_STOP_WAIT_MS = const(500)
_SINGLE_SHOT_MS = const(5000)
_CMD_WAIT_MS = const(1)
_READY_POLLS = const(10)
_READY_POLL_MS = const(100)


class SCD41(Sensor):
    """read() -> (co2_ppm, temp_c, humidity_pct) or None."""

    name = "scd41"

    def __init__(self, i2c, clock, addr=0x62):
        Sensor.__init__(self)
        self._i2c = i2c
        self._clock = clock
        self._addr = addr
        self._idle = False
        self._cmd = bytearray(2)
        self._buf = bytearray(9)
        self._word = bytearray(3)

    def _reset_after_fault(self):
        self._idle = False

    def _send(self, cmd):
        c = self._cmd
        c[0] = cmd >> 8
        c[1] = cmd & 0xFF
        self._i2c.writeto(self._addr, c)

    def _read_words(self, buf):
        self._i2c.readfrom_into(self._addr, buf)
        for i in range(0, len(buf), 3):
            if crc8_sensirion(buf, i, i + 2) != buf[i + 2]:
                raise SensorError(FAULT, "CRC error")

    def _read(self):
        if not self._idle:
            # the sensor keeps running a periodic measurement across our resets: stop it first
            self._send(_CMD_STOP_PERIODIC)
            self._clock.sleep_ms(_STOP_WAIT_MS)
            self._idle = True
        self._send(_CMD_SINGLE_SHOT)
        self._clock.sleep_ms(_SINGLE_SHOT_MS)
        w = self._word
        for _ in range(_READY_POLLS):
            self._send(_CMD_DATA_READY)
            self._clock.sleep_ms(_CMD_WAIT_MS)
            self._read_words(w)
            if ((w[0] << 8) | w[1]) & 0x07FF:
                break
            self._clock.sleep_ms(_READY_POLL_MS)
        else:
            raise SensorError(TIMEOUT, "no data after a single-shot measurement")
        self._send(_CMD_READ_MEAS)
        self._clock.sleep_ms(_CMD_WAIT_MS)
        b = self._buf
        self._read_words(b)
        co2 = (b[0] << 8) | b[1]
        if co2 == 0:
            raise SensorError(FAULT, "invalid sample (CO2 0 ppm)")
        temp_c = -45.0 + 175.0 * ((b[3] << 8) | b[4]) / 65535.0
        hum = 100.0 * ((b[6] << 8) | b[7]) / 65535.0
        return co2, temp_c, hum
