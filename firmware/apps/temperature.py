"""Temperature node: DS18B20 probes on one 1-Wire bus (probe 0 inside the cooling point, probe 1
the outside reference), optional SHT31 humidity, battery."""

from payload import temperature as codec
from sensors.crc import crc8_maxim
from sensors.ds18b20 import DS18B20

from apps.base import App, make_battery


def find_probes(ow):
    """ROMs of the DS18B20s on the bus, in ROM order (stable across boots), CRC-checked."""
    roms = []
    for rom in ow.scan():
        if rom[0] == 0x28 and crc8_maxim(rom, 0, 7) == rom[7]:
            roms.append(bytes(rom))
    roms.sort()
    return roms


class TemperatureApp(App):
    name = "temperature"

    def __init__(self, clock, ow=None, probes=2, humidity=None, battery=None, roms=None):
        App.__init__(self, clock, battery)
        self.ow = ow
        self.n = probes
        self.humidity = humidity
        self.drivers = []
        self._roms = roms

    def _ensure_drivers(self):
        # (re)scan when probes are missing: a probe plugged in later is found at the next report
        if self.ow is None or len(self.drivers) >= self.n:
            return
        roms = self._roms if self._roms is not None else find_probes(self.ow)
        known = [d._fixed_rom for d in self.drivers]
        for rom in roms:
            if rom not in known and len(self.drivers) < self.n:
                self.drivers.append(DS18B20(self.ow, self.clock, rom=rom))

    def report(self, now_ms):
        self.errors = []
        self._ensure_drivers()
        probes = []
        for i in range(self.n):
            if i < len(self.drivers):
                d = self.drivers[i]
                t = d.read()
                if t is None:
                    self._note(d)
                probes.append(t)
            else:
                probes.append(None)
                self.errors.append("ds18b20: probe %d not found on the 1-Wire bus" % i)
        h = None
        if self.humidity is not None:
            r = self.humidity.read()
            if r is None:
                self._note(self.humidity)
            else:
                h = r[1]
        return {"probes": probes, "humidity": h, "battery": self.battery_mv()}

    def encode(self, data):
        return codec.encode(data)


def build(cfg, io, clock, store=None):
    s = cfg.get("sensors", {})
    hum = None
    if s.get("humidity", "sht31") == "sht31":
        from sensors.sht31 import SHT31  # imported only when fitted

        hum = SHT31(io.i2c(), clock, addr=s.get("sht31_addr", 0x44))
    return TemperatureApp(clock, io.onewire(), s.get("probes", 2), hum, make_battery(io, clock))


def check_thresholds(th):
    """The temperature node has no thresholds."""
    if th:
        raise ValueError("the temperature app has no thresholds (got %s)" % ", ".join(sorted(th)))
