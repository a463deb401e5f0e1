"""Adafruit STEMMA soil sensor (seesaw firmware on an ATSAMD10, product 4026) over I2C: capacitive moisture.

The seesaw protocol: write the module base and function register, wait, read. Touch channel 0 (base 0x0F,
function 0x10) gives the probe's capacitance, about 200 in dry air to 2000 in water. Up to four probes share
one bus (addresses 0x36..0x39, set by the AD0/AD1 jumpers). The reading is scaled between the probe's dry
(0 %) and wet (100 %) calibration values.
"""

from micropython import const

from sensors.base import FAULT, Sensor, SensorError

_TOUCH_BASE = const(0x0F)
_TOUCH_CHANNEL0 = const(0x10)
_WAIT_MS = const(5)  # the library waits 3 ms and retries with more; 5 ms is enough for one try
_NO_READING = const(0xFFFF)  # what the seesaw answers while the measurement is not done


class SeesawSoil(Sensor):
    """read() -> moisture in % (0..100, float) or None."""

    name = "soil"

    def __init__(self, i2c, clock, addr=0x36, dry=300, wet=1000):
        Sensor.__init__(self)
        self._i2c = i2c
        self._clock = clock
        self._addr = addr
        self._dry = dry
        self._wet = wet
        self._cmd = bytearray((_TOUCH_BASE, _TOUCH_CHANNEL0))
        self._buf = bytearray(2)
        self.name = "soil@0x%02x" % addr

    def _read(self):
        self._i2c.writeto(self._addr, self._cmd)
        self._clock.sleep_ms(_WAIT_MS)
        b = self._buf
        self._i2c.readfrom_into(self._addr, b)
        raw = (b[0] << 8) | b[1]
        if raw == _NO_READING:
            raise SensorError(FAULT, "no capacitance reading (probe busy or damaged)")
        self.raw = raw
        span = self._wet - self._dry
        pct = (raw - self._dry) * 100.0 / span
        # a little past the calibration is normal (wetter than the wet reference): clipped; far past it
        # is a probe out of the soil or broken, not a reading
        if pct < -25.0 or pct > 125.0:
            raise SensorError(
                FAULT, "capacitance %d is far outside the calibration %d..%d" % (raw, self._dry, self._wet)
            )
        if pct < 0.0:
            return 0.0
        if pct > 100.0:
            return 100.0
        return pct
