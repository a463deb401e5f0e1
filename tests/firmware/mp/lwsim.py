"""Shared set-up for the MAC tests: a device on a fake clock + simulated radio + mini network."""

import random

from fakeclock import FakeClock
from lw.mac import Mac
from memstore import MemStore
from simnet import SimNetwork
from simradio import SimRadio

APP_KEY = bytes(range(1, 17))
DEV_EUI = 0x70B3D57ED0000001
JOIN_EUI = 0x70B3D57ED00000AA
NWK_S_KEY = bytes(range(0x20, 0x30))
APP_S_KEY = bytes(range(0x40, 0x50))
ABP_ADDR = 0x26011BDA
DAY_MS = 86400000


def otaa_cfg(**kw):
    cfg = {"activation": "otaa", "dev_eui": DEV_EUI, "join_eui": JOIN_EUI, "app_key": APP_KEY}
    cfg.update(kw)
    return cfg


def abp_cfg(**kw):
    cfg = {"activation": "abp", "dev_addr": ABP_ADDR, "nwk_s_key": NWK_S_KEY, "app_s_key": APP_S_KEY}
    cfg.update(kw)
    return cfg


class Rig:
    """clock, radio, net, store and a MAC; reboot() makes a new MAC on the same store and air."""

    def __init__(self, cfg=None, seed=7, store=None, start_ms=1000):
        random.seed(seed)
        self.cfg = cfg if cfg is not None else otaa_cfg()
        self.clock = FakeClock(start_ms)
        self.radio = SimRadio(self.clock)
        if self.cfg.get("activation") == "abp":
            self.net = SimNetwork(self.radio, dev_addr=ABP_ADDR, nwk_s_key=NWK_S_KEY, app_s_key=APP_S_KEY)
        else:
            self.net = SimNetwork(self.radio, app_key=APP_KEY)
        self.store = store if store is not None else MemStore()
        self.mac = Mac(self.radio, self.clock, self.store, self.cfg)

    def reboot(self, cfg=None):
        self.mac = Mac(self.radio, self.clock, self.store, cfg if cfg is not None else self.cfg)
        return self.mac

    def joined(self):
        r = self.mac.join()
        assert r.status == "joined", r
        return self

    def send(self, fport=1, payload=b"\x01", confirmed=False):
        """Send, waiting as long as the duty cycle requires (tests care about frames, not waits)."""
        return self.mac.send(fport, payload, confirmed, max_wait_ms=DAY_MS)
