"""The host UART fake delivers a simulated SDS011's bytes with the line's timing: 1.04 ms a byte at
9600 baud 8N1, a reply only after the command's last byte plus the sensor's reply delay, back-to-back
commands answered one after the other, and reads that time out."""

from fake_buses import FakeUART
from fakeclock import FakeClock
from sim_sensors import SimSDS011


def _cmd(c, d1=0, d2=0):
    b = bytearray(19)
    b[0] = 0xAA
    b[1] = 0xB4
    b[2] = c
    b[3] = d1
    b[4] = d2
    b[15] = 0xFF
    b[16] = 0xFF
    b[17] = sum(b[2:17]) & 0xFF
    b[18] = 0xAB
    return b


def _setup(**kw):
    clock = FakeClock()
    sim = SimSDS011(clock, **kw)
    return clock, sim, FakeUART(clock, sim, timeout_ms=0)


def test_a_reply_arrives_in_pieces_after_the_reply_delay():
    clock, sim, uart = _setup(query_mode=True)
    uart.write(_cmd(2))  # the write itself takes the line time of its 19 bytes
    t_sent = clock.now_ms()
    assert uart.any() == 0  # the sensor is still thinking
    clock.advance(sim.reply_delay_ms + 5)  # 5 ms into the reply: 4 of its 10 bytes are in
    part = uart.read()
    assert part == b"\xaa\xc5\x02\x00"
    clock.advance(10)
    rest = uart.read()
    assert len(rest) == 6 and rest[-1] == 0xAB
    assert clock.now_ms() - t_sent >= sim.reply_delay_ms + 10


def test_back_to_back_commands_are_answered_one_after_the_other():
    clock, sim, uart = _setup(query_mode=True, sleeping=True)
    uart.write(_cmd(6, 1, 1))  # wake up (a write takes the line time of its 19 bytes, 20 ms)
    uart.write(_cmd(2))  # which mode?
    clock.advance(1)
    first = uart.read()
    assert first[:3] == b"\xaa\xc5\x06" and len(first) == 10  # only the wake-up's reply so far
    clock.advance(sim.reply_delay_ms + 11)
    second = uart.read()
    assert second[:3] == b"\xaa\xc5\x02" and len(second) == 10


def test_read_times_out_when_the_sensor_sleeps():
    clock, sim, uart = _setup(sleeping=True)
    uart.timeout_ms = 200
    uart.write(_cmd(2))
    t0 = clock.now_ms()
    assert uart.read(10) is None
    assert clock.now_ms() - t0 >= 200


def test_active_mode_frames_once_a_second():
    clock, sim, uart = _setup()
    assert uart.any() == 0  # listening from now
    clock.advance(999)
    assert uart.any() == 0
    clock.advance(12)
    assert uart.read()[:2] == b"\xaa\xc0"
