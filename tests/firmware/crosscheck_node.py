"""The firmware side of tests/firmware/test_crosscheck_host.py, run by cpyrunner.py --script.

Reads a scenario (JSON file named by $HAVEL_XCHECK_IN) whose join-accept and downlinks were built by
the host frame layer, drives the real MAC through it on a simulated radio, and prints one JSON
object: every frame the node put on the air, and what it made of the host's frames.
"""

import binascii
import json
import os
import random

from fakeclock import FakeClock
from lw import mac as lwmac
from lw import region
from memstore import MemStore
from simradio import SimRadio

DAY_MS = 86400000


def hx(b):
    return binascii.hexlify(bytes(b)).decode()


def main():
    with open(os.environ["HAVEL_XCHECK_IN"]) as f:
        sc = json.load(f)
    random.seed(3)
    clock = FakeClock(1000)
    radio = SimRadio(clock)
    downs = {int(k): binascii.unhexlify(v) for k, v in sc["downlinks"].items()}
    state = {"n": 0}

    def on_uplink(frame, freq, sf, bw, start, end):
        i = state["n"]
        state["n"] += 1
        if i == 0:
            radio.schedule(binascii.unhexlify(sc["join_accept"]), freq, sf, bw, end + 5000)
        elif i in downs:
            # RX1: same frequency, data rate lowered by the RX1DROffset the join-accept set
            dr = next(d for d in range(len(region.DR_SF)) if (region.DR_SF[d], region.DR_BW[d]) == (sf, bw))
            rdr = region.rx1_dr(dr, sc["rx1_dr_offset"])
            rsf, rbw = region.DR_SF[rdr], region.DR_BW[rdr]
            radio.schedule(downs[i], freq, rsf, rbw, end + 1000)

    radio.on_uplink = on_uplink
    cfg = {
        "activation": "otaa",
        "dev_eui": sc["dev_eui"],
        "join_eui": sc["join_eui"],
        "app_key": sc["app_key"],
        "adr": False,
    }
    mac = lwmac.Mac(radio, clock, MemStore(), cfg)
    out = {
        "join": mac.join().status,
        "dev_addr": mac.dev_addr,
        "nwk_s_key": hx(mac._nwk_s_key),
        "app_s_key": hx(mac._app_s_key),
        "channels": [c[1] for c in mac.enabled_channels()],
        "rx1_dr_offset": mac.rx1_dr_offset,
        "rx2_dr": mac.rx2_dr,
        "rx_delay_ms": mac.rx_delay_ms,
        "results": [],
    }
    for step in sc["steps"]:
        if "set_fcnt_up" in step:
            mac.fcnt_up = mac.fcnt_up_limit = step["set_fcnt_up"]
            continue
        if step.get("mac_only"):
            r = mac.send_mac(max_wait_ms=DAY_MS)
        else:
            r = mac.send(
                step["fport"],
                binascii.unhexlify(step["payload"]),
                step.get("confirmed", False),
                max_wait_ms=DAY_MS,
            )
        out["results"].append(
            {
                "status": r.status,
                "fcnt": r.fcnt,
                "downlink": None if r.downlink is None else [r.downlink[0], hx(r.downlink[1])],
                "acked": r.acked,
            }
        )
    out["uplinks"] = [hx(u[0]) for u in radio.uplinks]
    out["link_check"] = mac.link_check
    out["max_dcycle"] = mac.dc.max_dcycle
    print(json.dumps(out))


main()
