"""The ADR engine's memory per device (gateway/adr.py): a district's gateway keeps one state for every device
it hears, 10,000 and more, so the state after a full history must stay small."""

from __future__ import annotations

import gc
import tracemalloc

from havel.gateway.adr import AdrController
from havel.gateway.adr_rules import HISTORY

DEVICES = 1_000
# Bytes of ADR state per device after a full history (the dict entry, the state and its history arrays, the
# last decision's inputs). Python 3.11 measures about 730; it was about 2,500 with a deque of float and int
# objects and tuples of the last decision per device.
MAX_BYTES_PER_DEVICE = 1_000


class NoSettings:
    """An AdrStore with nothing stored (every device starts from its MAC's defaults)."""

    def load_settings(self, dev_eui: int, epoch: int) -> tuple[int, int] | None:
        return None

    def save_settings(self, dev_eui: int, epoch: int, tx_power: int, nb_trans: int) -> None:
        pass


def test_a_devices_adr_state_after_a_full_history_stays_small() -> None:
    ctl = AdrController(NoSettings())
    eui0 = 0x70B3D57ED0000000
    euis = [eui0 + i for i in range(DEVICES)]  # (made before measuring: the registry holds these)
    # SNRs and FCnts as a gateway sees them: distinct floats, and one uplink lost (under 5 %: NbTrans stays 1)
    snrs = [-3.25 + 0.1 * (k % 17) for k in range(HISTORY + 5)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        decisions = 0
        for i, eui in enumerate(euis):
            for k in range(HISTORY + 5):
                d = ctl.on_uplink(
                    eui,
                    1,
                    adr=True,
                    adr_ack_req=False,
                    dr=5,
                    max_snr_db=snrs[k] + i * 0.001,
                    mac_up=[],
                    fcnt=k + (k >= 12),
                )
                decisions += d.command is None
        gc.collect()
        per_device = (tracemalloc.get_traced_memory()[0] - before) / DEVICES
    finally:
        tracemalloc.stop()
    assert decisions == DEVICES * (HISTORY + 5)  # (a steady link at DR5, full power: no change)
    for eui in (euis[0], euis[-1]):  # every device's history is full and kept
        state = ctl.export_state(eui)
        assert state is not None and len(state["fcnts"]) == len(state["snrs"]) == HISTORY
    assert per_device <= MAX_BYTES_PER_DEVICE, f"{per_device:.0f} bytes of ADR state per device"
