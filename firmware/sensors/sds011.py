"""Nova Fitness SDS011 PM2.5/PM10 over UART 9600 8N1 (Laser Dust Sensor Control Protocol V1.3).

Host -> sensor: 19-byte frames AA B4 cmd d1..d12 id_hi id_lo cs AB, cs = sum(bytes 2..16) & 0xFF.
Sensor -> host: 10-byte frames AA C0|C5 d1..d6 cs AB, cs = sum(bytes 2..7) & 0xFF.
The sensor keeps its reporting mode and sleep state across our resets, so the driver sets the mode
it wants on first use. Between readings the fan sleeps (its life is ~8000 h).
"""

from micropython import const

from sensors.base import ABSENT, FAULT, Sensor, SensorError

QUERY = const(1)
CONTINUOUS = const(0)

_CMD_MODE = const(2)
_CMD_QUERY = const(4)
_CMD_SLEEP = const(6)
_HEAD = const(0xAA)
_TAIL = const(0xAB)
_DATA = const(0xC0)
_REPLY = const(0xC5)
_FRAME_TIMEOUT_MS = const(3000)  # continuous mode sends a frame every second


def command_frame(buf, cmd, op=0, value=0):
    """Fill the 19-byte `buf` with a command to all sensors (id FFFF)."""
    for i in range(19):
        buf[i] = 0
    buf[0] = _HEAD
    buf[1] = 0xB4
    buf[2] = cmd
    buf[3] = op
    buf[4] = value
    buf[15] = 0xFF
    buf[16] = 0xFF
    s = 0
    for i in range(2, 17):
        s += buf[i]
    buf[17] = s & 0xFF
    buf[18] = _TAIL


def frame_ok(f):
    """True when the 10-byte frame has head, tail and a matching checksum."""
    if f[0] != _HEAD or f[9] != _TAIL:
        return False
    s = 0
    for i in range(2, 8):
        s += f[i]
    return (s & 0xFF) == f[8]


class SDS011(Sensor):
    """read() -> (pm25_ug_m3, pm10_ug_m3) or None.

    mode: QUERY (the node asks once per cycle) or CONTINUOUS (the sensor sends every second; the
    driver takes the next good frame). warmup_ms: fan run time before the value counts
    (the datasheet asks for 30 s after waking).
    """

    name = "sds011"

    def __init__(self, uart, clock, mode=QUERY, warmup_ms=30000, sleep_between=True):
        Sensor.__init__(self)
        self._uart = uart
        self._clock = clock
        self._mode = mode
        self._warmup_ms = warmup_ms
        self._sleep_between = sleep_between
        self._mode_set = False
        self._cmd = bytearray(19)
        self._frame = bytearray(10)
        self._mv = memoryview(self._frame)
        self._mv1 = self._mv[0:1]
        self.bad_frames = 0

    def _reset_after_fault(self):
        self._mode_set = False

    def _send(self, cmd, op=0, value=0):
        command_frame(self._cmd, cmd, op, value)
        self._uart.write(self._cmd)

    def _drain(self):
        u = self._uart
        while u.any():
            u.read(u.any())

    def _next_frame(self, kind, timeout_ms):
        """Read until a good frame of `kind` (C0 data or C5 reply) arrives; resynchronises on 0xAA."""
        f = self._frame
        mv = self._mv
        u = self._uart
        start = self._clock.now_ms()
        seen = False
        while self._clock.now_ms() - start < timeout_ms:
            n = u.readinto(self._mv1)
            if not n:
                continue
            seen = True
            if f[0] != _HEAD:
                continue
            got = 1
            while got < 10:
                n = u.readinto(mv[got:10])
                if not n:
                    break
                got += n
            if got < 10:
                continue
            if not frame_ok(f):
                self.bad_frames += 1
                continue
            if f[1] == kind:
                return True
        if seen and self.bad_frames:
            raise SensorError(FAULT, "frame checksum errors")
        return False

    def _wake(self, on):
        self._send(_CMD_SLEEP, 1, 1 if on else 0)
        self._next_frame(_REPLY, 1000)

    def _read(self):
        self.bad_frames = 0
        self._drain()
        if not self._mode_set:
            # the reporting mode is kept by the sensor; set ours (it must be awake to hear it)
            self._wake(True)
            self._send(_CMD_MODE, 1, 1 if self._mode == QUERY else 0)
            if not self._next_frame(_REPLY, 1000):
                raise SensorError(ABSENT, "no answer (not connected, or RX/TX swapped?)")
            self._mode_set = True
        elif self._sleep_between:
            self._wake(True)
        try:
            if self._warmup_ms:
                self._clock.sleep_ms(self._warmup_ms)
            self._drain()
            if self._mode == QUERY:
                self._send(_CMD_QUERY)
            if not self._next_frame(_DATA, _FRAME_TIMEOUT_MS):
                raise SensorError(ABSENT, "no data frame (not connected, or RX/TX swapped?)")
            f = self._frame
            pm25 = (f[2] | (f[3] << 8)) / 10.0
            pm10 = (f[4] | (f[5] << 8)) / 10.0
        finally:
            if self._sleep_between:
                self._wake(False)
        return pm25, pm10
