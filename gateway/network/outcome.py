"""What became of one frame: an :class:`Outcome` with a typed :class:`Status` and, when rejected, a
:class:`Reason` (``str`` enums: their values are the stable metric labels and compare equal to them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from havel.codecs.lorawan import phy
from havel.errors import HavelError
from havel.gateway.network.reception import Reception
from havel.gateway.network.sessions import Device


class Status(StrEnum):
    ACCEPTED = "accepted"  # a new uplink, stored
    JOINED = "joined"  # a join-request answered with a join-accept, the session stored
    RETRANSMISSION = "retransmission"  # a stored frame sent again by the device: only ACKed, not stored again
    REJECTED = "rejected"  # see the reason


class Reason(StrEnum):
    """Why a frame was rejected (metric labels, stable)."""

    CRC = "crc"
    FRAME = "frame"
    NOT_UPLINK = "not_uplink"
    UNKNOWN_DEV_ADDR = "unknown_dev_addr"
    MIC = "mic"
    FCNT_GAP = "fcnt_gap"
    REPLAY = "replay"
    DUPLICATE = "duplicate"
    UNKNOWN_DEVICE = "unknown_device"
    DEV_NONCE_REUSED = "dev_nonce_reused"
    JOIN_UNANSWERED = "join_unanswered"
    STORAGE = "storage"
    NO_DEV_ADDR = "no_dev_addr"


REJECT_REASONS = tuple(r.value for r in Reason)


class NotAnswered(HavelError):
    """Raised by ``after_store`` for a join whose join-accept cannot be sent: the join is not recorded."""


@dataclass
class Outcome:
    """What became of one frame (all its copies)."""

    status: Status
    reason: Reason | None = None  # for rejected ones
    detail: str = ""
    device: Device | None = None
    fcnt32: int | None = None
    frame: phy.DataFrame | None = None
    best: Reception | None = None
    copies: list[Reception] = field(default_factory=list)
    mac_up: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] | None = None
    # for joins: the join-accept and its downlink choices (RX1 then RX2) as (freq_hz, datr, tmst)
    join_accept: bytes | None = None
    downlink_plan: list[tuple[int, str, int]] = field(default_factory=list)
    # an uplink of a session that a join in the same batch replaced: stored, but nothing is sent down in its
    # windows (the device is moving to the new session) and its counter stays with the old session
    superseded: bool = False

    @classmethod
    def accepted(
        cls,
        device: Device,
        fcnt32: int,
        frame: phy.DataFrame,
        best: Reception,
        copies: list[Reception],
        mac_up: list[dict[str, Any]],
        record: dict[str, Any],
        superseded: bool,
    ) -> Outcome:
        """An accepted uplink. (Built with positional arguments: this runs once per uplink, and a dataclass
        takes keywords at twice the cost.)"""
        return cls(
            _ACCEPTED, None, "", device, fcnt32, frame, best, copies, mac_up, record, None, [], superseded
        )


_ACCEPTED = Status.ACCEPTED


def rejected(reason: Reason, detail: str, copies: list[Reception], **more: Any) -> Outcome:
    """A rejected frame; ``copies`` best first."""
    return Outcome(Status.REJECTED, reason, detail, best=copies[0], copies=copies, **more)
