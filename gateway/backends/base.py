"""What the daemon needs of a gateway backend (see :mod:`havel.gateway.intake`), and the protocol-free
downlink it hands one: the network server builds frames and picks windows, each backend puts them into its
own wire format (GWMP: a ``txpk`` in a PULL_RESP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class DownlinkFrame:
    """One frame to transmit through a concentrator, in units that say what they are."""

    data: bytes  # the PHYPayload
    freq_hz: int
    datr: str  # the LoRa data rate, e.g. "SF12BW125"
    tmst: int | None  # the concentrator's microsecond counter to send at (it wraps at 2**32); None: at once
    power_dbm: int = 14


class Backend(Protocol):
    """What the intake needs of the gateway backend that receptions come from and downlinks go to."""

    def withhold_acks(self) -> int:
        """Drop the acknowledgements held back for what was received so far; returns how many."""
        ...

    def release_acks(self) -> int:
        """Send the acknowledgements held back (what they acknowledge is stored); returns how many."""
        ...

    def can_send(self, gateway_eui: int) -> bool:
        """Whether a downlink can go out through this concentrator now."""
        ...

    def transmit(
        self,
        gateway_eui: int,
        frame: DownlinkFrame,
        *,
        fallback: DownlinkFrame | None = None,
        info: Any = None,
        window: str = "RX1",
    ) -> bool:
        """Schedule ``frame`` through this concentrator, ``fallback`` instead when the concentrator reports
        that it could not send it (False when it cannot go out)."""
        ...
