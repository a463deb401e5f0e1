"""Runs every node app on simulated hardware and network and prints its uplinks as JSON (one line).

Run by tests/firmware/test_node_codecs.py through cpyrunner.py --script, so the host codecs can
decode what the real node code sent. Each app gets a scripted world: values to find in the decode.
"""

import json

from apps import APPS
from fakeclock import FakeClock
from memstore import MemStore
from simnet import SimNetwork
from simnode import make_node
from simradio import SimRadio

KEY = bytes(range(16))
LW = {
    "activation": "otaa",
    "dev_eui": "70b3d57ed0001234",
    "join_eui": "70b3d57ed0000000",
    "app_key": "000102030405060708090a0b0c0d0e0f",
}
CFG = {
    "air": {"sensors": {"co2": "scd41"}},
    "water": {"thresholds": {"zero_mm": 3000, "levels_cm": [200, 250, 280]}},
    "temperature": {"sensors": {"probes": 3}},
    "cooling": {"thresholds": {"on_c": 30.0, "off_c": 28.0, "min_off_s": 60, "reservoir": True}},
    "soil": {"sensors": {"dry": 300, "wet": 1000}},
}


def world(app, io):
    s = io.sim
    if app == "air":
        s["bme280"].temp_c, s["bme280"].humidity, s["bme280"].pressure_hpa = 23.4, 61.5, 1001.7
        s["sds011"].pm25, s["sds011"].pm10 = 12.3, 20.5
        s["scd41"].co2_ppm = 812
    elif app == "water":
        s["jsn-sr04t"].distance_mm = 900
    elif app == "temperature":
        s["probe0"].temp_c, s["probe1"].temp_c = 24.1, 31.7
        s["probe2"].loses_power = True
        s["sht31"].humidity = 38.0
    elif app == "cooling":
        s["ds18b20"].temp_c = 33.0
    elif app == "soil":
        s["soil0"].percent, s["soil1"].percent, s["soil2"].percent = 12.5, 33.0, 47.5
        s["ds18b20"].temp_c = 16.5


out = {}
for app in APPS:  # every app the firmware has (a kind without a world here fails: KeyError)
    clock = FakeClock(1000)
    radio = SimRadio(clock)
    net = SimNetwork(radio, app_key=KEY)
    cfg = {"lorawan": LW, "interval_s": 600}
    cfg.update(CFG[app])
    node, io = make_node(app, clock, radio, MemStore(), cfg)
    world(app, io)
    end = clock.now_ms() + 3600 * 1000
    while clock.now_ms() < end:
        clock.sleep_ms(node.step() or 0)
    out[app] = [
        {"fport": u.fport, "payload": u.payload.hex(), "confirmed": u.confirmed} for u in net.data_uplinks()
    ]
print("UPLINKS " + json.dumps(out))
