"""The sessions the network server works with, and the store it keeps them in (a Protocol).

:class:`SessionStore` is all the network server asks of session and counter storage; the gateway's SQLite
device registry (``havel.gateway.registry.Registry``) implements it. Another implementation (a store shared
by the gateways of several roofs, a network server followed passively) only has to provide these calls,
with the same transaction rule: mutating calls happen inside ``with store.transaction():`` together with the
outbox records they produced, and reach what the store reads back only when that commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from havel.codecs.lorawan.ids import eui_hex


# slots: the registry keeps one Device and one Session per registered device in memory (a district has
# 10,000), and an instance dict doubles their size
@dataclass(frozen=True, slots=True)
class Session:
    """An active session: what the network server needs to accept an uplink. Keys never print."""

    dev_addr: int
    nwk_s_key: bytes = field(repr=False)
    app_s_key: bytes = field(repr=False)
    fcnt_up: int | None = None
    fcnt_down: int = 0
    # joins accepted for the device when this session began (0 for ABP): part of the message id, because
    # FCnt restarts at 0 with every join (see network.messages.message_id)
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Device:
    """One registered device. ``session`` is None for an OTAA device that has not joined yet."""

    name: str
    dev_eui: int
    codec: str
    activation: str
    join_eui: int | None = None
    app_key: bytes | None = field(default=None, repr=False)
    session: Session | None = None
    rx1_delay: int = 1
    rx1_dr_offset: int = 0
    rx2_dr: int = 0
    rx2_freq_hz: int = 869_525_000
    battery: int | None = None
    battery_at: float | None = None
    last_seen: float | None = None
    # DevEUI as consoles print it (made once: every message names the device)
    eui_hex: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "eui_hex", f"{self.dev_eui:016X}")

    def export(self, *, show_keys: bool) -> dict[str, Any]:
        """The format of ``havel device import`` and ``export``; keys as hex only with ``show_keys``."""
        s = self.session

        def key(k: bytes | None) -> str | None:
            if k is None:
                return None
            return k.hex().upper() if show_keys else "<redacted>"

        out: dict[str, Any] = {
            "name": self.name,
            "dev_eui": self.eui_hex,
            "join_eui": eui_hex(self.join_eui) if self.join_eui is not None else None,
            "app_key": key(self.app_key),
            "codec": self.codec,
            "activation": self.activation,
            "dev_addr": f"{s.dev_addr:08X}" if s else None,
            "nwk_s_key": key(s.nwk_s_key) if s and self.activation == "abp" else None,
            "app_s_key": key(s.app_s_key) if s and self.activation == "abp" else None,
        }
        return out


class SessionStore(Protocol):
    """What the network server needs from session and counter storage.

    Mutating calls are made inside ``with store.transaction():`` together with the outbox put.
    """

    def transaction(self) -> Any:
        """Context manager: one atomic unit (SQLite BEGIN IMMEDIATE .. COMMIT)."""

    def refresh(self) -> None:
        """Pick up changes made by others (CLI, other gateways)."""

    def by_dev_addr(self, dev_addr: int) -> list[Device]:
        """Devices whose current session has this DevAddr (several may: the MIC decides)."""

    def get(self, dev_eui: int) -> Device | None:
        """A device by DevEUI."""

    def by_join(self, join_eui: int, dev_eui: int) -> Device | None:
        """An OTAA device by the EUIs of its join-request."""

    def set_fcnt_up(self, dev_eui: int, fcnt32: int, seen_at: float, *, epoch: int | None = None) -> bool:
        """Record an accepted uplink counter of the session ``epoch`` (None: the current one). A counter of
        a session replaced since (a join earlier in the same transaction) is not written: False."""

    def take_fcnt_down(self, dev_eui: int) -> int:
        """The next downlink counter (and advance it)."""

    def dev_nonce_used(self, dev_eui: int, dev_nonce: int) -> bool:
        """Whether the device already used this DevNonce."""

    def activate(
        self,
        dev_eui: int,
        session: Session,
        dev_nonce: int,
        *,
        rx1_delay: int,
        rx1_dr_offset: int,
        rx2_dr: int,
    ) -> int:
        """Store a new session after a join (and the DevNonce as used); returns its session epoch (the
        number of joins accepted for the device, this one included)."""

    def next_join_nonce(self) -> int:
        """A fresh 24-bit JoinNonce."""

    def dev_addr_in_use(self, dev_addr: int) -> bool:
        """Whether a session holds this DevAddr."""

    def set_battery(self, dev_eui: int, battery: int, at: float) -> None:
        """Record a DevStatusAns."""
