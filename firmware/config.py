"""The node's configuration: config.json (written by provisioning) and board.json (a copy of
hw/boards/<board>.json), checked at boot.

config.json:
    board        name of the board definition ("heltec_wifi_lora_32_v3", ...): must match board.json
    app          one of apps.APPS ("air", "water", "temperature", "cooling", "soil")
    lorawan      the MAC settings (lw.mac.Mac): activation "otaa" with dev_eui, join_eui, app_key,
                 or "abp" with dev_addr, nwk_s_key, app_s_key (hex strings); optional MAC keys
    interval_s   reporting interval, 60..43200 s (downlink FPort 10 changes it)
    deep_sleep   optional bool (default: what the board allows)
    sensors      optional dict, per app (see APP_SENSORS)
    thresholds   optional dict, per app (water: alarm levels; cooling: the valve settings)

Anything missing or wrong raises ConfigError with a message that says what and how to fix it;
main.py then calls safe_idle(): the node does nothing but say so on the serial console, and the
valve output is held closed.
"""

import json

from apps import APPS  # the firmware's one list of node kinds (held to bundle.json and the host's kinds)
from micropython import const

INTERVAL_MIN_S = const(60)
INTERVAL_MAX_S = const(43200)

# sensor options per app: key -> allowed values (a tuple) or (type, lo, hi)
APP_SENSORS = {
    "air": {
        "thp": ("bme280", "bmp280", "none"),
        "bme280_addr": (int, 0x76, 0x77),
        "pm": ("sds011", "none"),
        "sds011_mode": ("query", "continuous"),
        "sds011_warmup_s": (int, 0, 60),
        "co2": ("scd41", "none"),
    },
    "water": {
        "distance": ("jsn-sr04t",),
        "pings": (int, 1, 15),
        "blind_mm": (int, 0, 1000),
        "max_mm": (int, 500, 10000),
        "water_temp": ("ds18b20", "none"),
    },
    "temperature": {"probes": (int, 0, 15), "humidity": ("sht31", "none"), "sht31_addr": (int, 0x44, 0x45)},
    "cooling": {"ambient": ("ds18b20", "sht31"), "sht31_addr": (int, 0x44, 0x45)},
    # the probes' capacitance in dry soil (0 %) and in water (100 %): wet is always above dry
    "soil": {"dry": (int, 0, 999), "wet": (int, 1000, 4095), "temperature": ("ds18b20", "none")},
}

BOARD_KEYS = (
    "name",
    "mcu",
    "radio",
    "i2c",
    "uart",
    "onewire",
    "ultrasonic",
    "battery",
    "valve",
    "deep_sleep",
)


class ConfigError(ValueError):
    """config.json or board.json is missing or wrong; the message says what to fix."""


def _read_json(path, what, read):
    try:
        text = read(path)
    except OSError:
        text = None
    if text is None:
        raise ConfigError(
            "%s not found (%s): provision the node with `havel flash`/`havel kit`" % (path, what)
        )
    try:
        d = json.loads(text)
    except ValueError:
        raise ConfigError("%s is not valid JSON: rewrite it with the provisioning tool" % path)
    if not isinstance(d, dict):
        raise ConfigError("%s must hold a JSON object" % path)
    return d


def _file_text(path):
    with open(path) as f:
        return f.read()


def _check_int(d, key, lo, hi, where):
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or v > hi:
        raise ConfigError("%s: '%s' must be a whole number in %d..%d, got %r" % (where, key, lo, hi, v))
    return v


def check_board(b):
    """Check a board definition (hw/boards/<board>.json); returns it. ConfigError names the key."""
    for k in BOARD_KEYS:
        if k not in b:
            raise ConfigError("board.json: key '%s' missing" % k)
    r = b["radio"]
    if not isinstance(r, dict) or r.get("chip") not in ("sx1262", "sx1276"):
        raise ConfigError("board.json: radio.chip must be 'sx1262' or 'sx1276'")
    pins = ("nss", "reset", "busy", "dio1") if r["chip"] == "sx1262" else ("nss", "reset", "dio0")
    for p in pins:
        _check_int(r, p, 0, 48, "board.json radio")
    v = b["valve"]
    if not isinstance(v, dict) or v.get("active") not in (0, 1):
        raise ConfigError("board.json: valve needs 'pin' and 'active' (0 or 1)")
    _check_int(v, "pin", 0, 48, "board.json valve")
    return b


def check_config(c, board=None):
    """Check config.json's content; returns a dict with defaults filled in. ConfigError otherwise."""
    app = c.get("app")
    if app not in APPS:
        raise ConfigError("config.json: 'app' must be one of %s, got %r" % (", ".join(APPS), app))
    name = c.get("board")
    if not isinstance(name, str) or not name:
        raise ConfigError("config.json: 'board' missing (e.g. \"heltec_wifi_lora_32_v3\")")
    if board is not None and board.get("name") != name:
        raise ConfigError(
            "config.json names board %r but board.json is %r: copy hw/boards/%s.json as "
            "board.json" % (name, board.get("name"), name)
        )
    lw = c.get("lorawan")
    if not isinstance(lw, dict):
        raise ConfigError("config.json: 'lorawan' missing (activation and keys from `havel keys`)")
    act = lw.get("activation", "otaa")
    need = ("dev_eui", "join_eui", "app_key") if act == "otaa" else ("dev_addr", "nwk_s_key", "app_s_key")
    if act not in ("otaa", "abp"):
        raise ConfigError("config.json: lorawan.activation must be 'otaa' or 'abp'")
    for k in need:
        if k not in lw:
            raise ConfigError("config.json: lorawan.%s missing (needed for %s)" % (k, act))
    out = dict(c)
    out["interval_s"] = (
        _check_int(c, "interval_s", INTERVAL_MIN_S, INTERVAL_MAX_S, "config.json")
        if "interval_s" in c
        else 900
    )
    ds = c.get("deep_sleep", board.get("deep_sleep", False) if board else False)
    if not isinstance(ds, bool):
        raise ConfigError("config.json: 'deep_sleep' must be true or false")
    if ds and board is not None and not board.get("deep_sleep"):
        raise ConfigError("config.json: deep_sleep is not possible on board %s: set it to false" % name)
    out["deep_sleep"] = ds
    sensors = c.get("sensors", {})
    if not isinstance(sensors, dict):
        raise ConfigError("config.json: 'sensors' must be an object")
    spec = APP_SENSORS[app]
    for k in sensors:
        if k not in spec:
            raise ConfigError(
                "config.json: sensors.%s is not a setting of the %s app (settings: %s)"
                % (k, app, ", ".join(sorted(spec)))
            )
        allowed = spec[k]
        v = sensors[k]
        if allowed[0] is int:
            _check_int(sensors, k, allowed[1], allowed[2], "config.json sensors")
        elif v not in allowed:
            raise ConfigError(
                "config.json: sensors.%s must be one of %s, got %r" % (k, ", ".join(allowed), v)
            )
    out["sensors"] = sensors
    th = c.get("thresholds", {})
    if not isinstance(th, dict):
        raise ConfigError("config.json: 'thresholds' must be an object")
    out["thresholds"] = th
    from apps import app_module

    try:
        app_module(app).check_thresholds(th)
    except ValueError as e:
        raise ConfigError("config.json thresholds: %s" % e)
    return out


def load(config_path="config.json", board_path="board.json", read=_file_text):
    """Read and check both files; returns (config, board). ConfigError says what is wrong."""
    board = check_board(_read_json(board_path, "the board definition", read))
    cfg = check_config(_read_json(config_path, "the node configuration", read), board)
    return cfg, board


def safe_idle(
    reason, console=print, valve_pin=None, valve_active=1, clock=None, repeat_ms=30000, rounds=None
):
    """The state of a node without a usable configuration: valve output held closed, nothing sent,
    the reason repeated on the serial console. Runs forever on a board (rounds=None)."""
    if valve_pin is not None:
        valve_pin.value(1 - valve_active)
    n = 0
    while rounds is None or n < rounds:
        if valve_pin is not None:
            valve_pin.value(1 - valve_active)  # keep asserting: nothing else may drive it
        console("havel: CONFIGURATION ERROR: %s" % reason)
        console("havel: node idle (no radio, valve closed); fix config.json and reset the board")
        n += 1
        if clock is not None:
            clock.sleep_ms(repeat_ms)
