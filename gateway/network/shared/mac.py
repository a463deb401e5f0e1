"""The MAC answers a roof of a shared network sends with a device's downlink, as a single roof does
(:mod:`havel.gateway.downlinks`): LinkCheckAns, DeviceTimeAns, DevStatusReq when the battery report is
stale, LinkADRReq from the ADR engine (:mod:`havel.gateway.adr`), and a downlink for every ADRACKReq.

What a device's MAC needs to remember between uplinks (its ADR history, what was asked and when) lives in
Redis (``mac:<DevEUI>``, JSON), read with the device's queued commands and written back after the batch, so
the roof that hears the device next continues where the last one stopped."""

from __future__ import annotations

import json
import logging
from typing import Any

from havel.codecs.lorawan import eu868
from havel.errors import InputError
from havel.gateway.adr import AdrController
from havel.gateway.config import NetworkConfig
from havel.gateway.downlink_mac import device_time_ans, link_check_ans
from havel.gateway.network.outcome import Outcome

log = logging.getLogger("havel.gateway.shared")

DEVSTATUS_EVERY_S = 3600.0  # do not ask a device for its battery more often than this (as a single roof)


class NoSettings:
    """The ADR engine's store of acknowledged settings: none here, the whole state travels in ``mac:``."""

    def load_settings(self, dev_eui: int, epoch: int) -> tuple[int, int] | None:
        return None

    def save_settings(self, dev_eui: int, epoch: int, tx_power: int, nb_trans: int) -> None:
        """(kept in the state :meth:`SharedMac.answers` returns)"""


class SharedMac:
    """See the module docstring; one per roof. ``counts`` is the roof's event counter."""

    def __init__(self, net: NetworkConfig, counts: Any) -> None:
        self.net = net
        self.adr = AdrController(NoSettings(), margin_db=net.adr_margin_db, enabled=net.adr)
        self.counts = counts

    def load(self, dev_eui: int, raw: str | None) -> dict[str, Any]:
        """A device's MAC state from its JSON (a damaged one is counted and started afresh)."""
        state: dict[str, Any] = {}
        if raw is not None:
            try:
                loaded = json.loads(raw)
                if not isinstance(loaded, dict):
                    raise TypeError("not an object")
                self.adr.import_state(dev_eui, loaded.get("adr"))
                state = loaded
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                self.counts["damaged_mac_state"] += 1
                log.error(
                    "MAC state of %016X in the shared store is damaged (%s): started afresh", dev_eui, exc
                )
                self.adr.import_state(dev_eui, None)
        else:
            self.adr.import_state(dev_eui, None)
        return state

    def answers(self, out: Outcome, state: dict[str, Any], now: float) -> tuple[list[dict[str, Any]], bool]:
        """The MAC commands for this uplink's downlink, and whether a downlink must go even without any
        (ADRACKReq). ``state`` (from :meth:`load`) is updated for what is asked."""
        dev, best, frame = out.device, out.best, out.frame
        assert dev is not None and best is not None and frame is not None
        cmds: list[dict[str, Any]] = []
        answer_adr = False
        if frame.adr or frame.adr_ack_req or out.mac_up:
            try:
                up_dr: int | None = eu868.dr_from_datr(best.rx.datr)
            except InputError:
                up_dr = None
            snrs = [c.rx.lsnr for c in out.copies if c.rx.lsnr is not None]
            decision = self.adr.on_uplink(
                dev.dev_eui,
                dev.session.epoch if dev.session is not None else 0,
                adr=frame.adr,
                adr_ack_req=frame.adr_ack_req,
                dr=up_dr,
                max_snr_db=max(snrs) if snrs else None,
                mac_up=out.mac_up,
                fcnt=out.fcnt32 if out.fcnt32 is not None else 0,
            )
            if decision.command is not None:
                cmds.append(decision.command)
            answer_adr = decision.answer_needed
        for up in out.mac_up:
            if up.get("name") == "LinkCheckReq":
                cmds.append(link_check_ans(out))
            elif up.get("name") == "DeviceTimeReq":
                cmds.append(device_time_ans(out))
        stale = dev.battery_at is None or now - dev.battery_at > self.net.battery_stale_s
        asked = float(state.get("status_asked") or 0.0)
        if stale and now - asked > DEVSTATUS_EVERY_S:
            cmds.append({"name": "DevStatusReq"})
        return cmds, answer_adr

    def sent(self, out: Outcome, cmds: list[dict[str, Any]], state: dict[str, Any], now: float) -> None:
        """These MAC commands went down: the ADR engine waits for its answer, a DevStatusReq is not asked
        again for an hour."""
        dev = out.device
        assert dev is not None
        for m in cmds:
            if m["name"] == "LinkADRReq":
                self.adr.sent(dev.dev_eui, dev.session.epoch if dev.session is not None else 0, m)
            elif m["name"] == "DevStatusReq":
                state["status_asked"] = now
        if cmds:
            self.counts["mac_answers"] += 1

    def dump(self, dev_eui: int, state: dict[str, Any]) -> str:
        """The device's MAC state as JSON (its ADR state as the engine has it now)."""
        return json.dumps({**state, "adr": self.adr.export_state(dev_eui)})
