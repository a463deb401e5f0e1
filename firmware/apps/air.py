"""Air-quality node: BME280 (T, RH, p), SDS011 (PM2.5, PM10), optional SCD41 (CO2), battery."""

from payload import air as codec

from apps.base import App, make_battery


class AirApp(App):
    name = "air"

    def __init__(self, clock, thp=None, pm=None, co2=None, battery=None):
        App.__init__(self, clock, battery)
        self.thp = thp
        self.pm = pm
        self.co2 = co2

    def report(self, now_ms):
        """Read every fitted sensor once; a failed one gives nulls and its fault flag."""
        self.errors = []
        t = h = p = pm25 = pm10 = co2 = None
        faults = {"thp": False, "pm": False, "co2": False}
        if self.thp is not None:
            r = self.thp.read()
            if r is None:
                faults["thp"] = True
                self._note(self.thp)
            else:
                t, p, h = r
        if self.pm is not None:
            r = self.pm.read()
            if r is None:
                faults["pm"] = True
                self._note(self.pm)
            else:
                pm25, pm10 = r
        if self.co2 is not None:
            r = self.co2.read()
            if r is None:
                faults["co2"] = True
                self._note(self.co2)
            else:
                co2 = r[0]
        d = {
            "temperature": t,
            "humidity": h,
            "pressure": p,
            "pm2_5": pm25,
            "pm10": pm10,
            "battery": self.battery_mv(),
            "faults": faults,
        }
        if self.co2 is not None:
            d["co2"] = co2
        return d

    def encode(self, data):
        return codec.encode(data)


def build(cfg, io, clock, store=None):
    """The air app with the sensors config.json names, on the board's buses. Each driver is
    imported only when fitted: a node without it does not spend heap on its code."""
    s = cfg.get("sensors", {})
    thp = pm = co2 = None
    kind = s.get("thp", "bme280")
    if kind != "none":
        from sensors.bme280 import BME280

        thp = BME280(io.i2c(), clock, addr=s.get("bme280_addr", 0x76), need_humidity=kind == "bme280")
    if s.get("pm", "sds011") == "sds011":
        from sensors.sds011 import CONTINUOUS, QUERY, SDS011

        mode = CONTINUOUS if s.get("sds011_mode") == "continuous" else QUERY
        pm = SDS011(io.uart(), clock, mode=mode, warmup_ms=s.get("sds011_warmup_s", 30) * 1000)
    if s.get("co2", "none") == "scd41":
        from sensors.scd41 import SCD41

        co2 = SCD41(io.i2c(), clock)
    return AirApp(clock, thp, pm, co2, make_battery(io, clock))


def check_thresholds(th):
    """The air node has no thresholds."""
    if th:
        raise ValueError("the air app has no thresholds (got %s)" % ", ".join(sorted(th)))
