"""A whole simulated node for host tests and the gateway's simulator (never flashed).

    from simnode import make_node
    node, io = make_node("air", clock, radio, store, cfg)
    ms = node.step()            # one wake-up of the real node code; sleep ms on the fake clock
    io.sim["bme280"].temp_c = 31.0   # change the simulated world, script faults

`io` is a SimIO: the board I/O the apps' build() functions ask for (I2C, UART, 1-Wire, ultrasonic,
battery ADC, valve and reservoir pins), backed by fake buses with simulated chips on them.
"""

from apps import node as nodemod
from fake_buses import FakeADC, FakeI2C, FakeOneWire, FakePin, FakeUART
from sim_sensors import SimBME280, SimDS18B20, SimJSNSR04T, SimSCD41, SimSDS011, SimSeesawSoil, SimSHT31

# the names of control/valve.py's R_* reasons, by value, for the simulator's valve events (a board
# never needs them: host only)
VALVE_REASON_NAMES = (
    "boot",
    "cool",
    "heat",
    "city_rule",
    "temp_invalid",
    "temp_stale",
    "reservoir_low",
    "budget_exhausted",
    "max_on_time",
    "min_off_time",
    "override_open",
    "override_closed",
    "disabled",
    "flush",
)


class Retained:
    """RAM that survives deep sleep (ESP32 RTC memory), for the host."""

    def __init__(self):
        self.data = b""

    def read(self):
        return self.data

    def write(self, b):
        self.data = bytes(b)


class SimIO:
    """Board I/O backed by fakes. `sim` maps names to the simulated chips and pins."""

    def __init__(self, clock, battery_mv=3700):
        self.clock = clock
        self.i2c_bus = FakeI2C(clock)
        self.uart_bus = FakeUART(clock)
        self.ow_bus = FakeOneWire(clock)
        self.valve_pin = FakePin(clock, 0)
        self.reservoir_pin = FakePin(clock, 0)  # switch closed (level ok) pulls to 0
        self.ultra = None
        self.adc = FakeADC(int(battery_mv / 2.0 / 3300 * 65535)) if battery_mv else None
        self.sim = {}

    def set_battery_mv(self, mv):
        self.adc.raw = int(mv / 2.0 / 3300 * 65535)

    # the interface apps' build() functions use (apps/boardboot.py BoardIO is the real one)
    def i2c(self):
        return self.i2c_bus

    def uart(self):
        return self.uart_bus

    def onewire(self):
        return self.ow_bus

    def ultrasonic(self):
        if self.ultra is None:
            self.ultra = SimJSNSR04T(self.clock)
            self.sim["jsn-sr04t"] = self.ultra
        return self.ultra.trig, self.ultra.echo, self.ultra.time_pulse_us

    def battery(self):
        if self.adc is None:
            return None
        return self.adc, 2.0, 3300, None, 1

    def valve(self):
        return self.valve_pin, 1

    def reservoir(self):
        return self.reservoir_pin, 0

    # simulated chips
    def add_i2c(self, name, chip):
        self.i2c_bus.add(chip)
        self.sim[name] = chip
        return chip

    def add_onewire(self, name, chip):
        self.ow_bus.devices.append(chip)
        self.sim[name] = chip
        return chip

    def add_uart(self, name, chip):
        self.uart_bus.device = chip
        self.sim[name] = chip
        return chip


def populate(io, app, cfg=None):
    """Attach the chips a default node of `app` has (what config.json's sensors select)."""
    s = (cfg or {}).get("sensors", {})
    c = io.clock
    if app == "air":
        io.add_i2c("bme280", SimBME280(c, addr=s.get("bme280_addr", 0x76)))
        io.add_uart("sds011", SimSDS011(c))
        if s.get("co2") == "scd41":
            io.add_i2c("scd41", SimSCD41(c))
    elif app == "water":
        io.ultrasonic()
        io.ultra.air_temp_c = 12.0  # the air over the water is near the water temperature
        io.add_onewire("ds18b20", SimDS18B20(c, temp_c=12.0))
    elif app == "temperature":
        for i in range(s.get("probes", 2)):
            chip = SimDS18B20(c, temp_c=20.0 + i, serial=bytes((1, 2, 3, 4, 5, 0x10 + i)))
            io.add_onewire("probe%d" % i, chip)
        io.add_i2c("sht31", SimSHT31(c, addr=s.get("sht31_addr", 0x44)))
    elif app == "cooling":
        if s.get("ambient", "ds18b20") == "sht31":
            io.add_i2c("sht31", SimSHT31(c, addr=s.get("sht31_addr", 0x44)))
        else:
            io.add_onewire("ds18b20", SimDS18B20(c, temp_c=24.0))
    elif app == "soil":
        for i, addr in enumerate((0x36, 0x37, 0x38)):  # 10, 30, 60 cm
            io.add_i2c("soil%d" % i, SimSeesawSoil(c, addr=addr, capacitance=500 + 100 * i))
        if s.get("temperature", "ds18b20") == "ds18b20":
            io.add_onewire("ds18b20", SimDS18B20(c, temp_c=12.0))
    return io


def make_node(app, clock, radio, store, cfg, console=None, reset_cause="power_on", io=None, retain=None):
    """Build the real node code for `app` on simulated hardware.

    cfg: the config.json dict (needs "lorawan" and "interval_s"; "sensors"/"thresholds" optional).
    Pass the same `io` and `store` again to simulate a reset of the same node. Returns (node, io).
    """
    if io is None:
        io = populate(SimIO(clock), app, cfg)
    full = {"interval_s": 900, "sensors": {}, "thresholds": {}}
    full.update(cfg)
    full["app"] = app
    node = nodemod.build(
        full, io, radio, clock, store, console=console, reset_cause=reset_cause, retain=retain
    )
    return node, io
