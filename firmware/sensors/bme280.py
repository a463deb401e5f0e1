"""Bosch BME280 temperature / pressure / humidity over I2C (datasheet BST-BME280-DS002, rev 1.6).

Forced mode, oversampling x1 everywhere (the weather-station setting of datasheet 3.5.1): one
measurement per node cycle, the sensor sleeps in between. A BMP280 (chip id 0x56..0x58, no humidity
channel) is often sold as a BME280: it is rejected when humidity is required, and read for
temperature and pressure otherwise.
"""

from micropython import const

from sensors.base import FAULT, TIMEOUT, Sensor, SensorError

_REG_CALIB00 = const(0x88)  # dig_T1 .. dig_P9 (24 bytes), then 0xA0 unused, 0xA1 dig_H1
_REG_CHIP_ID = const(0xD0)
_REG_RESET = const(0xE0)
_REG_CALIB26 = const(0xE1)  # dig_H2 .. dig_H6 (7 bytes)
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_DATA = const(0xF7)  # press_msb .. hum_lsb (8 bytes)

_CHIP_BME280 = const(0x60)
_STATUS_MEASURING = const(0x08)
_STATUS_IM_UPDATE = const(0x01)
_CTRL_HUM_X1 = const(0x01)
_CTRL_MEAS_FORCED_X1 = const(0x25)  # osrs_t x1 (001), osrs_p x1 (001), mode forced (01)
_MEAS_WAIT_MS = const(10)  # datasheet 9.1: t_measure,max = 9.3 ms at x1/x1/x1
_MEAS_POLLS = const(5)
_ADC_SKIPPED_20 = const(0x80000)  # value of a skipped temperature/pressure measurement
_ADC_SKIPPED_16 = const(0x8000)


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _s16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 65536 if v & 0x8000 else v


def _s12(v):
    return v - 4096 if v & 0x800 else v


def parse_calibration(c1, c2):
    """Calibration words from the 26 bytes at 0x88 and the 7 bytes at 0xE1 (datasheet table 16)."""
    t = (_u16(c1, 0), _s16(c1, 2), _s16(c1, 4))
    p = (
        _u16(c1, 6),
        _s16(c1, 8),
        _s16(c1, 10),
        _s16(c1, 12),
        _s16(c1, 14),
        _s16(c1, 16),
        _s16(c1, 18),
        _s16(c1, 20),
        _s16(c1, 22),
    )
    h6 = c2[6] - 256 if c2[6] & 0x80 else c2[6]
    h = (
        c1[25],
        _s16(c2, 0),
        c2[2],
        _s12((c2[3] << 4) | (c2[4] & 0x0F)),
        _s12((c2[5] << 4) | (c2[4] >> 4)),
        h6,
    )
    return t, p, h


def compensate_t(adc_t, t):
    """Temperature in deg C and t_fine (datasheet 8.1, floating-point formula)."""
    t1, t2, t3 = t
    v1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
    d = adc_t / 131072.0 - t1 / 8192.0
    v2 = d * d * t3
    t_fine = v1 + v2
    return t_fine / 5120.0, t_fine


def compensate_p(adc_p, t_fine, p):
    """Pressure in Pa (datasheet 8.1, floating-point formula); None when dig_P1 makes it undefined."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = p
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * p6 / 32768.0
    v2 = v2 + v1 * p5 * 2.0
    v2 = v2 / 4.0 + p4 * 65536.0
    v1 = (p3 * v1 * v1 / 524288.0 + p2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * p1
    if v1 == 0.0:
        return None  # avoid a division by zero (datasheet: "avoid exception caused by division by zero")
    pa = 1048576.0 - adc_p
    pa = (pa - v2 / 4096.0) * 6250.0 / v1
    v1 = p9 * pa * pa / 2147483648.0
    v2 = pa * p8 / 32768.0
    return pa + (v1 + v2 + p7) / 16.0


def compensate_h(adc_h, t_fine, h):
    """Relative humidity in % (datasheet 8.1, floating-point formula), clamped to 0..100."""
    h1, h2, h3, h4, h5, h6 = h
    v = t_fine - 76800.0
    v = (adc_h - (h4 * 64.0 + h5 / 16384.0 * v)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v))
    )
    v = v * (1.0 - h1 * v / 524288.0)
    if v > 100.0:
        return 100.0
    if v < 0.0:
        return 0.0
    return v


class BME280(Sensor):
    """read() -> (temp_c, pressure_hpa, humidity_pct or None) or None.

    `need_humidity`: a BMP280 found in its place is a fault (the node promises humidity).
    """

    name = "bme280"

    def __init__(self, i2c, clock, addr=0x76, need_humidity=True):
        Sensor.__init__(self)
        self._i2c = i2c
        self._clock = clock
        self._addr = addr
        self._need_h = need_humidity
        self._cal = None
        self._has_h = False
        self._buf = bytearray(8)
        self._one = bytearray(1)

    def _reset_after_fault(self):
        self._cal = None

    def _probe(self):
        i2c = self._i2c
        chip = i2c.readfrom_mem(self._addr, _REG_CHIP_ID, 1)[0]
        if chip == _CHIP_BME280:
            self._has_h = True
        elif chip in (0x56, 0x57, 0x58):
            if self._need_h:
                raise SensorError(
                    FAULT, "BMP280 fitted (chip id 0x%02x), a BME280 is needed for humidity" % chip
                )
            self._has_h = False
        else:
            raise SensorError(FAULT, "unknown chip id 0x%02x at 0x%02x" % (chip, self._addr))
        c1 = i2c.readfrom_mem(self._addr, _REG_CALIB00, 26)
        c2 = i2c.readfrom_mem(self._addr, _REG_CALIB26, 7) if self._has_h else bytes(7)
        cal = parse_calibration(c1, c2)
        # dig_T1 and dig_P1 are unsigned and never 0 on a good part: 0 or 0xFFFF means a dead bus
        if cal[0][0] in (0, 0xFFFF) or cal[1][0] in (0, 0xFFFF):
            raise SensorError(FAULT, "calibration data unreadable")
        self._cal = cal
        return cal

    def _read(self):
        cal = self._cal
        if cal is None:
            cal = self._probe()
        i2c = self._i2c
        one = self._one
        if self._has_h:
            one[0] = _CTRL_HUM_X1  # ctrl_hum only takes effect after the ctrl_meas write (datasheet 5.4.3)
            i2c.writeto_mem(self._addr, _REG_CTRL_HUM, one)
        one[0] = _CTRL_MEAS_FORCED_X1
        i2c.writeto_mem(self._addr, _REG_CTRL_MEAS, one)
        for _ in range(_MEAS_POLLS):
            self._clock.sleep_ms(_MEAS_WAIT_MS)
            if not i2c.readfrom_mem(self._addr, _REG_STATUS, 1)[0] & (_STATUS_MEASURING | _STATUS_IM_UPDATE):
                break
        else:
            raise SensorError(TIMEOUT, "measurement never finished")
        b = self._buf
        i2c.readfrom_mem_into(self._addr, _REG_DATA, b)
        adc_p = (b[0] << 12) | (b[1] << 4) | (b[2] >> 4)
        adc_t = (b[3] << 12) | (b[4] << 4) | (b[5] >> 4)
        adc_h = (b[6] << 8) | b[7]
        if adc_t == _ADC_SKIPPED_20 or adc_p == _ADC_SKIPPED_20:
            raise SensorError(FAULT, "no measurement data (sensor reset during measurement?)")
        tcal, pcal, hcal = cal
        temp_c, t_fine = compensate_t(adc_t, tcal)
        pa = compensate_p(adc_p, t_fine, pcal)
        if pa is None or not (-40.0 <= temp_c <= 85.0) or not (30000.0 <= pa <= 110000.0):
            raise SensorError(FAULT, "reading outside the sensor's range")
        hum = None
        if self._has_h:
            if adc_h == _ADC_SKIPPED_16:
                raise SensorError(FAULT, "no humidity data")
            hum = compensate_h(adc_h, t_fine, hcal)
        return temp_c, pa / 100.0, hum
