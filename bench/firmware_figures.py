"""Firmware figures per node app: bytes per uplink, time on air at SF7 and SF12, heap of one full
node cycle inside the real MicroPython (wasm) interpreter, and the .mpy bundle size.

    .venv/bin/python bench/firmware_figures.py

Heap: what a board needs, measured from an empty interpreter. Each app runs in a fresh wasm
interpreter over a staged copy of the repository in which every firmware module is a .mpy
(mpy-cross 1.29, as flashed); the script is split into "#@step" calls because this MicroPython
build only collects garbage between calls. Figures (all after a collection, except cycle):
  modules   what a board running this app loads, along apps/board.py's boot path: the boot code
            (apps/boardboot.py, released once the node is built) and config.py (released after
            it checked config.json and board.json), then the node loop, the
            MAC, the clock, the store, the SX1262 driver, the app with its encoder and the sensor
            drivers its config selects; imported into the empty interpreter before anything else.
            Every firmware module resident at the end must have been loaded (and counted) here:
            the bench stops when one was not. Modules a board has in C but this build or the host
            provide in Python (cryptolib's AES stand-in, binascii, time) are in this figure too;
  objects   what the node keeps once built, joined and through its first reports (app, MAC,
            session, channels, duty-cycle ledger, and the names of the start-up and join code,
            which MicroPython never frees); the host's simulated world (sensor chips, radio,
            network server) is loaded before and not counted;
  cycle     what one full cycle (read sensors, encode, send, RX1/RX2, handle downlinks) allocates
            with the collector off, minus the pure-Python AES stand-in's garbage (boards run C
            cryptolib) and minus what the fake buses, pins and clock allocate inside a call beyond
            the size of what the call returns (on a board they are machine.I2C/UART/OneWire/ADC/
            Pin and time, in C) - an upper bound of the transient; the simulated radio and the
            in-memory store are still in it (in place of the radio driver and FileStore); the
            network server does not answer this cycle's uplink (the phases below have it answer,
            and count what it allocates apart, except the downlink frames it schedules);
  peak      modules + objects + cycle: an upper bound of the heap one cycle needs in this build;
  standin   the non-firmware modules of `modules` (the AES stand-in, binascii, time), imported
            alone into an empty interpreter: C modules on a board (they take no heap there);
  board     peak - standin: what one cycle needs on a board with the modules as .mpy files on its
            filesystem (target <= 64 KB);
  no_code   objects + cycle: the part that does not depend on where the bytecode lives. Modules
            frozen into the firmware image (or on a ROMFS) keep bytecode and constants in flash,
            so a frozen build needs this plus the modules' globals, functions and classes. That
            build is not made here (it needs the port's toolchain; this wasm build has no ROMFS),
            so no frozen figure is claimed;
  join      the most the one-job modules of a join attempt take at once: Mac.join() loads the
            join code (lw/join.py) for the attempt and releases it before the code that starts the
            session (lw/session.py) loads, so this is the larger of the two. Measured like
            settings_dl's modules: the sets held together are found by watching lw.mac.release
            during a real rejoin of the joined node (the network answers it), then each set is
            imported alone on top of the node at rest and measured after a collection;
  maccmds   likewise the MAC-command handlers (lw/maccmds.py) during a cycle whose downlink
            carries MAC commands (LinkADRReq, DevStatusReq, NewChannelReq, DutyCycleReq in FOpts);
  join_peak, mac_peak  what a board needs in those phases: board + join, board + maccmds (a
            cycle's peak with the phase's modules on top);
  join_alloc, mac_alloc  what such a cycle allocates in all with those modules already loaded
            (collector off; minus the AES stand-in's, the fake buses' and the network server's
            garbage, but with the host AES stand-in's key schedules): most of it is garbage the
            collector frees as it goes, so it is not a peak. It is printed, not held to a bound;
  sleep_peak  what a board needs while it writes the retained state before a deep sleep
            (Node.retain_state: apps/retain.py and lw/retain.py): the node at rest, those modules
            (measured like join's) and what the call allocates (collector off);
  settings_dl  (cooling) what a board needs while a valve-settings downlink (FPorts 20..24, each
            measured) is handled by the joined node: modules + objects - standin, plus the
            largest set of one-job modules the handling holds at once (found by watching
            lw.mac.release, then imported alone on top of the node at rest and measured after a
            collection), plus the most one call allocates with those modules loaded (collector
            off: an upper bound of its own data). The loader's own garbage while a module is
            imported is not counted (as for join and maccmds).
The modules are compiled by provisioning's own mpy-cross call (havel.provisioning.bundle
compile_mpy, -O3: no line-number tables), as the bundle a board is flashed with.
The start-up code (lw/startup.py: the MAC's config, stored and retained state; apps/startup.py;
apps/boardboot.py: bus and pin objects, the radio, building the node; radio/sx1262boot.py: the
radio's set-up), config.py and the cooling node's boot code (apps/coolingcfg.py,
control/valvecfg.py) are likewise loaded only while needed; they are gone before the first cycle
(a valve downlink loads payload/coolingdown.py, then apps/coolingset.py and control/valveset.py).
lw/retain.py (Mac.retained()) and apps/retain.py (Node.retain_state()) are loaded only before a
deep sleep; apps/bootvalve.py (the valve closed first thing) only at boot.
An earlier version of this bench took its baseline after the firmware modules were loaded (and
from .py source), so it reported about 30 KB; the modules are the larger part.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from havel.provisioning.bundle import compile_mpy  # as flashed: the bundle's own mpy-cross call

REPO = Path(__file__).resolve().parents[1]
FW = REPO / "firmware"
sys.path[:0] = [str(FW), str(FW / "host")]

import micropython  # noqa: E402,F401  (host shim: time.ticks_* for the firmware modules)
from lw import region  # noqa: E402
from payload import air, cooling, soil, temperature, water  # noqa: E402

LORAWAN_OVERHEAD = 13  # MHDR 1 + FHDR 7 (no FOpts) + FPort 1 + MIC 4

SAMPLES = {
    "air": (
        air,
        {
            "temperature": 21.5,
            "humidity": 45.5,
            "pressure": 1013.2,
            "pm2_5": 12.3,
            "pm10": 20.1,
            "co2": 415,
            "battery": 3700,
            "faults": {"thp": False, "pm": False, "co2": False},
        },
    ),
    "water": (
        water,
        {
            "alarm": False,
            "alarm_level": 0,
            "rising_fast": False,
            "level": 159,
            "distance": 2410,
            "water_temperature": 12.4,
            "battery": 3600,
        },
    ),
    "temperature": (temperature, {"probes": [24.1, 31.7], "humidity": 38.0, "battery": 3720}),
    "cooling": (
        cooling,
        {
            "valve_open": True,
            "enabled": True,
            "mode": "auto",
            "actuations": 3,
            "open_time": 540,
            "water_used": 12.5,
            "water_today": 40.2,
            "ambient_temperature": 31.4,
            "on_threshold": 30.0,
            "off_threshold": 28.0,
            "interlock": {"reservoir_low": False, "budget": False, "max_on_time": False},
            "faults": {"temperature": False, "valve": False, "flow_meter": False},
        },
    ),
    "soil": (
        soil,
        {
            "moisture_10cm": 31.5,
            "moisture_30cm": 28.0,
            "moisture_60cm": 25.5,
            "soil_temperature": 12.3,
            "battery": 3700,
        },
    ),
}

HEAP_SCRIPT = """
import gc, json, micropython, sys
with open("/config.json", "w") as f:
    f.write(%(config_json)r)
with open("/board.json", "w") as f:
    f.write(%(board_json)r)
del f
#@step
gc.collect()
R = {"app": %(app)r}
R["m_empty"] = gc.mem_alloc()
#@step
# 1. what a board running this app loads (from .mpy), as apps/board.py's run() does: the boot
# code (apps/boardboot.py) with the config check (config.py is released afterwards), the node
# loop, the MAC, the clock, the store, the SX1262 driver, the app with its encoder and the sensor
# drivers its config selects; then the boot code is released, as run() does once the node is built
from apps import board, bootvalve
from lw.mac import release
release("apps.bootvalve")  # boot.py's first act, released as run() does (its names stay interned)
del bootvalve
from apps import boardboot
LOADED, ERR = boardboot.load_config("/config.json", "/board.json")
if LOADED is None:
    raise RuntimeError(ERR)
import lw.clock, lw.store, radio.sx1262
from apps import node as nodemod
for d in %(drivers)r:
    __import__(d)
del boardboot
release("apps.boardboot")
del release
#@step
gc.collect()
R["m_modules"] = gc.mem_alloc()
def _fw_mods():
    return [k for k, m in sys.modules.items()
            if getattr(m, "__file__", "").startswith("/repo/firmware/")
            and not m.__file__.startswith("/repo/firmware/host/")]
# modules step 1 loaded that are not firmware: the host's AES stand-in, and modules this wasm
# build has in Python that boards have in C (measured apart, see STANDIN_SCRIPT)
R["standins"] = sorted(k for k in sys.modules if k not in _fw_mods())
R["fw_modules"] = sorted(_fw_mods())
#@step
# 2. the host's simulated world (never on a board): its modules and objects are measured apart
import cryptolib, fake_buses, fakeclock, memstore, sim_sensors, simnet, simnode, simradio
APP = %(app)r
CFG = %(cfg)s
blocks = [0]
_enc = cryptolib.aes.encrypt
_dec = cryptolib.aes.decrypt
def _cenc(self, *a):
    blocks[0] += 1
    return _enc(self, *a)
def _cdec(self, *a):
    blocks[0] += 1
    return _dec(self, *a)
cryptolib.aes.encrypt = _cenc
cryptolib.aes.decrypt = _cdec
a = cryptolib.aes(bytes(16), 1)
blk = bytes(16)
out = bytearray(16)
a.encrypt(blk, out)
gc.disable()
m = gc.mem_alloc()
for _ in range(20):
    a.encrypt(blk, out)
PER_BLOCK = (gc.mem_alloc() - m) / 20
gc.enable()
clock = fakeclock.FakeClock(1000)
radio = simradio.SimRadio(clock)
net = simnet.SimNetwork(radio, app_key=bytes(range(16)))
store = memstore.MemStore()
io = simnode.populate(simnode.SimIO(clock), APP, CFG)
if APP == "cooling":
    io.sim["ds18b20"].temp_c = 33.0
# the fake buses, pins and clock stand in for machine.I2C/UART/OneWire/ADC/Pin and time (C on a
# board, where a call allocates only what it returns): what a call into them allocates beyond the
# size of its result is the simulators' garbage, counted apart (outermost calls only)
sim = [0, 0]
def _size(r):
    if r is None or r is True or r is False:
        return 0
    if isinstance(r, int):
        return 0 if -0x40000000 <= r < 0x40000000 else 16
    if isinstance(r, (bytes, bytearray)):
        return 16 + (len(r) + 16) // 16 * 16
    if isinstance(r, (tuple, list)):
        return 16 + (4 * len(r) + 15) // 16 * 16 + sum(_size(x) for x in r)
    return 16
def _wrap(f):
    def w(*a):
        if sim[1]:
            return f(*a)
        sim[1] = 1
        m0 = gc.mem_alloc()
        try:
            r = f(*a)
        finally:
            sim[1] = 0
        # + the tuple of this wrapper's *a (allocated before m0)
        sim[0] += gc.mem_alloc() - m0 - _size(r) + (16 * ((8 + 4 * len(a) + 15) // 16) if a else 0)
        return r
    return w
def _wrap_all(o):
    for n in dir(o):
        if not n.startswith("_") and callable(getattr(o, n)) and n not in ("add", "device", "devices"):
            setattr(o, n, _wrap(getattr(o, n)))
for o in (io.i2c_bus, io.uart_bus, io.ow_bus, io.adc, io.valve_pin, io.reservoir_pin, clock):
    if o is not None:
        _wrap_all(o)
if io.ultra is not None:
    for o in (io.ultra.trig, io.ultra.echo):
        _wrap_all(o)
    io.ultra.time_pulse_us = _wrap(io.ultra.time_pulse_us)
#@step
gc.collect()
R["m_world"] = gc.mem_alloc()
#@step
# 3. the node: app, MAC, session, joined and through its first reports
node, io = simnode.make_node(APP, clock, radio, store, CFG, io=io)
n = len(radio.uplinks)
while len(radio.uplinks) < n + 3:
    clock.sleep_ms(node.step())
radio.on_uplink = None
while node.next_report_ms > clock.now_ms():
    clock.sleep_ms(node.step())
#@step
gc.collect()
R["m_joined"] = gc.mem_alloc()
b0 = blocks[0]
k = len(radio.uplinks)
sim[0] = 0
gc.disable()
a0 = gc.mem_alloc()
steps = 0
while len(radio.uplinks) == k and steps < 50:
    ms = node.step()
    steps += 1
    if len(radio.uplinks) == k:
        clock.sleep_ms(ms)
R["cycle_raw"] = gc.mem_alloc() - a0
gc.enable()
R["aes"] = int(PER_BLOCK * (blocks[0] - b0))
R["sim"] = sim[0]
R["payload"] = len(radio.uplinks[-1][0]) - 13
#@step
gc.collect()
R["m_after"] = gc.mem_alloc()
# every firmware module must have been loaded (and counted) in step 1
R["late"] = sorted(k for k in _fw_mods() if k not in R["fw_modules"])
%(downlink)s
print("HEAP " + json.dumps(R))
"""

# The settings downlinks of an app (cooling: the valve's FPorts 20..24), handled by the joined node
# as after a real uplink (Node.handle_downlink). First which one-job modules the calls hold at
# once: every module loaded on demand is released with lw.mac.release, so the set of non-resident
# modules at each release is a set held together (the largest sets come just before a release).
# Then each set is imported alone on top of the node at rest and measured after a collection
# (its names are interned already, as on the node); last, what the calls allocate with every
# module of those sets already loaded (collector off: an upper bound of their own data).
DOWNLINK_SCRIPT = """
#@step
gc.collect()
RESIDENT = set(sys.modules)
SETS = []
DL = %(downlinks)r
_patch(_spy)
try:
    for fp, p in DL:
        n = len(node.app.refused)
        if not node.handle_downlink(fp, bytes(p), clock.now_ms()) or len(node.app.refused) != n:
            raise RuntimeError("settings downlink on FPort %%d not taken" %% fp)
finally:
    _patch(_release)
if set(sys.modules) != RESIDENT:
    raise RuntimeError("a settings downlink left a module loaded")
# only the largest sets (one held inside another is covered by it)
SETS = [s for s in SETS if not [t for t in SETS if t != s and not [m for m in s if m not in t]]]
if len(SETS) > %(max_sets)d:
    raise RuntimeError("more sets of modules held together than the bench measures")
R["dl_sets"] = SETS
#@step
gc.collect()
R["m_dl_rest"] = gc.mem_alloc()
R["dl_held"] = []
%(set_steps)s
#@step
for s in SETS:
    for m in s:
        __import__(m)
#@step
gc.collect()
R["dl_calls"] = []
_patch(lambda name: None)  # nothing loaded or released inside the calls: their own data only
try:
    for fp, p in DL:
        sim[0] = 0
        gc.disable()
        a0 = gc.mem_alloc()
        node.handle_downlink(fp, bytes(p), clock.now_ms())
        R["dl_calls"].append(gc.mem_alloc() - a0 - sim[0])
        gc.enable()
finally:
    _patch(_release)
if set(sys.modules) != RESIDENT | set(m for s in SETS for m in s):
    raise RuntimeError("a settings downlink loaded a module beyond the measured sets")
for s in SETS:
    for m in s:
        lw.mac.release(m)
"""

# Helpers of the phase measurements (a join, a MAC-command downlink, a settings downlink): which
# one-job modules a phase holds at once is found by watching lw.mac.release; the set of modules
# not resident at each release is a set held together (the largest sets come just before a release).
PHASE_HELPERS = """
#@step
import lw.mac
_release = lw.mac.release
def _spy(name):
    s = sorted(k for k in sys.modules if k not in RESIDENT)
    if s not in SETS:
        SETS.append(s)
    _release(name)
CUR = [_release]
def _patch(f):  # every module's name `release` (lw.mac's included) to f
    for m in list(sys.modules.values()):
        if getattr(m, "release", None) is CUR[0]:
            m.release = f
    CUR[0] = f
# the network server answers again (the cycle above ran without it); it is never on a board, so
# what it allocates is counted apart like the fake buses' garbage, except the downlink frames it
# schedules (a board's radio driver allocates a received frame) and its AES blocks (counted in
# `blocks` already)
_net = net._on_uplink
def _net_wrapped(*a):
    m0 = gc.mem_alloc()
    b0 = blocks[0]
    n0 = len(radio.pending)
    _net(*a)
    frames = sum(_size(d[0]) for d in radio.pending[n0:])
    sim[0] += gc.mem_alloc() - m0 - int(PER_BLOCK * (blocks[0] - b0)) - frames
radio.on_uplink = _net_wrapped
def _to_report():  # the node's steps until its next report is due (not measured)
    steps = 0
    while node.next_report_ms > clock.now_ms() and steps < 5000:
        clock.sleep_ms(node.step())
        steps += 1
def _cycle():  # the node's cycle: steps until one uplink went out
    k = len(radio.uplinks)
    steps = 0
    while len(radio.uplinks) == k and steps < 50:
        ms = node.step()
        steps += 1
        if len(radio.uplinks) == k:
            clock.sleep_ms(ms)
    if len(radio.uplinks) == k:
        raise RuntimeError("no uplink in 50 steps")
class _Rtc:  # the RTC memory a deep-sleeping board keeps (C on a board)
    data = None
    def write(self, b):
        self.data = b
    def read(self):
        return self.data
RTC = _Rtc()
def _largest(sets):  # one set held inside another is covered by it
    return [s for s in sets if not [t for t in sets if t != s and not [m for m in s if m not in t]]]
"""

# One phase of a node (a join attempt, a cycle whose downlink carries MAC commands): `run` does it
# once on the joined node. Then the one-job modules it holds at once are imported alone on top
# of the node at rest and measured after a collection; last, what `run` allocates with those
# modules already loaded (collector off, minus the AES stand-in's and the fake buses' and the
# network server's garbage: an upper bound of its own data). `check` must hold after each run.
PHASE_SCRIPT = """
#@step
gc.collect()
RESIDENT = set(sys.modules)
SETS = []
_to_report()
_patch(_spy)
try:
    %(run)s
finally:
    _patch(_release)
if not (%(check)s):
    raise RuntimeError("phase %(key)s did not happen")
if set(sys.modules) != RESIDENT:
    raise RuntimeError("phase %(key)s left a module loaded")
SETS = _largest(SETS)
if len(SETS) > %(max_sets)d:
    raise RuntimeError("more sets of modules held together than the bench measures")
R["%(key)s_sets"] = SETS
#@step
gc.collect()
R["m_%(key)s_rest"] = gc.mem_alloc()
R["%(key)s_held"] = [0]
%(set_steps)s
#@step
for s in SETS:
    for m in s:
        __import__(m)
_to_report()
#@step
gc.collect()
_patch(lambda name: None)  # nothing loaded or released inside the run: its own data only
try:
    sim[0] = 0
    b0 = blocks[0]
    gc.disable()
    a0 = gc.mem_alloc()
    %(run)s
    R["%(key)s_call"] = gc.mem_alloc() - a0 - sim[0] - int(PER_BLOCK * (blocks[0] - b0))
    gc.enable()
finally:
    gc.enable()
    _patch(_release)
if not (%(check)s):
    raise RuntimeError("phase %(key)s did not happen")
if set(sys.modules) != RESIDENT | set(m for s in SETS for m in s):
    raise RuntimeError("phase %(key)s loaded a module beyond the measured sets")
for s in SETS:
    for m in s:
        lw.mac.release(m)
"""

# one step pair per set held together (a phase holds only a few)
PHASE_SET_STEPS = """
#@step
if %(i)d < len(SETS):
    for m in SETS[%(i)d]:
        __import__(m)
#@step
gc.collect()
if %(i)d < len(SETS):
    R["%(key)s_held"].append(gc.mem_alloc() - R["m_%(key)s_rest"])
    for m in SETS[%(i)d]:
        lw.mac.release(m)
"""

# A cycle whose downlink carries MAC commands in FOpts (14 bytes): LinkADRReq (DR5, 16 dBm,
# channels 0..2, one transmission: what the node has), DevStatusReq, NewChannelReq (channel 3 at
# 867.1 MHz, DR0..5) and DutyCycleReq (no limit); the answers go out with the next uplink.
MACCMD_FOPTS = bytes.fromhex("0350070001060703184f84500400")
MACCMD_RUN = f"net.queue.append({{'fopts': {MACCMD_FOPTS!r}}}); n_dl = len(radio.rx_log); _cycle()"
MACCMD_CHECK = "node.mac.ch_freq[3] == 8671000 * 100 and any(r[5] for r in radio.rx_log[n_dl:])"
# A cycle with a rejoin: the session has been silent for rejoin_after_s over rejoin_min_uplinks
# uplinks, so the next report's send first makes a join attempt (Mac.join, lw/join.py), which the
# network answers; the report then goes out in the new session. A node's first join is the same
# attempt from Node.step followed by the status uplink.
JOIN_RUN = (
    "mac = node.mac; mac.up_since_down = mac.rejoin_min_uplinks; "
    "mac.last_down_s = clock.now_ms() // 1000 - mac.rejoin_after_s - 1; mac._next_rejoin_s = 0; "
    "nonces = len(net.dev_nonces); _cycle()"
)
# Before a deep sleep: the node writes what the wake-up needs into retained RAM (Node.retain_state,
# apps/retain.py, with Mac.retained, lw/retain.py); the RTC memory is a stand-in object here.
SLEEP_RUN = "node.retain = RTC; RTC.data = None; node.retain_state(600000); node.retain = None"
SLEEP_CHECK = "RTC.data is not None and len(RTC.data) > 0"
JOIN_CHECK = (
    "len(net.dev_nonces) == nonces + 1 and node.mac.joined and node.mac.join_nonce_last == net.join_nonce"
)


# one step pair per set held together (a downlink path holds only a few)
DOWNLINK_SET_STEPS = """
#@step
if %(i)d < len(SETS):
    for m in SETS[%(i)d]:
        __import__(m)
#@step
gc.collect()
if %(i)d < len(SETS):
    R["dl_held"].append(gc.mem_alloc() - R["m_dl_rest"])
    for m in SETS[%(i)d]:
        lw.mac.release(m)
"""
DOWNLINK_MAX_SETS = 6

# What the modules of R["standins"] take when imported alone into an empty interpreter.
STANDIN_SCRIPT = """
import gc, sys
#@step
gc.collect()
a = gc.mem_alloc()
#@step
for name in %(names)r:
    __import__(name)
#@step
gc.collect()
print("STANDIN %%d" %% (gc.mem_alloc() - a))
"""

LW = {
    "activation": "otaa",
    "dev_eui": "70b3d57ed0001234",
    "join_eui": "70b3d57ed0000000",
    "app_key": "000102030405060708090a0b0c0d0e0f",
}
APP_CFG: dict[str, dict[str, object]] = {
    "air": {"sensors": {"co2": "scd41"}},
    "water": {"thresholds": {"zero_mm": 3000, "levels_cm": [200]}},
    "temperature": {},
    "cooling": {"thresholds": {"min_off_s": 60}},
    "soil": {},
}
# the sensor drivers each app's config (APP_CFG and the defaults) selects
DRIVERS = {
    "air": ["sensors.bme280", "sensors.sds011", "sensors.scd41"],
    "water": ["sensors.jsnsr04t", "sensors.ds18b20"],
    "temperature": ["sensors.ds18b20", "sensors.sht31"],
    "cooling": ["sensors.ds18b20"],
    "soil": ["sensors.seesaw_soil", "sensors.ds18b20"],
}
# the settings downlinks measured per app (FPort, payload): the cooling node's valve settings
SETTINGS_DOWNLINKS: dict[str, list[tuple[int, bytes]]] = {
    "cooling": [
        (20, b"\x10\x01\x54\x01\x40"),  # thresholds: on 34.0, off 32.0 Cel
        (21, b"\x10\x02\x58"),  # max on-time 600 s
        (22, b"\x10\x01\xf4"),  # daily budget 500 L
        (23, b"\x10\x00\x00\x78"),  # override: closed for 120 s
        (24, b"\x10\x01"),
    ]
}  # misting enabled
# the phases of the per-phase table: column name -> figure of board_figures()
PHASES = {
    "cycle": "board",
    "join": "join_peak",
    "mac_dl": "mac_peak",
    "sleep": "sleep_peak",
    "settings_dl": "settings_dl",
}
BOARD = "heltec_wifi_lora_32_v3"
HEAP_TARGET = 64 * 1024


def stage(root: Path) -> None:
    """A copy of the repository as the wasm interpreter sees it, with every firmware module as
    .mpy (mpy-cross, as flashed) and the host stand-ins and test helpers as .py."""
    for src in FW.rglob("*.py"):
        rel = src.relative_to(FW)
        if rel.parts[0] == "host" or rel.name in ("boot.py", "main.py"):
            continue
        compile_mpy(src, root / "firmware" / rel.with_suffix(".mpy"), rel.as_posix())
    shutil.copytree(FW / "host", root / "firmware" / "host")
    shutil.copytree(REPO / "tests" / "firmware" / "mp", root / "tests" / "firmware" / "mp")
    (root / "tools").mkdir()
    (root / "tools" / "npm").symlink_to(REPO / "tools" / "npm")


def run_script(root: Path, name: str, text: str, tag: str) -> str:
    script = root / name
    script.write_text(text)
    proc = subprocess.run(
        ["node", str(REPO / "tests/firmware/mprunner.mjs"), "--repo", str(root), "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
    return next(x for x in proc.stdout.splitlines() if x.startswith(tag))[len(tag) :]


def phase_script(key: str, run: str, check: str) -> str:
    steps = "".join(PHASE_SET_STEPS % {"i": i, "key": key} for i in range(DOWNLINK_MAX_SETS))
    return PHASE_SCRIPT % {
        "key": key,
        "run": run,
        "check": check,
        "set_steps": steps,
        "max_sets": DOWNLINK_MAX_SETS,
    }


def heap(app: str, root: Path) -> dict[str, Any]:
    cfg = {"lorawan": LW, "interval_s": 600, "app": app, **APP_CFG[app]}
    board = (REPO / "hw" / "boards" / f"{BOARD}.json").read_text()
    # the phases after the ordinary cycle: a MAC-command downlink, the settings downlinks (cooling),
    # a join last (it starts a new session)
    downlink = PHASE_HELPERS + phase_script("mac", MACCMD_RUN, MACCMD_CHECK)
    if app in SETTINGS_DOWNLINKS:
        steps = "".join(DOWNLINK_SET_STEPS % {"i": i} for i in range(DOWNLINK_MAX_SETS))
        downlink += DOWNLINK_SCRIPT % {
            "downlinks": [(fp, list(p)) for fp, p in SETTINGS_DOWNLINKS[app]],
            "set_steps": steps,
            "max_sets": DOWNLINK_MAX_SETS,
        }
    downlink += phase_script("sleep", SLEEP_RUN, SLEEP_CHECK)
    downlink += phase_script("join", JOIN_RUN, JOIN_CHECK)
    r: dict[str, Any] = json.loads(
        run_script(
            root,
            f"heap_{app}.py",
            HEAP_SCRIPT
            % {
                "app": app,
                "cfg": json.dumps(cfg).replace("true", "True").replace("false", "False"),
                "config_json": json.dumps({"board": BOARD, **cfg}),
                "board_json": board,
                "drivers": DRIVERS[app],
                "downlink": downlink,
            },
            "HEAP ",
        )
    )
    if r["late"]:
        raise SystemExit(f"{app}: firmware modules loaded after the modules step (not counted): {r['late']}")
    r["standin"] = int(
        run_script(root, f"standin_{app}.py", STANDIN_SCRIPT % {"names": r["standins"]}, "STANDIN ")
    )
    return r


def board_figures(h: dict[str, Any]) -> dict[str, int]:
    """What a board needs, from the measurement: the firmware modules (loaded from .mpy into an
    empty interpreter), the node's objects once joined, and one cycle's allocations (minus the
    pure-Python AES stand-in's garbage; boards run C cryptolib). `board` is `peak` without the
    stand-ins: the Python modules the firmware imported here that a board has in C."""
    modules = h["m_modules"] - h["m_empty"]
    objects = h["m_joined"] - h["m_world"]
    cycle = h["cycle_raw"] - h["aes"] - h["sim"]
    peak = modules + objects + cycle
    f = {
        "modules": modules,
        "objects": objects,
        "cycle": cycle,
        "peak": peak,
        "standin": h["standin"],
        "board": peak - h["standin"],
        # the most the one-job modules of a join attempt / a MAC-command downlink take at once
        "join": max(h["join_held"]),
        "maccmds": max(h["mac_held"]),
        # what those phases allocate in all, garbage included (collector off)
        "join_alloc": h["join_call"],
        "mac_alloc": h["mac_call"],
    }
    # a cycle with a join attempt and one whose downlink carries MAC commands: a cycle's peak plus
    # the largest set of one-job modules the phase holds at once (see the docstring)
    f["join_peak"] = f["board"] + f["join"]
    f["mac_peak"] = f["board"] + f["maccmds"]
    # before a deep sleep: the node at rest, the modules that write the retained state, and what
    # the call allocates (collector off: an upper bound of its own data)
    f["sleep_peak"] = modules + objects - h["standin"] + max(h["sleep_held"]) + h["sleep_call"]
    if "dl_held" in h:
        # a settings downlink: the node at rest, the largest set of one-job modules its handling
        # holds at once, and the most one such call allocates (collector off)
        f["settings_dl"] = modules + objects - h["standin"] + max(h["dl_held"]) + max(h["dl_calls"])
    return f


def mpy_size(files: list[str], keep_py: set[str], tmp: Path) -> int:
    total = 0
    for f in files:
        src = FW / f
        if f in keep_py:
            total += src.stat().st_size
            continue
        out = tmp / (f.replace("/", "_") + ".mpy")
        compile_mpy(src, out, f)
        total += out.stat().st_size
    return total


def main() -> None:
    bundle = json.loads((FW / "bundle.json").read_text())
    keep = set(bundle["keep_as_py"])
    cols = (
        "app",
        "payload",
        "phy",
        "toa_sf7",
        "toa_sf12",
        "mpy_1262",
        "mpy_1276",
        "modules",
        "objects",
        "cycle",
        "peak",
        "standin",
        "board",
        "no_code",
        "join",
        "maccmds",
        "settings_dl",
    )
    print(("{:<12} {:>7} {:>7} {:>9} {:>9} {:>9}" + " {:>8}" * 10 + " {:>11}").format(*cols))
    phases: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        root = tmp / "repo"
        have_node = shutil.which("node") is not None
        if have_node:
            stage(root)
        for app, (mod, sample) in SAMPLES.items():
            n = len(mod.encode(sample))
            phy = n + LORAWAN_OVERHEAD
            sf7 = region.airtime_us(phy, 7) / 1000
            sf12 = region.airtime_us(phy, 12) / 1000
            sizes = []
            for chip in ("sx1262", "sx1276"):
                files = sorted(set(bundle["common"]) | set(bundle["radio"][chip]) | set(bundle["apps"][app]))
                sizes.append(mpy_size(files, keep, tmp))
            if have_node:
                f = board_figures(heap(app, root))
                phases[app] = f
                f["no_code"] = f["objects"] + f["cycle"]
                keys = cols[7:]  # modules .. settings_dl
                figs = [f"{f[k] / 1024:.1f}K" if k in f else "-" for k in keys]
            else:
                figs = ["n/a"] * len(cols[7:])
            print(
                f"{app:<12} {n:>7} {phy:>7} {sf7:>7.1f}ms {sf12:>7.0f}ms {sizes[0]:>9} {sizes[1]:>8} "
                + " ".join(f"{x:>8}" for x in figs[:-1])
                + f" {figs[-1]:>11}"
            )
    st = len(
        SAMPLES["air"][0].encode(
            {"firmware": "0.1.0", "reset_cause": "power_on", "uptime": 0, "battery": None, "interval": 600}, 2
        )
    )
    t7 = region.airtime_us(st + LORAWAN_OVERHEAD, 7) / 1000
    t12 = region.airtime_us(st + LORAWAN_OVERHEAD, 12) / 1000
    print(f"status (FPort 2): {st} bytes, {t7:.1f} ms at SF7, {t12:.0f} ms at SF12")
    print("air payload is 11 bytes without the optional SCD41 (13 with it); temperature is 3 + 2 x probes.")
    if not phases:
        return
    print()
    print(f"heap a board needs per phase (bytes; target {HEAP_TARGET}), and what the phase allocates in all")
    head = ("app", "cycle", "join", "mac_dl", "sleep", "settings_dl", "join_alloc", "mac_alloc")
    print("{:<12} {:>8} {:>8} {:>8} {:>8} {:>11} {:>11} {:>10}".format(*head))
    over = []
    for app, f in phases.items():
        row = [f.get(PHASES[k]) for k in PHASES]
        over += [f"{app} {k}" for k, v in zip(PHASES, row, strict=True) if v is not None and v > HEAP_TARGET]
        cells = [f"{v:>8}" if v is not None else f"{'-':>8}" for v in row]
        print(f"{app:<12} {' '.join(cells[:4])} {cells[4]:>11} {f['join_alloc']:>11} {f['mac_alloc']:>10}")
    verdict = f"OVER in: {', '.join(over)}" if over else "every app in every phase within it"
    print(f"heap target: <= {HEAP_TARGET} bytes per phase on a board with .mpy modules; {verdict}")


if __name__ == "__main__":
    main()
