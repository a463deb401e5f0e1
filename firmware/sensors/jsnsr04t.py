"""JSN-SR04T waterproof ultrasonic distance sensor (trigger/echo mode, "mode 0" of the module).

The echo width is the round trip at the speed of sound, which depends on air temperature
(0.17 %/K: 3.4 cm over 2 m between 0 and 20 C), so the driver takes the air temperature.
Targets inside the blind zone (~20-25 cm) give echoes that do not mean a distance: reported as
BLIND, never as a number. One reading is the median of several pings (spurious reflections).
"""

import time

from micropython import const

from sensors.base import ABSENT, BLIND, FAULT, Sensor, SensorError

_TRIG_US = const(20)  # datasheet asks for >= 10 us; some board revisions need more
_PING_GAP_MS = const(60)  # let the previous burst die out
_DEFAULT_AIR_C = 15.0  # only when no temperature is given: a standard atmosphere


def speed_of_sound_m_s(temp_c):
    """Speed of sound in dry air at temp_c (ideal gas: 331.3 m/s * sqrt(1 + T/273.15))."""
    return 331.3 * (1.0 + temp_c / 273.15) ** 0.5


class JSNSR04T(Sensor):
    """read(air_temp_c=None) -> distance_mm (int) or None (status ABSENT, FAULT or BLIND).

    trig, echo: pins; time_pulse_us: machine.time_pulse_us (or the simulator's); clock: a Clock.
    The 20 us trigger pulse uses time.sleep_us (on CPython the `micropython` shim provides it).
    """

    name = "jsn-sr04t"

    def __init__(self, trig, echo, time_pulse_us, clock, pings=5, blind_mm=250, max_mm=6000):
        Sensor.__init__(self)
        self._trig = trig
        self._echo = echo
        self._pulse = time_pulse_us
        self._clock = clock
        self._pings = pings
        self._blind_mm = blind_mm
        self._max_mm = max_mm
        self._timeout_us = int(2.0 * max_mm / 1000.0 / 300.0 * 1e6)  # round trip at the slowest sound
        self._vals = [0] * pings
        self.air_temp_c = None

    def read(self, air_temp_c=None):
        self.air_temp_c = air_temp_c
        return Sensor.read(self)

    def _read(self):
        t = self.air_temp_c if self.air_temp_c is not None else _DEFAULT_AIR_C
        mm_per_us = speed_of_sound_m_s(t) / 2000.0  # half the round trip, m/s -> mm/us
        vals = self._vals
        n = 0
        blind = 0
        lost = 0
        for i in range(self._pings):
            if i:
                self._clock.sleep_ms(_PING_GAP_MS)
            self._trig.value(0)
            self._trig.value(1)
            time.sleep_us(_TRIG_US)
            self._trig.value(0)
            w = self._pulse(self._echo, 1, self._timeout_us)
            if w <= 0:
                lost += 1
                continue
            d = int(w * mm_per_us + 0.5)
            if d < self._blind_mm:
                blind += 1
            elif d <= self._max_mm:
                vals[n] = d
                n += 1
        half = self._pings // 2
        if lost == self._pings:
            raise SensorError(ABSENT, "no echo (unplugged, or nothing below the sensor)")
        if blind > half:
            raise SensorError(BLIND, "target inside the %d mm blind zone" % self._blind_mm)
        if n <= half:
            raise SensorError(FAULT, "too few valid echoes (%d of %d)" % (n, self._pings))
        # insertion sort of the few valid values, in place (no allocation)
        for i in range(1, n):
            v = vals[i]
            j = i - 1
            while j >= 0 and vals[j] > v:
                vals[j + 1] = vals[j]
                j -= 1
            vals[j + 1] = v
        if n & 1:
            return vals[n // 2]
        return (vals[n // 2 - 1] + vals[n // 2]) // 2
