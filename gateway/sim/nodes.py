"""Simulated nodes that run the firmware's own node code under CPython.

Each node is built by ``firmware/host/simnode.py`` ``make_node``: the real node loop (``apps/node.py``),
the real app (``apps/water.py``, ``temperature.py``, ``cooling.py`` with the valve controller), the real
sensor drivers talking to simulated chips on fake buses, the real encoders and the real LoRaWAN MAC
(``lw/``) on a ``FakeClock`` with a ``SimRadio``. Only the world is modelled here (:mod:`.world`): before
each wake-up the simulated chips are set to the world's temperature, humidity and river level.

The radio's uplinks go to every simulated concentrator as rxpk (with a signal that depends on the node, 2 dB
weaker for each TXPower step the network's ADR took off);
the node's thread then waits (real time, up to ``wait_s``) for a PULL_RESP aimed at one of its receive
windows and schedules it on the simulated radio, so the MAC receives it only if it opens the right window
at the right time, frequency and data rate.
"""

from __future__ import annotations

import importlib
import random
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from havel import resources
from havel.codecs.payload import get_kind, list_kinds
from havel.errors import HavelError
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.txpk import txpk_data
from havel.gateway.sim.concentrator import Concentrator, wait_any
from havel.gateway.sim.world import World

#: the node kinds the simulator runs: those whose declaration says how the world drives their sensors
KINDS = tuple(k.name for k in list_kinds() if k.simulated)
_FW_LOCK = threading.Lock()
_FW: dict[str, ModuleType] = {}


def firmware_dir() -> Path:
    """The firmware sources: installed with the package, or a checkout's (see :mod:`havel.resources`)."""
    return resources.firmware_dir()


def firmware() -> dict[str, ModuleType]:
    """Import the firmware modules the simulator needs (once), with firmware/ and firmware/host/ on
    sys.path and the ``micropython`` shim loaded first."""
    with _FW_LOCK:
        if _FW:
            return _FW
        root = firmware_dir()
        if not (root / "host" / "simnode.py").is_file():
            raise HavelError(
                f"the firmware's simulated node is not at {root}/host/simnode.py",
                hint=f"reinstall Havel, or set {resources.SOURCE_ENV} to a Havel checkout",
            )
        for p in (str(root / "host"), str(root)):
            if p not in sys.path:
                sys.path.insert(0, p)
        importlib.import_module("micropython")
        for name in ("simnode", "fakeclock", "simradio", "memstore", "payload.cooling", "control.valve"):
            _FW[name] = importlib.import_module(name)
        return _FW


Event = dict[str, Any]


class SimNode:
    """One node. ``step(t_s)`` runs one wake-up of the firmware's node loop at simulated time ``t_s`` and
    returns when it wants to run next (simulated seconds)."""

    def __init__(
        self,
        kind: str,
        name: str,
        *,
        index: int,
        dev_eui: int,
        join_eui: int,
        app_key: bytes,
        world: World,
        concentrators: list[Concentrator],
        signal: list[tuple[float, float] | None],
        interval_s: float,
        wait_s: float,
        on_event: Callable[[Event], None],
        adr: bool = True,
        dr: int = 5,
    ) -> None:
        if kind not in KINDS:
            raise HavelError(f"unknown node kind {kind!r}", hint=f"one of {', '.join(KINDS)}")
        fw = firmware()
        self.fw = fw
        self.kind = kind
        self.name = name
        self.index = index
        self.dev_eui = dev_eui
        self.world = world
        self.concentrators = concentrators
        self.signal = signal  # (rssi, snr) per concentrator, None where it does not hear the node
        self.wait_s = wait_s
        self.on_event = on_event
        self.rng = random.Random(index * 7919 + 1)
        self.tmst_salt = (index * 104_729_377) % gwmp.TMST_MODULO
        self.clock = fw["fakeclock"].FakeClock(0)
        self.radio = fw["simradio"].SimRadio(self.clock, on_uplink=self._on_uplink)
        self.store = fw["memstore"].MemStore()
        cfg: dict[str, Any] = {
            "lorawan": {
                "activation": "otaa",
                "dev_eui": f"{dev_eui:016X}",
                "join_eui": f"{join_eui:016X}",
                "app_key": app_key.hex(),
                "adr": adr,  # as on the kits: the network steers data rate and power
                "dr": dr,
                "join_dr": dr,
            },
            "interval_s": int(interval_s),
            "sensors": {},
            "thresholds": {},
        }
        self.declared = get_kind(kind)
        sim_config = self.declared.sim_config
        if sim_config is not None:
            cfg.update(sim_config(world, interval_s))
        self.node, self.io = fw["simnode"].make_node(kind, self.clock, self.radio, self.store, cfg)
        self.io.set_battery_mv(3700 - 5 * index)
        self.uplinks = 0
        self.downlinks = 0
        self.lose_downlinks = 0  # the next this many downlinks are lost on the air (never reach the radio)
        self.lose_uplinks = 0.0  # the share of transmissions no concentrator hears (a wall, rain, a far node)
        self.transmissions = 0  # uplink transmissions on the air (an uplink is sent NbTrans times, or again
        # until its ACK)
        self._loss_rng = random.Random(index * 104_729 + 7)  # its own: loss leaves the readings' noise as is
        self._reports: list[dict[str, Any]] = []
        original = self.node.app.report

        def report(now_ms: int) -> dict[str, Any]:  # observe what the app reports; change nothing
            data = original(now_ms)
            self._reports.append(dict(data))
            return data

        self.node.app.report = report
        self._joined = False
        self._seen_downlinks = 0
        self._valve_open = False

    # --------------------------------------------------------------------------------- the radio side
    def _on_uplink(
        self, frame: bytes, freq_hz: int, sf: int, bw_khz: int, start_ms: int, end_ms: int
    ) -> None:
        self.transmissions += 1
        if self.lose_uplinks and self._loss_rng.random() < self.lose_uplinks:
            return
        tmst = (self.tmst_salt + end_ms * 1000) % gwmp.TMST_MODULO
        datr = f"SF{sf}BW{bw_khz}"
        windows = {tmst + d * 1_000_000 for d in (1, 2, 5, 6)}
        waiters = []
        # each TXPower index below the maximum is 2 dB less EIRP (RP002 2.4.3): the link loses as much
        weaker = 2.0 * self.node.mac.tx_power
        for conc, heard in zip(self.concentrators, self.signal, strict=True):
            if heard is None:
                continue
            rssi, snr = heard
            waiters.append((conc, conc.expect(windows)))
            jitter = self.rng.uniform(-1.5, 1.5)
            conc.push(
                [
                    conc.rxpk(
                        frame,
                        tmst=tmst,
                        freq_hz=freq_hz,
                        datr=datr,
                        rssi=rssi - weaker + jitter,
                        snr=snr - weaker + jitter / 3,
                        chan=_chan(freq_hz),
                    )
                ]
            )
        txpk = wait_any(waiters, self.wait_s)
        if txpk is None:
            return
        if self.lose_downlinks > 0:  # e.g. a truck between node and gateway just then
            self.lose_downlinks -= 1
            return
        data = txpk_data(txpk)
        delay_ms = ((int(txpk["tmst"]) - tmst) % gwmp.TMST_MODULO) // 1000
        d_sf, d_bw = _sf_bw(str(txpk["datr"]))
        self.radio.schedule(data, round(float(txpk["freq"]) * 1e6), d_sf, d_bw, end_ms + delay_ms)

    # ------------------------------------------------------------------------------------ the loop
    def _apply_world(self, t_s: float) -> None:
        sim_world = self.declared.sim_world
        if sim_world is not None:  # always, for a kind in KINDS
            sim_world(self.io, self.world, t_s, self.rng.gauss)

    def step(self, t_s: float) -> float:
        """One wake-up of the firmware's node loop at simulated time ``t_s``; returns the next one."""
        self._apply_world(t_s)
        uplinks_before = self.node.uplinks
        reports_before = len(self._reports)
        sleep_ms = self.node.step()
        if self.node.mac.joined and not self._joined:
            self._joined = True
            self._emit("join", dev_addr=f"{self.node.mac.dev_addr:08X}")
        if self.node.uplinks > uplinks_before:
            self.uplinks += self.node.uplinks - uplinks_before
            res = self.node.last_result
            if len(self._reports) > reports_before:
                self._emit(
                    "uplink",
                    fcnt=getattr(res, "fcnt", None),
                    status=getattr(res, "status", None),
                    reading=self._reports[-1],
                )
        self._observe_downlinks()
        if self.kind == "cooling":
            self._observe_valve()
        return self.clock.now_ms() / 1000 + max(sleep_ms, 1000) / 1000

    def _observe_downlinks(self) -> None:
        got = self.node.downlinks
        if self._seen_downlinks >= len(got) and len(got) < 8:
            return
        new = got[self._seen_downlinks :] if len(got) < 8 else got[-1:]
        self._seen_downlinks = len(got)
        for fport, payload in new:
            self.downlinks += 1
            self._emit("downlink", fport=fport, payload=bytes(payload).hex())
            if self.kind == "cooling" and fport == self.fw["payload.cooling"].FPORT_OVERRIDE:
                try:
                    cmd = self.fw["payload.cooling"].decode_down(fport, bytes(payload))
                except ValueError as exc:
                    self._emit("downlink_refused", fport=fport, error=str(exc))
                    continue
                ctl = self.node.app.ctl
                accepted = (
                    cmd["state"] == "auto" or ctl.override_mode != self.fw["control.valve"].OVERRIDE_NONE
                )
                self._emit("override", state=cmd["state"], ttl=cmd.get("ttl"), accepted=bool(accepted))

    def _observe_valve(self) -> None:
        ctl = self.node.app.ctl
        if bool(ctl.open) != self._valve_open:
            self._valve_open = bool(ctl.open)
            self._emit(
                "valve",
                open=self._valve_open,
                reason=self.fw["simnode"].VALVE_REASON_NAMES[ctl.reason],
                ambient=self.node.app.temp_c,
            )

    def _emit(self, event: str, **fields: Any) -> None:
        self.on_event(
            {
                "node": self.name,
                "kind": self.kind,
                "dev_eui": f"{self.dev_eui:016X}",
                "event": event,
                "t_s": self.clock.now_ms() / 1000,
                **fields,
            }
        )


def _sf_bw(datr: str) -> tuple[int, int]:
    sf, bw = datr.upper().removeprefix("SF").split("BW")
    return int(sf), int(bw)


def _chan(freq_hz: int) -> int:
    chans = [
        868_100_000,
        868_300_000,
        868_500_000,
        867_100_000,
        867_300_000,
        867_500_000,
        867_700_000,
        867_900_000,
    ]
    return chans.index(freq_hz) if freq_hz in chans else 0
