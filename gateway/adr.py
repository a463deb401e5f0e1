"""Adaptive data rate (ADR) for EU868 class-A devices: which data rate and transmit power a device should use.

Pure logic, no I/O: :class:`AdrController` sees each live uplink of a device that has the ADR bit set and
says whether a LinkADRReq should go down in its receive windows, and whether the device asked for any
downlink at all (ADRACKReq). The scheduler (:mod:`.downlinks`) sends it and stores the acknowledged transmit
power through the small :class:`AdrStore` interface.

Why it matters on a city network: a device with ADR on that hears nothing from the network for
ADR_ACK_LIMIT (64) uplinks sets ADRACKReq; if no downlink follows within ADR_ACK_DELAY (32) more, it backs off
towards SF12 by itself (LoRaWAN 1.0.2 section 4.3.1.1), spending about 20 times the airtime and battery
of SF7. So an ADRACKReq is always answered, with a LinkADRReq when one is due and an empty frame otherwise.

The rules (Semtech's recommended network-side ADR) are in :mod:`.adr_rules`; this module keeps each
session's history and decides when they apply.

A decision needs a full history, and the history starts again whenever the device accepts a change: SNRs
measured at the old settings say nothing about the new ones (without that reset one good history would step
the power down again at every uplink). The state belongs to a session (DevEUI and session epoch): a device
that joins again, or is registered again, starts from its MAC's defaults (TXPower 0), and so does its ADR
state. The channel mask is "all defined channels" (ChMaskCntl 6): this network does not steer channels.

A LinkADRAns travels once, in the next uplink: when that uplink is lost, the request counts as lost after
:data:`ANSWER_WITHIN` uplinks. A device applies a LinkADRReq whole or not at all, and only the network raises
the data rate, so uplinks arriving at the asked (higher) data rate show that it was applied: its power and
NbTrans are then taken as acknowledged, rather than deciding again from settings the device left.
"""

from __future__ import annotations

import logging
from array import array
from dataclasses import dataclass
from typing import Any, Protocol

from havel.gateway.adr_rules import (
    ANSWER_WITHIN,
    HISTORY,
    OUTAGE_GAP,
    REQUIRED_SNR_DB,
    link_adr_req,
    loss_percent,
    nb_trans_for,
    target,
)

log = logging.getLogger(__name__)


class AdrStore(Protocol):
    """Where a session's acknowledged transmit power and NbTrans are kept across restarts (the data rate is
    seen on every uplink; those two are not)."""

    def load_settings(self, dev_eui: int, epoch: int) -> tuple[int, int] | None:
        """(TXPower, NbTrans) the device acknowledged in session ``epoch``; None if none (or another
        session's)."""
        ...

    def save_settings(self, dev_eui: int, epoch: int, tx_power: int, nb_trans: int) -> None:
        """Keep what the device acknowledged in session ``epoch`` (replacing any older session's)."""
        ...


FCNT_MAX = 0xFFFFFFFF  # FCnts are 32-bit: what the history's array of unsigned ints holds


class _Device:
    """One device's ADR state. A city network keeps one per device heard (10,000 and more), so it is kept
    small: plain slots, the history in two flat arrays (4 bytes per FCnt, 8 per SNR: the SNR stays the float
    it was, so decisions are those of the unpacked values), and no tuples or dicts kept per uplink."""

    __slots__ = (
        "asked",
        "asked_from_dr",
        "asked_left",
        "best_snr",
        "epoch",
        "fcnts",
        "last_change",
        "last_dr",
        "memo_dr",
        "memo_loss",
        "memo_margin",
        "memo_nb",
        "memo_power",
        "memo_snr",
        "nb_trans",
        "new_dr",
        "new_nb",
        "new_power",
        "snrs",
        "tx_power",
    )

    def __init__(self, epoch: int, tx_power: int = 0, nb_trans: int = 1) -> None:
        self.epoch = epoch  # the session this state belongs to
        self.tx_power = tx_power  # 0 (max EIRP) until the device acknowledged another
        self.nb_trans = nb_trans  # the MAC's default until the device acknowledged another
        # the last HISTORY uplinks at the current settings, oldest first: their FCnts, and their best SNRs
        # (where they had one)
        self.fcnts = array("I")
        self.snrs = array("d")
        self.best_snr = 0.0  # max(snrs), when there are any
        # a LinkADRReq (dr, tx_power, nb_trans) awaiting its answer ...
        self.asked: tuple[int, int, int] | None = None
        self.asked_left = 0  # ... for this many more uplinks
        self.asked_from_dr: int | None = None  # the data rate the device used when it was asked
        self.last_dr: int | None = None  # the data rate of its latest uplink
        # the change decided but not yet sent, with what it asked: a change that found no window to go in (the
        # gateway's duty cycle) is decided again at the next uplink, mostly the same, and then the same object
        # is handed out; dropped once sent
        self.last_change: tuple[tuple[int, int, int, bool], AdrDecision] | None = None
        # the inputs of the last decision (best SNR, loss, margin, DR, TXPower, NbTrans) and its result (DR,
        # TXPower, NbTrans): the history changes little from one uplink to the next, so most decisions are the
        # last one (memo_dr -1: none yet)
        self.memo_snr = self.memo_loss = self.memo_margin = 0.0
        self.memo_dr = -1
        self.memo_power = self.memo_nb = self.new_dr = self.new_power = self.new_nb = 0


@dataclass(frozen=True)
class AdrDecision:
    """What one uplink calls for: a LinkADRReq to send (or None), and whether a downlink must go out even
    without one (the device set ADRACKReq)."""

    command: dict[str, Any] | None = None
    answer_needed: bool = False


_NOTHING = AdrDecision()  # what most uplinks call for: one shared answer instead of one object each
_ANSWER_NEEDED = AdrDecision(answer_needed=True)


class AdrController:
    """Per-device ADR state (in memory; the acknowledged power through ``store``) and the decisions."""

    def __init__(self, store: AdrStore, *, margin_db: float = 10.0, enabled: bool = True) -> None:
        self.store = store
        self.margin_db = margin_db
        self.enabled = enabled
        self._devices: dict[int, _Device] = {}
        self.counters = {"requested": 0, "accepted": 0, "refused": 0, "lost": 0}

    def _state(self, dev_eui: int, epoch: int) -> _Device:
        st = self._devices.get(dev_eui)
        if st is None or st.epoch != epoch:  # first sight, or a new session: its MAC starts from defaults
            power, nb = self.store.load_settings(dev_eui, epoch) or (0, 1)
            st = self._devices[dev_eui] = _Device(epoch, tx_power=power, nb_trans=nb)
        return st

    def export_state(self, dev_eui: int) -> dict[str, Any] | None:
        """The device's whole ADR state as JSON-ready data (None if none), so that another process (a roof of
        a shared network) can continue it with :meth:`import_state`."""
        st = self._devices.get(dev_eui)
        if st is None:
            return None
        return {
            "epoch": st.epoch,
            "tx_power": st.tx_power,
            "nb_trans": st.nb_trans,
            "fcnts": list(st.fcnts),
            "snrs": list(st.snrs),
            "asked": list(st.asked) if st.asked is not None else None,
            "asked_left": st.asked_left,
            "asked_from_dr": st.asked_from_dr,
            "last_dr": st.last_dr,
        }

    def import_state(self, dev_eui: int, state: dict[str, Any] | None) -> None:
        """Continue from a state :meth:`export_state` gave (None: forget the device here, so that its next
        uplink starts from the store's settings). ValueError, TypeError or KeyError for a malformed one."""
        if state is None:
            self._devices.pop(dev_eui, None)
            return
        asked = state["asked"]
        st = _Device(int(state["epoch"]), tx_power=int(state["tx_power"]), nb_trans=int(state["nb_trans"]))
        for f in state["fcnts"][-HISTORY:]:
            fcnt = int(f)
            if not 0 <= fcnt <= FCNT_MAX:
                raise ValueError(f"FCnt {fcnt} in the ADR history is not a 32-bit counter")
            st.fcnts.append(fcnt)
        st.snrs.extend(float(x) for x in state["snrs"][-HISTORY:])
        if st.snrs:
            st.best_snr = max(st.snrs)
        st.asked = (int(asked[0]), int(asked[1]), int(asked[2])) if asked is not None else None
        st.asked_left = int(state["asked_left"])
        st.asked_from_dr = None if state["asked_from_dr"] is None else int(state["asked_from_dr"])
        st.last_dr = None if state["last_dr"] is None else int(state["last_dr"])
        self._devices[dev_eui] = st

    def settings(self, dev_eui: int, epoch: int) -> tuple[int, int]:
        """(TXPower, NbTrans) the device last acknowledged in session ``epoch``: (0, 1), its MAC's defaults,
        if none."""
        st = self._devices.get(dev_eui)
        if st is not None and st.epoch == epoch:
            return st.tx_power, st.nb_trans
        return self.store.load_settings(dev_eui, epoch) or (0, 1)  # (asking changes no state)

    def tx_power(self, dev_eui: int, epoch: int) -> int:
        """The TXPower index the device last acknowledged in session ``epoch`` (0, the maximum, if none)."""
        return self.settings(dev_eui, epoch)[0]

    def on_uplink(
        self,
        dev_eui: int,
        epoch: int,
        adr: bool,
        adr_ack_req: bool,
        dr: int | None,
        max_snr_db: float | None,
        mac_up: list[dict[str, Any]],
        fcnt: int,
    ) -> AdrDecision:
        """One live uplink of a device in its session ``epoch``: its FCtrl ADR bits, its data rate (None if
        not a LoRa EU868 one), the best SNR among its copies, its uplink MAC commands and its FCnt. Call
        inside the uplink's transaction (an accepted change is stored); call :meth:`sent` once the
        decision's command is on its way."""
        decision = _ANSWER_NEEDED if adr_ack_req else _NOTHING  # (shared: a change gets its own below)
        st = self._state(dev_eui, epoch)
        st.last_dr = dr
        answers = [c for c in mac_up if c.get("name") == "LinkADRAns"] if mac_up else None
        if answers and st.asked is not None:
            self._answered(dev_eui, st, answers[-1])
        elif st.asked is not None:
            st.asked_left -= 1
            if dr is not None and st.asked_from_dr is not None and dr == st.asked[0] > st.asked_from_dr:
                # the asked (higher) rate is in use: only this request raises it, and a device takes a
                # request whole or not at all, so the uplink that carried the answer was lost
                log.info("device %016X: its LinkADRAns was lost, but it sends at DR%d as asked", dev_eui, dr)
                self._applied(dev_eui, st)
            elif st.asked_left <= 0:  # the downlink (or its answer) was lost: decide again from here
                log.info("device %016X: no LinkADRAns to the LinkADRReq sent; it may be sent again", dev_eui)
                self.counters["lost"] += 1
                st.asked = None
        if not (self.enabled and adr) or dr is None or dr not in REQUIRED_SNR_DB:
            return decision
        fcnts, snrs = st.fcnts, st.snrs
        if fcnts and fcnt - fcnts[-1] - 1 > OUTAGE_GAP:
            del fcnts[:]  # (the SNRs stay: the link itself did not change)
        if len(fcnts) >= HISTORY:  # (a ring: the oldest goes, in place)
            del fcnts[0]
        fcnts.append(fcnt)
        if max_snr_db is not None:
            # the best SNR kept as it goes, rather than looked for among HISTORY floats at every uplink
            if not snrs or max_snr_db > st.best_snr:
                st.best_snr = max_snr_db
            if len(snrs) >= HISTORY:
                oldest = snrs[0]
                del snrs[0]
                snrs.append(max_snr_db)
                if oldest == st.best_snr and max_snr_db != oldest:  # the best left: which is it now
                    st.best_snr = max(snrs)
            else:
                snrs.append(max_snr_db)
        if st.asked is not None or len(fcnts) < HISTORY or not snrs:
            return decision
        sent = fcnts[-1] - fcnts[0] + 1
        loss = 100.0 * (sent - len(fcnts)) / sent  # loss_percent(), inline
        best = st.best_snr
        margin = self.margin_db
        tx_power, nb_trans = st.tx_power, st.nb_trans
        if (
            st.memo_dr == dr
            and st.memo_snr == best
            and st.memo_power == tx_power
            and st.memo_nb == nb_trans
            and st.memo_loss == loss
            and st.memo_margin == margin
        ):
            new_dr, new_power, new_nb = st.new_dr, st.new_power, st.new_nb
        else:
            new_dr, new_power = target(best, dr, tx_power, margin)
            new_nb = nb_trans_for(nb_trans, loss)
            st.memo_snr, st.memo_loss, st.memo_margin = best, loss, margin
            st.memo_dr, st.memo_power, st.memo_nb = dr, tx_power, nb_trans
            st.new_dr, st.new_power, st.new_nb = new_dr, new_power, new_nb
        if (new_dr, new_power, new_nb) != (dr, st.tx_power, st.nb_trans):
            key = (new_dr, new_power, new_nb, adr_ack_req)
            last = st.last_change
            if last is None or last[0] != key:
                command = link_adr_req(new_dr, new_power, new_nb)
                last = st.last_change = (key, AdrDecision(command, adr_ack_req))
            return last[1]  # (its command is shared: read-only, as every decision's is)
        return decision

    def sent(self, dev_eui: int, epoch: int, command: dict[str, Any]) -> None:
        """The LinkADRReq of a decision went out in a downlink: wait for its answer (a decision that found no
        window to go in is simply made again at the next uplink)."""
        st = self._state(dev_eui, epoch)
        st.asked = (int(command["data_rate"]), int(command["tx_power"]), int(command["nb_trans"]))
        st.asked_left = ANSWER_WITHIN
        st.asked_from_dr = st.last_dr
        st.last_change = None  # (no decision is made again while the answer is awaited)
        self.counters["requested"] += 1
        log.info(
            "device %016X: LinkADRReq DR%d, TXPower %d, NbTrans %d (from TXPower %d, NbTrans %d; best SNR "
            "%.1f dB, loss %.0f %% over %d uplinks)",
            dev_eui,
            *st.asked,
            st.tx_power,
            st.nb_trans,
            max(st.snrs) if st.snrs else float("nan"),
            loss_percent(st.fcnts),
            len(st.fcnts),
        )

    def _answered(self, dev_eui: int, st: _Device, ans: dict[str, Any]) -> None:
        asked = st.asked
        assert asked is not None
        if ans.get("channel_mask_ack") and ans.get("data_rate_ack") and ans.get("power_ack"):
            self._applied(dev_eui, st)
            return
        st.asked = None
        del st.fcnts[:]  # a new history before asking again
        del st.snrs[:]
        refused = [k for k in ("channel_mask_ack", "data_rate_ack", "power_ack") if not ans.get(k)]
        self.counters["refused"] += 1
        log.warning(
            "device %016X: refused LinkADRReq DR%d TXPower %d NbTrans %d (%s not acknowledged); asks again "
            "after %d uplinks",
            dev_eui,
            *asked,
            ", ".join(refused),
            HISTORY,
        )

    def _applied(self, dev_eui: int, st: _Device) -> None:
        """The device took the asked settings: keep them, and start a new history (the SNRs and losses
        measured at the old settings say nothing about the new ones)."""
        asked = st.asked
        assert asked is not None
        st.asked = None
        del st.fcnts[:]
        del st.snrs[:]
        st.tx_power, st.nb_trans = asked[1], asked[2]
        self.store.save_settings(dev_eui, st.epoch, st.tx_power, st.nb_trans)
        self.counters["accepted"] += 1
        log.info("device %016X: accepted DR%d, TXPower %d, NbTrans %d", dev_eui, *asked)


__all__ = ["AdrController", "AdrDecision", "AdrStore"]
