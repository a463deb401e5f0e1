"""The temperature node: several DS18B20 probes in stable order, SHT31 humidity, faults as nulls."""

from sim_sensors import SimDS18B20

from nodetest import World


def _probes(u):
    n = u.payload[0] & 0x0F
    out = []
    for i in range(n):
        v = (u.payload[1 + 2 * i] << 8) | u.payload[2 + 2 * i]
        out.append(None if v == 0x8000 else (v - 0x10000 if v & 0x8000 else v) / 10)
    return out


def test_two_probes_and_humidity():
    w = World("temperature")
    w.io.sim["probe0"].temp_c = 24.1
    w.io.sim["probe1"].temp_c = 31.7
    w.io.sim["sht31"].humidity = 38.0
    w.run_for(60000)
    u = w.uplinks(1)[0]
    assert _probes(u) == [24.1, 31.7]
    assert u.payload[5] == 76  # 38.0 % in 0.5 % steps


def test_probe_faults_are_nulls_in_their_place():
    w = World("temperature", {"sensors": {"probes": 3}})
    w.io.sim["probe0"].loses_power = True  # 85.0 C power-on value
    w.io.sim["probe2"].corrupt_crc = 1
    w.io.sim["sht31"].present = False
    w.run_for(60000)
    u = w.uplinks(1)[0]
    assert _probes(u) == [None, 21.0, None]
    assert u.payload[7] == 0xFF
    assert any("85.0" in line for line in w.log) and any("CRC" in line for line in w.log)


def test_missing_probe_found_when_plugged_in():
    w = World("temperature")
    w.io.sim["probe1"].present = False
    w.run_for(60000)
    assert _probes(w.uplinks(1)[0]) == [20.0, None]
    w.io.sim["probe1"].present = True
    w.run_for(900000)
    assert _probes(w.uplinks(1)[-1]) == [20.0, 21.0]


def test_order_follows_rom_codes_not_discovery():
    w = World("temperature")
    ow = w.io.ow_bus
    late = SimDS18B20(w.clock, temp_c=5.0, serial=b"\x00\x00\x00\x00\x00\x01")  # lowest ROM
    ow.devices.insert(1, late)
    w.node.app.n = 3
    w.run_for(60000)
    assert _probes(w.uplinks(1)[0]) == [5.0, 20.0, 21.0]
