"""Adaptive data rate (ADR) for EU868 class-A devices: which data rate and transmit power a device should use.

Pure logic, no I/O: :class:`AdrController` sees each live uplink of a device that has the ADR bit set and
says whether a LinkADRReq should go down in its receive windows, and whether the device asked for any
downlink at all (ADRACKReq). The scheduler (:mod:`.downlinks`) sends it and stores the acknowledged transmit
power through the small :class:`AdrStore` interface.

Why it matters on a city network: a device with ADR on that hears nothing from the network for
ADR_ACK_LIMIT (64) uplinks sets ADRACKReq; if no downlink follows within ADR_ACK_DELAY (32) more, it backs off
towards SF12 by itself (LoRaWAN 1.0.2 section 4.3.1.1), spending about 20 times the airtime and battery
of SF7. So an ADRACKReq is always answered, with a LinkADRReq when one is due and an empty frame otherwise.

The algorithm follows Semtech's recommended network-side ADR (ChirpStack and The Things Stack build on it):

- keep the best SNR (over all gateways) of the device's last :data:`HISTORY` uplinks;
- margin = max SNR - the SNR the current data rate needs (:data:`REQUIRED_SNR_DB`) - the installation
  margin (config ``adr_margin_db``, 10 dB by default);
- every whole 3 dB of margin is one step (rounded towards zero: a margin just below nought does not yet
  cost power; others round down): first up the data rate (to DR5, SF7), then down the transmit power
  (index up, 2 dB each, to index 7); a negative margin raises the power again. The data rate is never lowered
  by the network: the device's own back-off does that when the link fails.

A decision needs a full history, and the history starts again whenever the device accepts a change: SNRs
measured at the old settings say nothing about the new ones (without that reset one good history would step
the power down again at every uplink). The state belongs to a session (DevEUI and session epoch): a device
that joins again, or is registered again, starts from its MAC's defaults (TXPower 0), and so does its ADR
state. NbTrans stays 1 and the channel mask is "all defined channels" (ChMaskCntl 6): this network does not
use either to steer devices.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from havel.codecs.lorawan import airtime, eu868

log = logging.getLogger(__name__)

HISTORY = 20  # uplinks whose best SNR a decision looks at
STEP_DB = 3.0  # one data-rate or power step per this much margin
MAX_DR = 5  # SF7BW125: the highest DR every EU868 gateway channel takes
MAX_TX_POWER = 7  # EU868 TXPower index 7 = max EIRP - 14 dB (RP002 table 2.4.3)
ANSWER_WITHIN = 2  # uplinks to wait for a LinkADRAns before a LinkADRReq counts as lost
# Demodulation floor SNR per EU868 data rate that ADR steers between (the 125 kHz ones, DR0 .. DR5).
REQUIRED_SNR_DB: dict[int, float] = {
    dr: airtime.DEMOD_SNR_DB[sf] for dr, (sf, bw) in eu868.DATA_RATES.items() if bw == 125
}
ALL_DEFINED_CHANNELS = 6  # ChMaskCntl 6 in EU868: every defined channel on, ChMask ignored


def target(max_snr_db: float, dr: int, tx_power: int, margin_db: float) -> tuple[int, int]:
    """The data rate and TXPower index a device at ``dr`` and ``tx_power`` should move to, given the best
    SNR of its recent uplinks and the installation margin."""
    # truncated towards zero: a margin a little below nought is no reason to spend more power yet
    steps = int((max_snr_db - REQUIRED_SNR_DB.get(dr, REQUIRED_SNR_DB[0]) - margin_db) / STEP_DB)
    new_dr, new_power = dr, tx_power
    while steps > 0 and new_dr < MAX_DR:
        new_dr += 1
        steps -= 1
    while steps > 0 and new_power < MAX_TX_POWER:
        new_power += 1
        steps -= 1
    while steps < 0 and new_power > 0:
        new_power -= 1
        steps += 1
    return new_dr, new_power


def link_adr_req(dr: int, tx_power: int) -> dict[str, Any]:
    """The LinkADRReq (as :mod:`havel.codecs.lorawan.maccmds` encodes it) for a data rate and power."""
    return {
        "name": "LinkADRReq",
        "data_rate": dr,
        "tx_power": tx_power,
        "ch_mask": 0,
        "ch_mask_cntl": ALL_DEFINED_CHANNELS,
        "nb_trans": 1,
    }


class AdrStore(Protocol):
    """Where a session's acknowledged transmit power is kept across restarts (the data rate is seen on every
    uplink; the power is not)."""

    def load_tx_power(self, dev_eui: int, epoch: int) -> int | None:
        """The TXPower the device acknowledged in session ``epoch``; None if none (or another session's)."""
        ...

    def save_tx_power(self, dev_eui: int, epoch: int, tx_power: int) -> None:
        """Keep the TXPower the device acknowledged in session ``epoch`` (replacing any older session's)."""
        ...


@dataclass
class _Device:
    epoch: int  # the session this state belongs to
    tx_power: int = 0  # 0 (max EIRP) until the device acknowledged another
    snrs: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    asked: tuple[int, int] | None = None  # a LinkADRReq (dr, tx_power) awaiting its LinkADRAns ...
    asked_left: int = 0  # ... for this many more uplinks


@dataclass
class AdrDecision:
    """What one uplink calls for: a LinkADRReq to send (or None), and whether a downlink must go out even
    without one (the device set ADRACKReq)."""

    command: dict[str, Any] | None = None
    answer_needed: bool = False


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
            saved = self.store.load_tx_power(dev_eui, epoch)
            st = self._devices[dev_eui] = _Device(epoch, tx_power=saved if saved is not None else 0)
        return st

    def tx_power(self, dev_eui: int, epoch: int) -> int:
        """The TXPower index the device last acknowledged in session ``epoch`` (0, the maximum, if none)."""
        st = self._devices.get(dev_eui)
        if st is not None and st.epoch == epoch:
            return st.tx_power
        saved = self.store.load_tx_power(dev_eui, epoch)  # (asking changes no state)
        return saved if saved is not None else 0

    def on_uplink(
        self,
        dev_eui: int,
        epoch: int,
        *,
        adr: bool,
        adr_ack_req: bool,
        dr: int | None,
        max_snr_db: float | None,
        mac_up: list[dict[str, Any]],
    ) -> AdrDecision:
        """One live uplink of a device in its session ``epoch``: its FCtrl ADR bits, its data rate (None if
        not a LoRa EU868 one), the best SNR among its copies and its uplink MAC commands. Call inside the
        uplink's transaction (an accepted change is stored); call :meth:`sent` once the decision's command
        is on its way."""
        decision = AdrDecision(answer_needed=adr_ack_req)
        st = self._state(dev_eui, epoch)
        answers = [c for c in mac_up if c.get("name") == "LinkADRAns"]
        if answers and st.asked is not None:
            self._answered(dev_eui, st, answers[-1])
        elif st.asked is not None:
            st.asked_left -= 1
            if st.asked_left <= 0:  # the downlink (or its answer) was lost: decide again from here
                log.info("device %016X: no LinkADRAns to the LinkADRReq sent; it may be sent again", dev_eui)
                self.counters["lost"] += 1
                st.asked = None
        if not (self.enabled and adr) or dr is None or dr not in REQUIRED_SNR_DB:
            return decision
        if max_snr_db is not None:
            st.snrs.append(max_snr_db)
        if st.asked is not None or len(st.snrs) < HISTORY:
            return decision
        new_dr, new_power = target(max(st.snrs), dr, st.tx_power, self.margin_db)
        if (new_dr, new_power) != (dr, st.tx_power):
            decision.command = link_adr_req(new_dr, new_power)
        return decision

    def sent(self, dev_eui: int, epoch: int, command: dict[str, Any]) -> None:
        """The LinkADRReq of a decision went out in a downlink: wait for its answer (a decision that found no
        window to go in is simply made again at the next uplink)."""
        st = self._state(dev_eui, epoch)
        st.asked, st.asked_left = (int(command["data_rate"]), int(command["tx_power"])), ANSWER_WITHIN
        self.counters["requested"] += 1
        best = max(st.snrs) if st.snrs else float("nan")
        log.info(
            "device %016X: LinkADRReq DR%d, TXPower %d (from TXPower %d; best SNR %.1f dB of %d uplinks)",
            dev_eui, st.asked[0], st.asked[1], st.tx_power, best, len(st.snrs),
        )

    def _answered(self, dev_eui: int, st: _Device, ans: dict[str, Any]) -> None:
        asked = st.asked
        assert asked is not None
        st.asked = None
        st.snrs.clear()  # measured at the old settings: start again either way
        if ans.get("channel_mask_ack") and ans.get("data_rate_ack") and ans.get("power_ack"):
            st.tx_power = asked[1]
            self.store.save_tx_power(dev_eui, st.epoch, asked[1])
            self.counters["accepted"] += 1
            log.info("device %016X: accepted DR%d, TXPower %d", dev_eui, asked[0], asked[1])
            return
        refused = [k for k in ("channel_mask_ack", "data_rate_ack", "power_ack") if not ans.get(k)]
        self.counters["refused"] += 1
        log.warning(
            "device %016X: refused LinkADRReq DR%d TXPower %d (%s not acknowledged); asks again after %d "
            "uplinks", dev_eui, asked[0], asked[1], ", ".join(refused), HISTORY,
        )


__all__ = [
    "HISTORY",
    "MAX_DR",
    "MAX_TX_POWER",
    "REQUIRED_SNR_DB",
    "AdrController",
    "AdrDecision",
    "AdrStore",
    "link_adr_req",
    "target",
]
