"""The queue of application downlinks: commands validated and stored per device, and the result record of
every command's fate.

A command (``{"fport", "data"|"raw", "confirmed", "ttl_s", "id"}``) is read and checked by
:meth:`DownlinkQueue.submit`; every command gets a result record (kind ``down_result``), also one that
cannot be read (not JSON, too large, a wrong type, an unknown device, a full queue): rejected with the
reason in ``detail`` and counted by reason (``rejected_by_reason``). Command ids are the platform's, scoped
per device: the same id for two devices names two commands. A device's queue holds at most
``network.downlink_queue_max`` commands.

The queue is a SQLite table in the gateway's database (written inside the caller's transaction), so
queued commands survive a restart.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from havel.codecs.lorawan import eu868
from havel.codecs.lorawan.ids import eui_hex, parse_hex
from havel.errors import CodecError, InputError
from havel.gateway.config import NetworkConfig
from havel.gateway.downlink_commands import COMMAND_ID, FIELDS, MAX_TTL_S, BadCommand, Refused, echo
from havel.gateway.network.reception import format_time
from havel.gateway.network.sessions import Device
from havel.gateway.registry import Registry

__all__ = ["RESULT_STATES", "Command", "DownlinkQueue", "format_time_now"]

RESULT_STATES = ("queued", "sent", "acked", "expired", "failed", "rejected")
log = logging.getLogger("havel.gateway.downlinks")

_DELETE = "DELETE FROM downlinks WHERE dev_eui = ? AND id = ?"


@dataclass
class Command:
    """One queued application downlink."""

    id: str
    dev_eui: int
    fport: int
    payload: bytes
    confirmed: bool
    expires_at: float
    attempts: int = 0
    awaiting: bool = False
    fcnt_down: int | None = None
    request: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None  # the gateway's number of this submission (in its result ids)


def format_time_now(t: float) -> str:
    """RFC 3339 UTC of a unix time."""
    return format_time(datetime.fromtimestamp(t, UTC))


class DownlinkQueue:
    """The ``downlinks`` table of ``registry``'s database. ``counters`` (queued, rejected, expired, failed)
    and ``rejected_by_reason`` are the scheduler's, counted here."""

    def __init__(
        self,
        registry: Registry,
        net: NetworkConfig,
        clock: Callable[[], float],
        counters: dict[str, Any],
        rejected_by_reason: dict[str, int],
    ) -> None:
        self.registry = registry
        self.conn: sqlite3.Connection = registry.conn
        self.net = net
        self.clock = clock
        self.counters = counters
        self.rejected_by_reason = rejected_by_reason
        # devices with something queued: most uplinks find nothing, without asking SQLite
        self.devices: set[int] = {
            int(r[0], 16) for r in self.conn.execute("SELECT DISTINCT dev_eui FROM downlinks")
        }

    # ----------------------------------------------------------------------------------------- intake
    def submit(self, dev_eui: int, body: Any) -> dict[str, Any]:
        """Validate and queue one command (a JSON value, or the :class:`BadCommand` that stands for a message
        that was none); returns the result record, state queued or rejected: every command gets one. Must
        be called inside a registry transaction (the queue row and the result record are written
        together)."""
        given = body.get("id") if isinstance(body, dict) else None
        cmd_id = given if isinstance(given, str) and COMMAND_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        dev = self.registry.get(dev_eui)
        try:
            if isinstance(body, BadCommand):
                raise Refused(body.reason, body.detail)
            if given is not None and given != cmd_id:
                raise Refused(
                    "bad_id",
                    f"id {ascii(given)[:80]} is not 1-64 letters, digits, '.', '_', ':' or '-' "
                    "(starting with a letter or digit)",
                )
            if dev is None:
                raise Refused("unknown_device", f"device {eui_hex(dev_eui)} is not registered")
            cmd = self._command(dev, cmd_id, body)
            again = self._same_as_queued(cmd)
            if again is not None:
                return again
            self._check_room(dev, cmd_id)
        except Refused as exc:
            return self._reject(dev_eui, dev, cmd_id, exc.reason, str(exc), body)
        except CodecError as exc:
            return self._reject(dev_eui, dev, cmd_id, "codec", str(exc), body)
        except InputError as exc:
            return self._reject(dev_eui, dev, cmd_id, "bad_field", str(exc), body)
        except sqlite3.Error:
            raise  # the database, not the command: the caller's transaction reports it
        except Exception as exc:  # a codec's own bug on odd data: the command still gets its answer
            log.exception("downlink command %s for %s could not be read", cmd_id, eui_hex(dev_eui))
            detail = f"could not be read ({type(exc).__name__})"
            return self._reject(dev_eui, dev, cmd_id, "internal", detail, body)
        seq = self._next_seq()
        now = self.clock()
        self.conn.execute(
            "INSERT OR REPLACE INTO downlinks (id, dev_eui, fport, payload, confirmed, expires_at, request, "
            "created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cmd.id,
                eui_hex(dev_eui),
                cmd.fport,
                cmd.payload,
                int(cmd.confirmed),
                cmd.expires_at,
                json.dumps(cmd.request),
                now,
                seq,
            ),
        )
        self.devices.add(dev_eui)
        self.counters["queued"] += 1
        return self.result(dev_eui, dev, cmd_id, "queued", "", cmd.request, seq=seq, at=now)

    def _same_as_queued(self, cmd: Command) -> dict[str, Any] | None:
        """The ``queued`` result again when the same command (id and request) is still queued: a QoS 1
        re-delivery. It changes nothing (a confirmed command waiting for its ACK keeps its attempts), and
        its result is the first one, id and time, so the outbox and every receiver drop it as a duplicate."""
        row = self.conn.execute(
            "SELECT seq, request, created_at FROM downlinks WHERE dev_eui = ? AND id = ?",
            (eui_hex(cmd.dev_eui), cmd.id),
        ).fetchone()
        if row is None or json.loads(row[1]) != cmd.request:
            return None
        dev = self.registry.get(cmd.dev_eui)
        return self.result(cmd.dev_eui, dev, cmd.id, "queued", "", cmd.request, seq=row[0], at=row[2])

    def _next_seq(self) -> int:
        """The next submission number (inside the caller's transaction: a rolled-back submission gives its
        number back, so a command's ids do not depend on failures before it)."""
        row = self.conn.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'downlink_seq' RETURNING value"
        ).fetchone()
        return int(row[0])

    def _reject(
        self, dev_eui: int, dev: Device | None, cmd_id: str, reason: str, detail: str, body: Any
    ) -> dict[str, Any]:
        self.counters["rejected"] += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        seq = self._next_seq()
        return self.result(dev_eui, dev, cmd_id, "rejected", f"{reason}: {detail}", echo(body), seq=seq)

    def refuse_for_storage(self, dev_eui: int, body: Any, error: str) -> dict[str, Any]:
        """The ``rejected`` result (reason ``storage``) of a command the database did not take; to be stored
        in a transaction of its own after the one that failed."""
        given = body.get("id") if isinstance(body, dict) else None
        cmd_id = given if isinstance(given, str) and COMMAND_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        dev = self.registry.get(dev_eui)
        return self._reject(
            dev_eui, dev, cmd_id, "storage", f"not queued, the database failed: {error}", body
        )

    def _check_room(self, dev: Device, cmd_id: str) -> None:
        """Refuse a command beyond the device's queue limit (one replacing a queued command of the same id
        takes its place)."""
        limit = self.net.downlink_queue_max
        row = self.conn.execute(
            "SELECT count(*), sum(id = ?) FROM downlinks WHERE dev_eui = ?", (cmd_id, dev.eui_hex)
        ).fetchone()
        waiting = int(row[0]) - int(row[1] or 0)
        if waiting >= limit:
            raise Refused(
                "queue_full",
                f"{waiting} commands already wait for {dev.name} (network.downlink_queue_max = {limit}); "
                "it takes one per uplink",
            )

    def _command(self, dev: Device, cmd_id: str, body: Any) -> Command:
        if not isinstance(body, dict):
            raise Refused("not_object", 'a downlink command is a JSON object {"fport", "data" | "raw"}')
        unknown = set(body) - set(FIELDS)
        if unknown:
            names = ", ".join(ascii(k)[:40] for k in sorted(unknown)[:5])
            raise InputError(f"unknown field(s) {names} in the command")
        fport = body.get("fport")
        if isinstance(fport, bool) or not isinstance(fport, int) or not 1 <= fport <= 223:
            raise InputError(f"fport must be an integer 1..223, not {ascii(fport)[:40]}")
        if ("data" in body) == ("raw" in body):
            raise InputError(
                "give exactly one of 'data' (decoded, encoded with the device's codec) or 'raw' (hex)"
            )
        confirmed = body.get("confirmed", False)
        if not isinstance(confirmed, bool):
            raise InputError(f"confirmed must be true or false, not {ascii(confirmed)[:40]}")
        ttl = body.get("ttl_s", self.net.downlink_ttl_s)
        # (compared before any float(): an integer of 400 digits overflows it, and NaN passes '<= 0')
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or (isinstance(ttl, float) and not math.isfinite(ttl))
            or not 0 < ttl <= MAX_TTL_S
        ):
            shown = ascii(ttl)[:40] if isinstance(ttl, int | float) else type(ttl).__name__
            raise Refused(
                "bad_ttl", f"ttl_s must be a number of seconds above 0 and at most {MAX_TTL_S}, not {shown}"
            )
        if "raw" in body:
            if not isinstance(body["raw"], str):
                raise InputError("raw must be a hex string")
            payload = parse_hex(body["raw"], what="raw")
        else:
            if not isinstance(body["data"], dict):
                raise InputError("data must be a JSON object")
            from havel.codecs.payload import get_codec

            payload = get_codec(dev.codec).encode(body["data"], fport, direction="down")
        if len(payload) > eu868.max_app_payload(0):
            raise Refused(
                "too_long", f"payload of {len(payload)} bytes exceeds the 51 bytes every data rate can carry"
            )
        request = {k: body[k] for k in ("fport", "data", "raw", "confirmed", "ttl_s") if k in body}
        return Command(
            cmd_id, dev.dev_eui, fport, payload, confirmed, self.clock() + float(ttl), request=request
        )

    # ---------------------------------------------------------------------------------------- results
    def result(
        self,
        dev_eui: int,
        dev: Device | None,
        cmd_id: str,
        state: str,
        detail: str,
        request: dict[str, Any],
        fcnt_down: int | None = None,
        *,
        seq: int | None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """A result record. Its id, ``<DevEUI>-down-<command id>-<seq>-<state>``, names one event: the
        submission number ``seq`` tells apart commands that use an id again, and each state comes at most
        once per submission."""
        now = format_time_now(self.clock() if at is None else at)
        eui = eui_hex(dev_eui)
        rid = f"{eui}-down-{cmd_id}-{state}" if seq is None else f"{eui}-down-{cmd_id}-{seq}-{state}"
        payload = {
            "id": rid,
            "command_id": cmd_id,
            "device": dev.name if dev else None,
            "dev_eui": eui,
            "state": state,
            "detail": detail,
            "fcnt_down": fcnt_down,
            "request": request,
            "at": now,
        }
        return {
            "id": rid,
            "kind": "down_result",
            "dev_eui": eui,
            "fcnt32": None,
            "priority": "state",
            "received_at": now,
            "payload": payload,
        }

    # ------------------------------------------------------------------------------------------ queue
    def commands(self, dev_eui: int, limit: int = -1) -> list[Command]:
        """The device's queued commands, oldest first (at most ``limit``; -1: all)."""
        rows = self.conn.execute(
            "SELECT id, fport, payload, confirmed, expires_at, attempts, awaiting, fcnt_down, request, seq "
            "FROM downlinks WHERE dev_eui = ? ORDER BY created_at, rowid LIMIT ?",
            (eui_hex(dev_eui), limit),
        ).fetchall()
        return [
            Command(
                r[0],
                dev_eui,
                r[1],
                bytes(r[2]),
                bool(r[3]),
                r[4],
                r[5],
                bool(r[6]),
                r[7],
                json.loads(r[8]),
                r[9],
            )
            for r in rows
        ]

    def remove(self, dev: Device, cmd_id: str) -> None:
        """Take a command off the device's queue (acknowledged, failed, or sent unconfirmed)."""
        self.conn.execute(_DELETE, (dev.eui_hex, cmd_id))

    def await_ack(self, dev: Device, cmd: Command, fcnt_down: int) -> None:
        """A confirmed command went out with ``fcnt_down``: it stays queued until an uplink ACKs it."""
        self.conn.execute(
            "UPDATE downlinks SET attempts = ?, awaiting = 1, fcnt_down = ? WHERE dev_eui = ? AND id = ?",
            (cmd.attempts, fcnt_down, dev.eui_hex, cmd.id),
        )

    def depth(self) -> int:
        """Commands queued over all devices."""
        return int(self.conn.execute("SELECT count(*) FROM downlinks").fetchone()[0])

    def any_expired(self) -> bool:
        """Whether :meth:`expire` has work (checked without a write transaction)."""
        row = self.conn.execute(
            "SELECT 1 FROM downlinks WHERE expires_at <= ? UNION ALL SELECT 1 FROM downlinks_removed LIMIT 1",
            (self.clock(),),
        ).fetchone()
        return row is not None

    def expire(self) -> list[dict[str, Any]]:
        """Drop commands whose time ran out, and those of removed devices (``havel device remove`` moved
        them aside: a device added again under the DevEUI must not get them), inside a transaction; returns
        their result records (``expired``; ``failed``)."""
        now = self.clock()
        rows = self.conn.execute(
            "SELECT id, dev_eui, request, fcnt_down, seq FROM downlinks WHERE expires_at <= ?", (now,)
        ).fetchall()
        out = []
        for cid, eui, req, fc, seq in rows:
            self.conn.execute(_DELETE, (eui, cid))
            dev_eui = int(eui, 16)
            self.counters["expired"] += 1
            dev = self.registry.get(dev_eui)
            out.append(
                self.result(dev_eui, dev, cid, "expired", "ttl_s ran out", json.loads(req), fc, seq=seq)
            )
        removed = self.conn.execute(
            "SELECT rowid, id, dev_eui, request, fcnt_down, seq, device FROM downlinks_removed ORDER BY rowid"
        ).fetchall()
        for rowid, cid, eui, req, fc, seq, name in removed:
            self.conn.execute("DELETE FROM downlinks_removed WHERE rowid = ?", (rowid,))
            self.counters["failed"] += 1
            result = self.result(
                int(eui, 16), None, cid, "failed", "device removed", json.loads(req), fc, seq=seq
            )
            result["payload"]["device"] = name
            out.append(result)
        return out
