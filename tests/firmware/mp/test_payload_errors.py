"""What the node's payload code does with bad input: refuses bad downlinks, never sends a made-up
number (out-of-range readings go out as the codec's "absent/faulty" sentinel)."""

from payload import air, common, cooling, temperature, water
from payload.fields import PayloadError, round_half_away

from mptest import raises, unhex

OK_AIR = {
    "temperature": 21.5,
    "humidity": 45.5,
    "pressure": 1013.2,
    "pm2_5": 12.3,
    "pm10": 20.1,
    "battery": 3700,
    "faults": {"thp": False, "pm": False, "co2": False},
}


def test_rounding_is_half_away_from_zero():
    assert round_half_away(2.5) == 3 and round_half_away(-2.5) == -3
    assert round_half_away(0.49) == 0 and round_half_away(-0.51) == -1


def test_fault_flag_sends_sentinels_whatever_the_values():
    d = dict(OK_AIR)
    d["faults"] = {"thp": True, "pm": False, "co2": False}
    b = air.encode(d)
    assert b[0] == 0x11 and b[1:6] == unhex("8000ffffff")


def test_out_of_range_reading_becomes_absent_not_clamped():
    d = dict(OK_AIR)
    d["temperature"] = 91.0  # outside the codec's range: no plausible number goes out
    d["pm2_5"] = float("nan")
    b = air.encode(d)
    assert b[1:3] == b"\x80\x00" and b[6:8] == b"\xff\xff"
    w = {
        "alarm": False,
        "alarm_level": 0,
        "rising_fast": False,
        "level": 40000,
        "distance": -3,
        "water_temperature": None,
        "battery": 9999,
    }
    # the battery above its range is a reading (sent as the top value, 5080 mV), not an absent one
    assert water.encode(w) == unhex("10 8000 ffff 8000 fe")


def test_counters_saturate():
    d = {
        "valve_open": False,
        "enabled": True,
        "mode": "auto",
        "actuations": 1000,
        "open_time": 99999,
        "water_used": 7000.0,
        "water_today": 1.0,
        "ambient_temperature": 20.0,
        "on_threshold": 30.0,
        "off_threshold": 28.0,
        "interlock": {"reservoir_low": False, "budget": False, "max_on_time": False},
        "faults": {"temperature": False, "valve": False, "flow_meter": False},
    }
    b = cooling.encode(d)
    assert b[2] == 255 and b[3:5] == b"\xff\xff" and b[5:7] == unhex("fffe")


def test_bad_uplink_data_raises():
    raises(
        PayloadError,
        water.encode,
        {
            "alarm": False,
            "alarm_level": 4,
            "rising_fast": False,
            "level": 1,
            "distance": 1,
            "water_temperature": 1.0,
            "battery": 3000,
        },
    )
    raises(PayloadError, temperature.encode, {"probes": [20.0] * 16, "humidity": None, "battery": None})
    raises(PayloadError, air.encode, OK_AIR, 7)
    raises(
        PayloadError,
        common.encode_status,
        {"firmware": "1.2", "reset_cause": "power_on", "uptime": 0, "battery": None, "interval": 600},
    )
    raises(
        PayloadError,
        common.encode_status,
        {"firmware": "1.2.3", "reset_cause": "lightning", "uptime": 0, "battery": None, "interval": 600},
    )


def test_bad_downlinks_are_refused():
    bad = [
        (10, "200384"),  # version 2
        (10, "1003"),  # truncated
        (10, "10038400"),  # too long
        (10, "10003b"),  # 59 s: below the minimum interval
        (10, "10a8c1"),  # above the maximum
        (11, "1000"),
        (20, "10011d012c"),  # off above on
        (20, "10012c012c"),  # off == on: no hysteresis
        (20, "100259ff38"),  # on 60.1 Cel
        (21, "100009"),  # 9 s
        (22, "100000"),  # budget 0 L
        (23, "10010000"),  # open without a time-to-live
        (23, "1001003b"),  # 59 s ttl
        (23, "10020001"),  # auto with a ttl
        (23, "10030384"),  # unknown state
        (24, "10"),
        (24, ""),
    ]
    for fport, hx in bad:
        raises(PayloadError, cooling.decode_down, fport, unhex(hx))
    assert cooling.decode_down(99, unhex("10")) is None  # not a port of this node
    assert water.decode_down(20, unhex("10012c011d")) is None  # valve commands mean nothing to it
