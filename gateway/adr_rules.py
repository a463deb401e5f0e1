"""The rules of adaptive data rate (ADR) for EU868 class-A devices: pure functions of recent uplinks.

The algorithm follows Semtech's recommended network-side ADR (ChirpStack and The Things Stack build on it):

- keep the best SNR (over all gateways) of the device's last :data:`HISTORY` uplinks;
- margin = max SNR - the SNR the current data rate needs (:data:`REQUIRED_SNR_DB`) - the installation
  margin (config ``adr_margin_db``, 10 dB by default);
- every whole 3 dB of margin is one step (rounded towards zero: a margin just below nought does not yet
  cost power; others round down): first up the data rate (to DR5, SF7), then down the transmit power
  (index up, 2 dB each, to index 7); a negative margin raises the power again. The data rate is never lowered
  by the network: the device's own back-off does that when the link fails;
- the frame-counter gaps in the same history give the packet loss, and the loss with the device's current
  NbTrans picks its new NbTrans (:data:`NB_TRANS_TABLE`, 1 to 3 transmissions of each unconfirmed uplink):
  a water-level node at the edge of coverage that loses one reading in five sends each one twice. A run
  of more than :data:`OUTAGE_GAP` missing counters is not radio loss (at 30 % loss it starts at about one
  uplink in 560,000) but an outage, of this gateway or of the node's power, or the counter jump of a
  node that restarted (the firmware skips ahead to its last persisted FCnt block): the history starts
  again there, instead of every node of the city being told to send each uplink three times after a
  gateway restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from havel.codecs.lorawan import airtime, eu868

__all__ = [
    "ALL_DEFINED_CHANNELS",
    "ANSWER_WITHIN",
    "HISTORY",
    "MAX_DR",
    "MAX_TX_POWER",
    "NB_TRANS_TABLE",
    "OUTAGE_GAP",
    "REQUIRED_SNR_DB",
    "link_adr_req",
    "loss_percent",
    "nb_trans_for",
    "target",
]

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
# Semtech's recommended NbTrans steps: rows by packet loss (< 5 %, < 10 %, < 30 %, more), columns by the
# device's current NbTrans (1, 2, 3)
NB_TRANS_TABLE = ((1, 1, 2), (1, 2, 3), (2, 3, 3), (3, 3, 3))
LOSS_BOUNDS_PERCENT = (5.0, 10.0, 30.0)
MAX_NB_TRANS = 3
OUTAGE_GAP = 10  # more missing FCnts in a row than this: an outage or a restart, not loss on the air


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


def loss_percent(fcnts: Sequence[int]) -> float:
    """Packet loss in percent over uplinks received with these strictly rising frame counters (accepted
    uplinks' are): the counters between them that never arrived, after all their NbTrans transmissions."""
    if not fcnts:
        return 0.0
    sent = fcnts[-1] - fcnts[0] + 1
    return 100.0 * (sent - len(fcnts)) / sent


def nb_trans_for(current: int, loss_pct: float) -> int:
    """The NbTrans a device sending each unconfirmed uplink ``current`` times should use at this loss."""
    column = min(max(current, 1), MAX_NB_TRANS) - 1
    low, mid, high = LOSS_BOUNDS_PERCENT
    row = 0 if loss_pct < low else 1 if loss_pct < mid else 2 if loss_pct < high else 3
    return NB_TRANS_TABLE[row][column]


def link_adr_req(dr: int, tx_power: int, nb_trans: int = 1) -> dict[str, Any]:
    """The LinkADRReq (as :mod:`havel.codecs.lorawan.maccmds` encodes it) for a rate, power and NbTrans."""
    return {
        "name": "LinkADRReq",
        "data_rate": dr,
        "tx_power": tx_power,
        "ch_mask": 0,
        "ch_mask_cntl": ALL_DEFINED_CHANNELS,
        "nb_trans": nb_trans,
    }
