"""The air node end to end: sensors -> encoder -> MAC -> simulated network, status, downlinks."""

from payload import air

from nodetest import World


def test_joins_sends_status_then_readings():
    w = World("air")
    w.run_for(60000)
    assert w.node.mac.joined
    st = w.uplinks(2)
    assert len(st) == 1 and st[0].payload[0] == 0x10  # status after boot: power_on
    ups = w.uplinks(1)
    assert len(ups) == 1
    p = ups[0].payload
    assert len(p) == 11 and p[0] == 0x10  # no CO2 sensor: 11 bytes, no fault bits
    assert p[1:3] == b"\x00\xd2"  # 21.0 Cel from the simulated BME280
    assert w.io.sim["sds011"].sleeping  # fan asleep between readings


def test_interval_and_set_interval_downlink():
    w = World("air")
    w.run_for(60000)
    w.net.queue.append({"fport": 10, "payload": b"\x10\x02\x58"})  # 600 s
    w.run_for(900000)
    assert w.node.interval_s == 600
    n = len(w.uplinks(1))
    w.run_for(3600000)
    assert len(w.uplinks(1)) - n == 6
    w.reset()
    assert w.node.interval_s == 600  # persisted


def test_faulty_sensors_send_fault_flags_not_numbers():
    w = World("air", {"sensors": {"co2": "scd41"}})
    w.io.sim["bme280"].present = False
    w.io.sim["scd41"].corrupt_crc = 100
    w.run_for(60000)
    p = w.uplinks(1)[0].payload
    assert len(p) == 13 and p[0] == 0x10 | 0x08 | 0x04 | 0x01
    assert p[1:6] == b"\x80\x00\xff\xff\xff" and p[10:12] == b"\xff\xff"
    assert any("bme280" in line for line in w.log)


def test_bmp280_fitted_is_a_fault():
    w = World("air")
    w.io.sim["bme280"].chip_id = 0x58
    w.io.sim["bme280"].regs[0xD0] = 0x58
    w.run_for(60000)
    p = w.uplinks(1)[0].payload
    assert p[0] & 0x01 and p[1:3] == b"\x80\x00"
    assert any("BMP280" in line for line in w.log)


def test_request_status_and_reboot_downlinks():
    w = World("air")
    w.run_for(60000)
    w.net.queue.append({"fport": 11, "payload": b"\x10"})
    w.run_for(900000)
    assert len(w.uplinks(2)) == 2
    w.net.queue.append({"fport": 12, "payload": b"\x10\x05"})
    w.run_for(900000 + 10000)
    assert w.node.rebooted


def test_bad_downlink_is_ignored():
    w = World("air")
    w.run_for(60000)
    w.net.queue.append({"fport": 10, "payload": b"\x10\x00\x05"})  # 5 s: refused
    w.run_for(900000)
    assert w.node.interval_s == 900
    assert any("refused" in line for line in w.log)


def test_encoder_matches_report():
    w = World("air")
    d = w.node.app.report(w.clock.now_ms())
    assert (air.encode(d)[0] == 0x10 and d["battery"] == 3700) or abs(d["battery"] - 3700) <= 20


def test_hanging_i2c_bus_does_not_stop_the_node():
    w = World("air", {"sensors": {"co2": "scd41"}})
    w.io.i2c_bus.hang = True  # SDA held low: every I2C transfer times out
    w.run_for(60000)
    p = w.uplinks(1)[0].payload
    assert p[0] & 0x05 == 0x05  # BME280 and SCD41 faults, PM still measured
    assert p[6:8] == b"\x00\x7b"  # 12.3 ug/m3 from the SDS011 on the UART
    assert any("bus timeout" in line for line in w.log)
    w.io.i2c_bus.hang = False
    w.run_for(900000)
    assert w.uplinks(1)[-1].payload[0] == 0x18  # recovered: CO2 fitted, no faults
