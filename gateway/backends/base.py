"""The interface the daemon's intake uses of a gateway backend (see :mod:`havel.gateway.intake`)."""

from __future__ import annotations

from typing import Any, Protocol


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

    def send(
        self,
        gateway_eui: int,
        txpk: dict[str, Any],
        *,
        fallback: dict[str, Any] | None = None,
        info: Any = None,
        window: str = "RX1",
    ) -> bool:
        """Schedule a downlink (False when it cannot go out)."""
        ...
