"""Board glue used only while the node boots: board.json turned into bus and pin objects
(BoardIO, the same interface host/simnode.py's SimIO offers the simulator), the config check,
the safe idle on a bad config, the radio driver and the node itself. apps/board.py's run() loads
this module for the boot and releases it once the node runs, so its code is not in RAM then."""

import sys

RESET_CAUSES = (
    ("PWRON_RESET", "power_on"),
    ("WDT_RESET", "watchdog"),
    ("DEEPSLEEP_RESET", "deep_sleep"),
    ("SOFT_RESET", "software"),
    ("HARD_RESET", "pin"),
)


def reset_cause(m):
    """machine.reset_cause() as the status payload's name."""
    try:
        rc = m.reset_cause()
    except AttributeError:
        return "power_on"
    for const_name, name in RESET_CAUSES:
        if getattr(m, const_name, None) == rc:
            return name
    return "power_on"


class BoardIO:
    """Buses and pins of the board, created on first use (a node opens only what its app needs)."""

    def __init__(self, m, board):
        self.m = m
        self.b = board
        self._i2c = self._uart = self._ow = None
        vext = board.get("power", {}).get("vext")
        if vext:
            m.Pin(vext["pin"], m.Pin.OUT, value=vext["active"])  # sensor supply on

    def _pin(self, n, mode=None, pull=None, value=None):
        m = self.m
        if mode is None:
            mode = m.Pin.IN
        if value is not None:
            return m.Pin(n, mode, value=value)
        if pull is not None:
            return m.Pin(n, mode, pull)
        return m.Pin(n, mode)

    def i2c(self):
        if self._i2c is None:
            c = self.b["i2c"]
            # a bus timeout (us) keeps a hanging sensor from hanging the node
            m = self.m
            self._i2c = m.I2C(
                c["id"], scl=m.Pin(c["scl"]), sda=m.Pin(c["sda"]), freq=c["freq"], timeout=50000
            )
        return self._i2c

    def uart(self):
        if self._uart is None:
            c = self.b["uart"]
            self._uart = self.m.UART(
                c["id"], baudrate=c["baudrate"], tx=self.m.Pin(c["tx"]), rx=self.m.Pin(c["rx"]), timeout=1000
            )
        return self._uart

    def onewire(self):
        if self._ow is None:
            import onewire

            self._ow = onewire.OneWire(self.m.Pin(self.b["onewire"]))
        return self._ow

    def ultrasonic(self):
        u = self.b["ultrasonic"]
        return self._pin(u["trig"], self.m.Pin.OUT, value=0), self._pin(u["echo"]), self.m.time_pulse_us

    def battery(self):
        c = self.b.get("battery")
        if not c:
            return None
        en = None
        level = c.get("enable_active", 1)
        if c.get("enable") is not None:
            en = self._pin(c["enable"], self.m.Pin.OUT, value=1 - level)
        return self.m.ADC(self.m.Pin(c["adc"])), c["divider"], c["vref_mv"], en, level

    def valve(self):
        v = self.b["valve"]
        return self._pin(v["pin"], self.m.Pin.OUT, value=1 - v["active"]), v["active"]

    def reservoir(self):
        r = self.b.get("reservoir")
        if not r:
            return None
        pull = self.m.Pin.PULL_UP if r.get("pull") == "up" else None
        return self._pin(r["pin"], self.m.Pin.IN, pull), r["ok_level"]


def load_config(config_path="config.json", board_path="board.json"):
    """config.load() at boot: ((cfg, board), None), or (None, what is wrong). config.py is needed
    only here: when this call loaded it, it leaves memory afterwards (its bytecode and tables are
    freed for the node)."""
    mine = "config" not in sys.modules
    import config

    try:
        return config.load(config_path, board_path), None
    except config.ConfigError as e:
        return None, str(e)
    finally:
        del config
        if mine:
            sys.modules.pop("config", None)


def safe_idle(reason, console, valve_pin, valve_active, clock, rounds):
    import config  # the error path: imported again, nothing else runs after it

    config.safe_idle(reason, console, valve_pin, valve_active, clock, rounds=rounds)


def make_radio(m, r, clock):
    """The radio driver for board.json's radio section."""
    spi_c = r["spi"]
    spi = m.SPI(
        spi_c["id"],
        baudrate=spi_c["baudrate"],
        sck=m.Pin(spi_c["sck"]),
        mosi=m.Pin(spi_c["mosi"]),
        miso=m.Pin(spi_c["miso"]),
    )
    nss = m.Pin(r["nss"], m.Pin.OUT, value=1)
    reset = m.Pin(r["reset"], m.Pin.OUT, value=1)
    if r["chip"] == "sx1262":
        busy = m.Pin(r["busy"], m.Pin.IN)
        dio1 = m.Pin(r["dio1"], m.Pin.IN)
        return _radio_module("sx1262").SX1262(
            spi,
            nss,
            reset,
            busy,
            dio1,
            clock,
            tcxo_mv=r.get("tcxo_mv", 0),
            rf_switch_dio2=r.get("dio2_rf_switch", False),
        )
    return _radio_module("sx1276").SX1276(spi, nss, reset, m.Pin(r["dio0"], m.Pin.IN), clock)


def _radio_module(chip):
    # imported by name: a node bundles (and loads) only its own radio driver (firmware/bundle.json)
    return getattr(__import__("radio." + chip), chip)


def build(m, clock, console, cfg, board, store_dir, retain):
    """The node for a checked config on this board (ValueError: the config does not fit it)."""
    from lw.store import FileStore

    from apps import node as nodemod

    io = BoardIO(m, board)
    if board.get("power", {}).get("pmu"):
        from apps import pmu

        pmu.enable_lora_rail(io.i2c())  # T-Beam: the radio has no supply until this
        clock.sleep_ms(10)
    radio = make_radio(m, board["radio"], clock)
    return nodemod.build(
        cfg,
        io,
        radio,
        clock,
        FileStore(store_dir),
        console=console,
        reset_cause=reset_cause(m),
        retain=retain,
        on_reboot=m.reset,
    )
