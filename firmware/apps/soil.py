"""Soil-moisture node for tree-watering advice: three seesaw capacitive probes at 10, 30 and 60 cm on the
I2C bus (addresses 0x36, 0x37, 0x38), a DS18B20 soil temperature probe, battery."""

from payload import soil as codec
from sensors.seesaw_soil import SeesawSoil

from apps.base import App, make_battery

ADDRS = (0x36, 0x37, 0x38)  # 10, 30, 60 cm


class SoilApp(App):
    name = "soil"

    def __init__(self, clock, probes, temperature=None, battery=None):
        App.__init__(self, clock, battery)
        self.probes = probes
        self.temperature = temperature

    def report(self, now_ms):
        self.errors = []
        m = [None, None, None]
        for i in range(3):
            p = self.probes[i]
            if p is not None:
                v = p.read()
                if v is None:
                    self._note(p)
                m[i] = v
        t = None
        if self.temperature is not None:
            t = self.temperature.read()
            if t is None:
                self._note(self.temperature)
        return {
            "moisture_10cm": m[0],
            "moisture_30cm": m[1],
            "moisture_60cm": m[2],
            "soil_temperature": t,
            "battery": self.battery_mv(),
        }

    def encode(self, data):
        return codec.encode(data)


def build(cfg, io, clock, store=None):
    s = cfg.get("sensors", {})
    dry = s.get("dry", 300)
    wet = s.get("wet", 1000)
    i2c = io.i2c()
    probes = [SeesawSoil(i2c, clock, addr=a, dry=dry, wet=wet) for a in ADDRS]
    t = None
    if s.get("temperature", "ds18b20") == "ds18b20":
        from sensors.ds18b20 import DS18B20  # imported only when fitted

        t = DS18B20(io.onewire(), clock)
    return SoilApp(clock, probes, t, make_battery(io, clock))


def check_thresholds(th):
    """The soil node has no thresholds (the watering advice is made on the platform)."""
    if th:
        raise ValueError("the soil app has no thresholds (got %s)" % ", ".join(sorted(th)))
