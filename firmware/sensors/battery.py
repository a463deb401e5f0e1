"""Battery voltage through a resistor divider on an ADC pin.

Some boards switch the divider on with a GPIO (Heltec V3: ADC_CTRL 37, active low) so that it does
not drain the battery between readings; pass that pin as `enable` with its active level.
"""

from micropython import const

from sensors.base import ABSENT, FAULT, Sensor, SensorError

_SAMPLES = const(8)
_SETTLE_MS = const(2)


class Battery(Sensor):
    """read() -> millivolts (int) or None.

    adc: object with read_u16(); divider: Vbat / Vpin; vref_mv: ADC full scale in mV;
    min_mv / max_mv: the plausible range of the pack (outside it the divider or pin is wrong).
    """

    name = "battery"

    def __init__(
        self, adc, clock, divider=2.0, vref_mv=3300, enable=None, enable_level=1, min_mv=2000, max_mv=6000
    ):
        Sensor.__init__(self)
        self._adc = adc
        self._clock = clock
        self._div = divider
        self._vref = vref_mv
        self._en = enable
        self._en_level = enable_level
        self._min = min_mv
        self._max = max_mv

    def _read(self):
        if self._en is not None:
            self._en.value(self._en_level)
            self._clock.sleep_ms(_SETTLE_MS)
        try:
            total = 0
            lo = 65535
            hi = 0
            for _ in range(_SAMPLES):
                r = self._adc.read_u16()
                total += r
                if r < lo:
                    lo = r
                if r > hi:
                    hi = r
        finally:
            if self._en is not None:
                self._en.value(1 - self._en_level)
        if hi == 0:
            raise SensorError(ABSENT, "ADC reads 0 (divider not connected?)")
        if lo >= 65535:
            raise SensorError(FAULT, "ADC saturated (divider ratio wrong?)")
        mv = int(total / _SAMPLES * self._vref / 65535.0 * self._div + 0.5)
        if mv < self._min or mv > self._max:
            raise SensorError(FAULT, "%d mV is outside %d..%d mV" % (mv, self._min, self._max))
        return mv
