"""Helpers for the node app tests: a simulated network, radio, store and clock around real node code."""

from fakeclock import FakeClock
from memstore import MemStore
from simnet import SimNetwork
from simnode import make_node
from simradio import SimRadio

from mptest import unhex

APP_KEY = "000102030405060708090a0b0c0d0e0f"
LORAWAN = {
    "activation": "otaa",
    "dev_eui": "70b3d57ed0001234",
    "join_eui": "70b3d57ed0000000",
    "app_key": APP_KEY,
}


class World:
    """Clock, radio, network server and flash of one simulated node."""

    def __init__(self, app, cfg=None, answer_joins=True):
        self.clock = FakeClock(1000)
        self.radio = SimRadio(self.clock)
        self.net = SimNetwork(self.radio, app_key=unhex(APP_KEY))
        self.net.answer_joins = answer_joins
        self.store = MemStore()
        self.app = app
        self.cfg = {"lorawan": LORAWAN, "interval_s": 900}
        if cfg:
            self.cfg.update(cfg)
        self.log = []
        self.node, self.io = make_node(
            app, self.clock, self.radio, self.store, self.cfg, console=self.log.append
        )

    def reset(self, reset_cause="watchdog"):
        """A reset of the same node: new code objects, same chips, pins and flash."""
        self.node, self.io = make_node(
            self.app,
            self.clock,
            self.radio,
            self.store,
            self.cfg,
            console=self.log.append,
            reset_cause=reset_cause,
            io=self.io,
        )
        return self.node

    def run_for(self, ms, max_steps=100000):
        """Step the node until `ms` of clock time passed, sleeping as it asks."""
        end = self.clock.now_ms() + ms
        n = 0
        while self.clock.now_ms() < end and n < max_steps:
            wait = self.node.step()
            n += 1
            self.clock.sleep_ms(min(wait, end - self.clock.now_ms()) if wait else 0)
        return n

    def uplinks(self, fport=None):
        return [u for u in self.net.data_uplinks() if fport is None or u.fport == fport]
