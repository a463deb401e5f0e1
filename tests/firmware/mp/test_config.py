"""config.json / board.json checks, and the safe idle state of a node with a bad configuration:
it says what is wrong on the console, sends nothing and never runs the valve."""

import json

import config
from apps import board as boardglue
from fake_buses import FakeI2C, FakeMachine, FakePin, FakeUART
from fake_sx1262 import FakeSX1262
from fakeclock import FakeClock
from sim_sensors import SimBME280, SimSDS011
from simnet import SimNetwork

from mptest import raises

BOARD = {
    "name": "pico_sx1262",
    "mcu": "rp2040",
    "radio": {
        "chip": "sx1262",
        "spi": {"id": 1, "sck": 10, "mosi": 11, "miso": 12, "baudrate": 8000000},
        "nss": 3,
        "reset": 15,
        "busy": 2,
        "dio1": 20,
        "dio2_rf_switch": True,
        "tcxo_mv": 1800,
    },
    "i2c": {"id": 0, "sda": 4, "scl": 5, "freq": 100000},
    "uart": {"id": 0, "tx": 0, "rx": 1, "baudrate": 9600},
    "onewire": 22,
    "ultrasonic": {"trig": 6, "echo": 7},
    "battery": None,
    "valve": {"pin": 16, "active": 1},
    "reservoir": {"pin": 17, "pull": "up", "ok_level": 0},
    "deep_sleep": False,
}
LW = {
    "activation": "otaa",
    "dev_eui": "70b3d57ed0001234",
    "join_eui": "70b3d57ed0000000",
    "app_key": "000102030405060708090a0b0c0d0e0f",
}
GOOD = {
    "board": "pico_sx1262",
    "app": "cooling",
    "lorawan": LW,
    "interval_s": 600,
    "thresholds": {"on_c": 30.0, "off_c": 28.0},
}
DIR = "/tmp"


def _with(**changes):
    c = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def test_good_config_gets_defaults():
    c = config.check_config(GOOD, BOARD)
    assert c["interval_s"] == 600 and c["deep_sleep"] is False and c["sensors"] == {}
    b = config.check_board(json.loads(json.dumps(BOARD)))
    assert b["valve"]["pin"] == 16


def test_each_bad_config_names_the_problem():
    cases = [
        (_with(app="weather"), "app"),
        (_with(board=None), "board"),
        (_with(board="ttgo_lora32"), "board.json"),
        (_with(lorawan=None), "lorawan"),
        (_with(lorawan={"activation": "otaa", "dev_eui": "00"}), "join_eui"),
        (_with(lorawan={"activation": "abp", "dev_addr": "01"}), "nwk_s_key"),
        (_with(lorawan={"activation": "lora"}), "activation"),
        (_with(interval_s=30), "interval_s"),
        (_with(interval_s="600"), "interval_s"),
        (_with(deep_sleep=True), "deep_sleep"),  # the Pico cannot
        (_with(sensors={"ambient": "bme280"}), "sensors.ambient"),
        (_with(sensors={"co2": "scd41"}), "co2"),  # an air setting on a cooling node
        (_with(thresholds={"on_c": 28.0, "off_c": 30.0}), "off_c"),
        (_with(app="water", thresholds={}), "zero_mm"),
        (_with(sensors=[1]), "sensors"),
    ]
    for cfg, word in cases:
        e = raises(config.ConfigError, config.check_config, cfg, BOARD)
        assert word in str(e), (word, str(e))


def test_bad_board_definitions():
    for key in ("radio", "valve", "name"):
        b = json.loads(json.dumps(BOARD))
        del b[key]
        assert key in str(raises(config.ConfigError, config.check_board, b))
    b = json.loads(json.dumps(BOARD))
    b["radio"]["chip"] = "rfm95"
    raises(config.ConfigError, config.check_board, b)
    b = json.loads(json.dumps(BOARD))
    b["valve"]["active"] = 2
    raises(config.ConfigError, config.check_board, b)


def test_load_missing_and_unreadable_files():
    files = {"board.json": json.dumps(BOARD)}

    def read(path):
        if path not in files:
            raise OSError(2)
        return files[path]

    e = raises(config.ConfigError, config.load, "config.json", "board.json", read)
    assert "config.json not found" in str(e)
    files["config.json"] = "{not json"
    assert "not valid JSON" in str(raises(config.ConfigError, config.load, "config.json", "board.json", read))
    files["config.json"] = "[1, 2]"
    assert "object" in str(raises(config.ConfigError, config.load, "config.json", "board.json", read))
    files["config.json"] = json.dumps(GOOD)
    cfg, brd = config.load("config.json", "board.json", read)
    assert cfg["app"] == "cooling" and brd["name"] == "pico_sx1262"


def test_safe_idle_holds_the_valve_closed_and_says_why():
    clock = FakeClock()
    pin = FakePin(clock, 1)  # as if left open
    lines = []
    config.safe_idle("config.json not found", lines.append, pin, 1, clock, repeat_ms=1000, rounds=3)
    assert pin.value() == 0 and [v for _, v in pin.history] == [0]
    assert len(lines) == 6 and "config.json not found" in lines[0] and "valve closed" in lines[1]
    assert clock.now_ms() == 3000


def _write(name, text):
    with open(DIR + "/" + name, "w") as f:
        f.write(text)


def _run_board(cfg_text, **fake):
    _write("havel_board.json", json.dumps(BOARD))
    if cfg_text is None:
        try:
            import os

            os.remove(DIR + "/havel_config.json")
        except OSError:
            pass
    else:
        _write("havel_config.json", cfg_text)
    clock = fake.pop("clock", None) or FakeClock()
    chip = fake.pop("chip", None) or FakeSX1262(clock)
    pins = {3: chip.nss, 15: chip.reset, 2: chip.busy, 20: chip.dio1}
    m = FakeMachine(clock, radio_pins=pins, spi=chip.spi, **fake)
    lines = []
    try:
        node = boardglue.run(
            m,
            clock,
            lines.append,
            idle_rounds=2,
            config_path=DIR + "/havel_config.json",
            board_path=DIR + "/havel_board.json",
            store_dir=DIR + "/havel_lw",
        )
    finally:
        _cleanup()
    return node, m, lines


def test_board_boot_with_missing_config_idles_with_valve_closed():
    node, m, lines = _run_board(None)
    assert node is None
    valve = m.pins[16]
    assert valve.mode == m.Pin.OUT and valve.value() == 0
    assert 1 not in [v for _, v in valve.history]  # never driven open
    assert "havel_config.json not found" in lines[0]
    assert not m.wdts  # nothing else started
    assert not m.pins.get(3)  # the radio was never touched


def test_board_boot_with_invalid_config_idles():
    node, m, lines = _run_board(json.dumps(_with(thresholds={"on_c": 20.0, "off_c": 25.0})))
    assert node is None and m.pins[16].value() == 0 and "off_c" in lines[0]
    node, m, lines = _run_board(json.dumps(_with(app="air", thresholds=None, lorawan=dict(LW, app_key="zz"))))
    assert node is None and "app_key" in lines[0] and not m.wdts  # (an air node: no valve pin)


def test_board_boot_runs_the_node():
    # main.py's path on a simulated board: real radio driver on the SX1262 simulator, real network
    # exchange, sensors on fake buses; the fake machine stops the endless loop after a few sleeps
    _cleanup()
    clock = FakeClock()
    chip = FakeSX1262(clock)
    net = SimNetwork(chip, app_key=bytes(range(16)))
    i2c = FakeI2C(clock, [SimBME280(clock)])
    uart = FakeUART(clock, SimSDS011(clock))
    cfg = _with(app="air", thresholds=None)
    node, m, lines = _run_board(json.dumps(cfg), clock=clock, chip=chip, i2c=i2c, uart=uart, max_sleeps=200)
    assert node is not None and node.mac.joined
    assert [u.fport for u in net.data_uplinks()][:2] == [2, 1]
    assert m.wdts and m.wdts[0].feeds > 0
    assert m.resets == 1 and "StopBoard" in lines[-1]  # the stop is handled like any crash: reset
    assert 16 not in m.pins  # an air node leaves the cooling node's valve pin alone


def _cleanup():
    import os

    for name in (
        "havel_config.json",
        "havel_board.json",
        "havel_lw/lwstate.a",
        "havel_lw/lwstate.b",
        "havel_lw/node.a",
        "havel_lw/node.b",
        "havel_lw/valve.a",
        "havel_lw/valve.b",
        "havel_lw/valvecfg.a",
        "havel_lw/valvecfg.b",
    ):
        try:
            os.remove(DIR + "/" + name)
        except OSError:
            pass
    try:
        os.rmdir(DIR + "/havel_lw")
    except OSError:
        pass
