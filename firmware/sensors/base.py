"""What every sensor driver shares: the reading status, the bus-error mapping, the read wrapper.

A driver's `read()` returns its values (a tuple, or a number) or None. None always comes with a
`status` other than OK and a short `error` text for the serial console: a faulty, absent or hanging
sensor never yields a made-up number.
"""

from micropython import const

OK = const(0)
ABSENT = const(1)  # nothing answers: not fitted, not wired, wrong address
FAULT = const(2)  # answers, but the answer is wrong: CRC, checksum, implausible value, wrong chip
TIMEOUT = const(3)  # the bus or the sensor hangs
BLIND = const(4)  # ultrasonic only: the target is inside the blind zone (closer than the sensor can see)

STATUS_NAMES = ("ok", "absent", "faulty", "timeout", "blind")

# errno values as the MicroPython ports report them (ESP32, RP2); the wasm build remaps nothing here
# because the fake buses raise these same numbers.
_ETIMEDOUT = const(110)
_ETIMEDOUT_LWIP = const(116)


class SensorError(Exception):
    """Raised inside a driver; `read()` turns it into status + error text."""

    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status
        self.msg = msg


def status_of_oserror(exc):
    """Map a bus OSError to ABSENT (NACK, no device) or TIMEOUT (bus held, clock stretching forever)."""
    code = exc.args[0] if exc.args else 0
    if code == _ETIMEDOUT or code == _ETIMEDOUT_LWIP:
        return TIMEOUT
    return ABSENT


class Sensor:
    """Base class: subclasses implement `_read()` and may raise SensorError or OSError."""

    name = "sensor"

    def __init__(self):
        self.status = ABSENT
        self.error = "not read yet"
        self.reads = 0
        self.faults = 0

    def read(self):
        """Read once. Returns the value(s) or None; `status`/`error` say why when None."""
        self.reads += 1
        try:
            value = self._read()
        except SensorError as e:
            return self._fail(e.status, e.msg)
        except OSError as e:
            st = status_of_oserror(e)
            if st == TIMEOUT:
                return self._fail(st, "bus timeout (bus hangs or sensor stretches the clock)")
            return self._fail(st, "no answer on the bus (not fitted or not wired?)")
        self.status = OK
        self.error = None
        return value

    def _fail(self, status, msg):
        self.status = status
        self.error = self.name + ": " + msg
        self.faults += 1
        self._reset_after_fault()
        return None

    def _reset_after_fault(self):
        """Forget cached probe results so that a replaced or re-plugged sensor is found again."""

    def _read(self):
        raise NotImplementedError
