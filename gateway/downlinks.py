"""Class-A downlinks: a per-device queue, the MAC answers, RX1/RX2 choice and the gateway's duty cycle.

Fed by MQTT commands (``<prefix>/<gw>/devices/<DevEUI>/down`` with ``{"fport", "data"|"raw", "confirmed",
"ttl_s", "id"}``) and by the MAC layer (ACK of confirmed uplinks, LinkCheckAns, DevStatusReq when the
battery report is stale, DeviceTimeAns, LinkADRReq from :mod:`.adr`, and an answer to every ADRACKReq).
After each live uplink the :class:`DownlinkScheduler` decides whether anything goes down in that uplink's
receive windows: RX1 (``tmst`` + RX1 delay, the uplink's frequency, DR - RX1DROffset) when the gateway's
duty cycle in that sub-band allows, else RX2 (869.525 MHz, + 1 s more). FPending is set when more is queued.
Confirmed downlinks are resent (new FCnt) until an uplink ACKs them or they run out of attempts or time.
Every command's fate is an outbox record (kind ``down_result``) that the sinks publish on
``.../down/result``: also a command that cannot be read (not JSON, too large, too deep, NaN, a lone
surrogate, a wrong type, an unknown device, a full queue), rejected with the reason in ``detail`` and
counted by reason (``rejected_by_reason``).

Command ids are the platform's, scoped per device: the same id for two devices names two commands.
A device's queue holds at most ``network.downlink_queue_max`` commands.

Join-accepts and MAC answers come first: application commands may use only :data:`APP_DUTY_SHARE` of the
gateway's duty cycle in a sub-band, so that they can never leave a join unanswered; a downlink whose
command does not fit the rest goes without it (MAC answers, ACK, FPending). A join-accept that cannot be
sent (no packet forwarder to send through, or the duty cycle) raises
:class:`~.network.outcome.NotAnswered`, and the network server does not record the join.

The queue is a SQLite table in the gateway's database, so queued commands survive a restart.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from havel.codecs.lorawan import airtime, eu868, maccmds, phy
from havel.codecs.lorawan.ids import eui_hex, parse_hex
from havel.errors import CodecError, InputError
from havel.gateway import schema
from havel.gateway.adr import AdrController
from havel.gateway.backends.semtech_udp.txpk import build_txpk
from havel.gateway.config import NetworkConfig
from havel.gateway.downlink_commands import (
    COMMAND_ID,
    FIELDS,
    MAX_TTL_S,
    BadCommand,
    Refused,
    echo,
    parse_down_topic,
)
from havel.gateway.dutycycle import DutyCycle, airtime_s
from havel.gateway.network.outcome import NotAnswered, Outcome
from havel.gateway.network.reception import format_time
from havel.gateway.network.sessions import Device
from havel.gateway.registry import Registry

_MAX_FOPTS = 15
_GPS_EPOCH_UNIX = 315_964_800  # 1980-01-06T00:00:00Z
# GPS time runs ahead of UTC by the leap seconds since 1980: 18 since 2017-01-01, none announced since (the
# IERS bulletins; leap seconds are to end by 2035). Used only without a GPS-timed rxpk (``tmms``).
_GPS_MINUS_UTC_S = 18
_DEVSTATUS_EVERY_S = 3600.0  # do not ask a device for its battery more often than this
RESULT_STATES = ("queued", "sent", "acked", "expired", "failed", "rejected")
log = logging.getLogger("havel.gateway.downlinks")

# Application commands may use this share of the duty cycle of a sub-band; the rest is kept for
# join-accepts and MAC answers (ACKs, LinkADRReq, ...), which a device needs to stay on the network.
APP_DUTY_SHARE = 0.75
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


@dataclass
class Transmission:
    """A downlink ready for a PULL_RESP: RX1 choice first, an RX2 fallback for a TX_ACK error."""

    gateway_eui: int
    txpk: dict[str, Any]
    fallback: dict[str, Any] | None
    dev_eui: int
    command_id: str | None
    airtime_s: float
    fallback_airtime_s: float
    window: str  # "RX1" or "RX2" (or "JOIN1"/"JOIN2")
    kind: str  # "data" or "join_accept"


class DownlinkScheduler:
    """See the module docstring. ``results`` receives outbox records of command fates (the caller puts
    them into the outbox inside its transaction)."""

    def __init__(
        self, registry: Registry, net: NetworkConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.registry = registry
        self.conn: sqlite3.Connection = registry.conn
        schema.migrate(self.conn)
        self.net = net
        self.clock = clock
        self.duty = DutyCycle()
        self.adr = AdrController(_SqlAdrStore(self.conn), margin_db=net.adr_margin_db, enabled=net.adr)
        self._status_asked: dict[int, float] = {}
        self.rejected_by_reason: dict[str, int] = {}  # by reason (downlink_commands.REJECT_REASONS)
        # devices with something queued: most uplinks find nothing, without asking SQLite
        self._queued: set[int] = {
            int(r[0], 16) for r in self.conn.execute("SELECT DISTINCT dev_eui FROM downlinks")
        }
        self.counters: dict[str, Any] = {
            "queued": 0,
            "sent": 0,
            "acked": 0,
            "expired": 0,
            "failed": 0,
            "rejected": 0,
            "duty_cycle_blocked": 0,
            "mac": 0,
            "adr_ack_answered": 0,  # downlinks sent because the device set ADRACKReq
            "acked_again": 0,  # ACKs for confirmed frames sent again (the first ACK was missed)
            "tx_error": 0,
            "join_unanswered": 0,  # join-requests not answered (duty cycle, no forwarder): not recorded
            "rejected_by_reason": self.rejected_by_reason,  # (the same dict: /status shows it)
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
        self._queued.add(dev_eui)
        self.counters["queued"] += 1
        return self._result(dev_eui, dev, cmd_id, "queued", "", cmd.request, seq=seq, at=now)

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
        return self._result(cmd.dev_eui, dev, cmd.id, "queued", "", cmd.request, seq=row[0], at=row[2])

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
        return self._result(dev_eui, dev, cmd_id, "rejected", f"{reason}: {detail}", echo(body), seq=seq)

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

    def _result(
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

    def queue(self, dev_eui: int, limit: int = -1) -> list[Command]:
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
                self._result(dev_eui, dev, cid, "expired", "ttl_s ran out", json.loads(req), fc, seq=seq)
            )
        removed = self.conn.execute(
            "SELECT rowid, id, dev_eui, request, fcnt_down, seq, device FROM downlinks_removed ORDER BY rowid"
        ).fetchall()
        for rowid, cid, eui, req, fc, seq, name in removed:
            self.conn.execute("DELETE FROM downlinks_removed WHERE rowid = ?", (rowid,))
            self.counters["failed"] += 1
            result = self._result(
                int(eui, 16), None, cid, "failed", "device removed", json.loads(req), fc, seq=seq
            )
            result["payload"]["device"] = name
            out.append(result)
        return out

    # --------------------------------------------------------------------------------------- schedule
    def on_uplink(
        self, out: Outcome, reachable: Callable[[int], bool]
    ) -> tuple[Transmission | None, list[dict[str, Any]]]:
        """After an accepted live uplink (inside the transaction that stored it): what to send in its
        receive windows, and result records (acks, expiries) to put in the outbox."""
        results: list[dict[str, Any]] = []
        dev, frame, best = out.device, out.frame, out.best
        if dev is None or frame is None or best is None or dev.session is None:
            return None, results
        now = self.clock()
        # the head (perhaps awaiting its ACK), the next and whether one more waits (FPending): a long queue
        # costs an uplink no more than a short one
        queue = self.queue(dev.dev_eui, 3) if dev.dev_eui in self._queued else []
        # A confirmed downlink waiting for this uplink's ACK bit.
        if queue and queue[0].awaiting:
            head = queue[0]
            if frame.ack:
                self.conn.execute(_DELETE, (dev.eui_hex, head.id))
                self.counters["acked"] += 1
                results.append(
                    self._result(
                        dev.dev_eui, dev, head.id, "acked", "", head.request, head.fcnt_down, seq=head.seq
                    )
                )
                queue.pop(0)
            elif head.attempts >= self.net.confirmed_retries:
                self.conn.execute(_DELETE, (dev.eui_hex, head.id))
                self.counters["failed"] += 1
                results.append(
                    self._result(
                        dev.dev_eui,
                        dev,
                        head.id,
                        "failed",
                        f"no ACK after {head.attempts} attempts",
                        head.request,
                        head.fcnt_down,
                        seq=head.seq,
                    )
                )
                queue.pop(0)
        if not queue:
            self._queued.discard(dev.dev_eui)
        mac, answer_adr = self._mac_answers(out, dev, now)
        if not (mac or frame.confirmed or queue or answer_adr):
            return None, results  # nothing to send (most uplinks): no gateway to look for
        where = self._receive_windows(dev, out, reachable)
        if where is None:
            return None, results
        gateway, (rx1, rx2) = where
        rx1_datr = rx1[1]
        fopts = maccmds.encode(mac, False)[:_MAX_FOPTS] if mac else b""
        # the application payload must fit the data rate of the window actually used; RX2's DR is the floor
        limit = min(
            eu868.max_app_payload(eu868.dr_from_datr(rx1_datr)), eu868.max_app_payload(dev.rx2_dr)
        ) - len(fopts)
        cmd = queue[0] if queue and len(queue[0].payload) <= limit else None
        fcnt_down = self.registry.take_fcnt_down(dev.dev_eui)
        s = dev.session

        def build(cmd: Command | None) -> bytes:
            return phy.build_data_frame(
                uplink=False,
                confirmed=bool(cmd and cmd.confirmed),
                dev_addr=s.dev_addr,
                fcnt32=fcnt_down,
                fport=cmd.fport if cmd else None,
                payload=cmd.payload if cmd else b"",
                fopts=fopts,
                ack=frame.confirmed,
                fpending=len(queue) > (1 if cmd else 0),
                nwk_s_key=s.nwk_s_key,
                app_s_key=s.app_s_key,
            )

        # an application command only within its share of the duty cycle (see APP_DUTY_SHARE) ...
        share = APP_DUTY_SHARE if cmd is not None else 1.0
        cmd_id = cmd.id if cmd else None
        tx = self._pick(gateway, build(cmd), [rx1, rx2], now, dev.dev_eui, cmd_id, "data", share)
        if tx is None and cmd is not None and (mac or frame.confirmed or answer_adr):
            # ... beyond it the MAC answers and the ACK still go, FPending telling that more waits
            cmd = None
            tx = self._pick(gateway, build(None), [rx1, rx2], now, dev.dev_eui, None, "data")
        if tx is None:
            self.counters["duty_cycle_blocked"] += 1
            return None, results
        if mac:
            self.counters["mac"] += 1
            for m in mac:
                if m["name"] == "LinkADRReq":
                    self.adr.sent(dev.dev_eui, s.epoch, m)
        if frame.adr_ack_req:
            self.counters["adr_ack_answered"] += 1
        if cmd is not None:
            cmd.attempts += 1
            if cmd.confirmed:
                self.conn.execute(
                    "UPDATE downlinks SET attempts = ?, awaiting = 1, fcnt_down = ? "
                    "WHERE dev_eui = ? AND id = ?",
                    (cmd.attempts, fcnt_down, dev.eui_hex, cmd.id),
                )
            else:
                self.conn.execute(_DELETE, (dev.eui_hex, cmd.id))
            # "sent" once per command, at its first transmission; a confirmed one then waits for its ACK
            # (the resends of a confirmed command are no new fate: its "acked" or "failed" follows)
            if cmd.attempts == 1:
                self.counters["sent"] += 1
                results.append(
                    self._result(
                        dev.dev_eui, dev, cmd.id, "sent", tx.window, cmd.request, fcnt_down, seq=cmd.seq
                    )
                )
        return tx, results

    def ack_again(self, out: Outcome, reachable: Callable[[int], bool]) -> Transmission | None:
        """An empty ACK in the receive windows of a confirmed frame the device sent again (outcome
        ``retransmission``: it missed the first ACK). Nothing else goes with it: the frame's MAC commands
        and its ACK bit were taken the first time, and a queued command waits for the next new uplink
        (FPending says it is there)."""
        dev = out.device
        if dev is None or dev.session is None or out.best is None or out.best.replayed:
            return None
        if out.frame is None or not out.frame.confirmed:  # an NbTrans repeat: there is no ACK to give
            return None
        where = self._receive_windows(dev, out, reachable)
        if where is None:
            return None
        gateway, windows = where
        s = dev.session
        data = phy.build_data_frame(
            uplink=False,
            confirmed=False,
            dev_addr=s.dev_addr,
            fcnt32=self.registry.take_fcnt_down(dev.dev_eui),
            fport=None,
            payload=b"",
            ack=True,
            fpending=dev.dev_eui in self._queued,
            nwk_s_key=s.nwk_s_key,
            app_s_key=s.app_s_key,
        )
        tx = self._pick(gateway, data, list(windows), self.clock(), dev.dev_eui, None, "ack_again")
        self.counters["duty_cycle_blocked" if tx is None else "acked_again"] += 1
        return tx

    def _receive_windows(
        self, dev: Device, out: Outcome, reachable: Callable[[int], bool]
    ) -> tuple[int, tuple[tuple[int, str, int, str], tuple[int, str, int, str]]] | None:
        """The concentrator to answer through (the first that heard the frame and can send) and the
        uplink's RX1 and RX2 windows as (freq_hz, datr, tmst, name); None if there is no way down."""
        gateway = next((c.gateway_eui for c in out.copies if reachable(c.gateway_eui)), None)
        if gateway is None:
            return None
        rx = next(c for c in out.copies if c.gateway_eui == gateway).rx
        try:
            up_dr = eu868.dr_from_datr(rx.datr)
        except InputError:
            return None
        rx1_datr = eu868.datr(eu868.rx1_dr(up_dr, min(dev.rx1_dr_offset, 5)))
        rx1_delay_us = max(dev.rx1_delay, 1) * 1_000_000
        rx1 = (rx.freq_hz, rx1_datr, rx.tmst + rx1_delay_us, "RX1")
        rx2 = (dev.rx2_freq_hz, eu868.datr(dev.rx2_dr), rx.tmst + rx1_delay_us + 1_000_000, "RX2")
        return gateway, (rx1, rx2)

    def join_accept(self, out: Outcome, reachable: Callable[[int], bool]) -> Transmission:
        """The join-accept of a joined outcome, at + 5 s (RX1) or + 6 s (RX2), with the whole duty cycle
        (application commands leave it room). :class:`NotAnswered` when it cannot be sent: the network
        server then does not record the join (the device will ask again)."""
        if out.join_accept is None or out.device is None:
            raise NotAnswered("a join without a join-accept")
        gateway = next((c.gateway_eui for c in out.copies if reachable(c.gateway_eui)), None)
        if gateway is None:
            self.counters["join_unanswered"] += 1
            raise NotAnswered("no packet forwarder that heard the join-request can send (no PULL_DATA yet)")
        windows = [(f, d, t, w) for (f, d, t), w in zip(out.downlink_plan, ("JOIN1", "JOIN2"), strict=False)]
        tx = self._pick(
            gateway, out.join_accept, windows, self.clock(), out.device.dev_eui, None, "join_accept"
        )
        if tx is None:
            self.counters["duty_cycle_blocked"] += 1
            self.counters["join_unanswered"] += 1
            raise NotAnswered("the gateway's duty cycle leaves no room for the join-accept in either window")
        return tx

    def _pick(
        self,
        gateway: int,
        data: bytes,
        windows: list[tuple[int, str, int, str]],
        now: float,
        dev_eui: int,
        cmd_id: str | None,
        kind: str,
        share: float = 1.0,
    ) -> Transmission | None:
        usable = []
        for freq, datr, tmst, name in windows:
            air = airtime_s(len(data), datr)
            if self.duty.allows(gateway, freq, air, now, share):
                usable.append((freq, datr, tmst, name, air))
        if not usable:
            return None
        freq, datr, tmst, name, air = usable[0]
        txpk = build_txpk(data=data, freq_hz=freq, datr=datr, tmst=tmst, powe=self.net.tx_power_dbm)
        fallback, fb_air = None, 0.0
        if len(usable) > 1:
            f2, d2, t2, _, fb_air = usable[1]
            fallback = build_txpk(data=data, freq_hz=f2, datr=d2, tmst=t2, powe=self.net.tx_power_dbm)
        self.duty.record(gateway, freq, air, now)
        return Transmission(gateway, txpk, fallback, dev_eui, cmd_id, air, fb_air, name, kind)

    def on_tx_failed(self, tx: Transmission, error: str) -> None:
        """Both windows failed (TX_ACK errors): an unconfirmed command already reported ``sent`` is lost to
        the radio; we only count it. A confirmed one stays queued and is retried on the next uplink."""
        self.counters["tx_error"] += 1

    def _mac_answers(self, out: Outcome, dev: Device, now: float) -> tuple[list[dict[str, Any]], bool]:
        """The MAC commands for this uplink's downlink, and whether a downlink must go even without any
        (ADRACKReq: the device backs off towards SF12 if none comes)."""
        cmds: list[dict[str, Any]] = []
        best, frame = out.best, out.frame
        assert best is not None and frame is not None
        if frame.adr or frame.adr_ack_req or out.mac_up:
            try:
                up_dr: int | None = eu868.dr_from_datr(best.rx.datr)
            except InputError:
                up_dr = None
            snrs = [c.rx.lsnr for c in out.copies if c.rx.lsnr is not None]
            adr = self.adr.on_uplink(
                dev.dev_eui,
                dev.session.epoch if dev.session is not None else 0,
                adr=frame.adr,
                adr_ack_req=frame.adr_ack_req,
                dr=up_dr,
                max_snr_db=max(snrs) if snrs else None,
                mac_up=out.mac_up,
                fcnt=out.fcnt32 if out.fcnt32 is not None else 0,
            )
            if adr.command is not None:
                cmds.append(adr.command)
            answer_adr = adr.answer_needed
        else:
            answer_adr = False
        for up in out.mac_up:
            if up.get("name") == "LinkCheckReq":
                try:
                    sf = eu868.DATA_RATES[eu868.dr_from_datr(best.rx.datr)][0]
                except (InputError, KeyError):
                    sf = 12
                snr = best.rx.lsnr if best.rx.lsnr is not None else 0.0
                margin = max(0, min(254, round(snr - airtime.DEMOD_SNR_DB.get(sf, -20.0))))
                cmds.append(
                    {"name": "LinkCheckAns", "margin_db": margin, "gw_cnt": min(255, len(out.copies))}
                )
            elif up.get("name") == "DeviceTimeReq":
                cmds.append(device_time_ans(out))
        stale = dev.battery_at is None or now - dev.battery_at > self.net.battery_stale_s
        asked = self._status_asked.get(dev.dev_eui, 0.0)
        if stale and now - asked > _DEVSTATUS_EVERY_S:
            cmds.append({"name": "DevStatusReq"})
            self._status_asked[dev.dev_eui] = now
        return cmds, answer_adr


def gps_time_ms(out: Outcome) -> int:
    """GPS time (ms since 1980-01-06) at the end of the uplink: a concentrator's GPS timestamp (``tmms``)
    when one has it, else the receive time (this machine's clock) plus the leap seconds."""
    gps = [c.rx.tmms for c in out.copies if c.rx.tmms is not None]
    if gps:
        return int(gps[0])
    assert out.best is not None
    unix_ms = round(out.best.received_at.timestamp() * 1000)
    return unix_ms - _GPS_EPOCH_UNIX * 1000 + _GPS_MINUS_UTC_S * 1000


def device_time_ans(out: Outcome) -> dict[str, Any]:
    """The DeviceTimeAns to a DeviceTimeReq (LoRaWAN 1.0.3 section 5.9): whole GPS seconds and 1/256 s."""
    ms = gps_time_ms(out)
    return {"name": "DeviceTimeAns", "gps_time_s": ms // 1000, "fraction_s": (ms % 1000 * 256 // 1000) / 256}


class _SqlAdrStore:
    """The acknowledged TXPower and NbTrans of each device in the gateway database (table ``adr_power``),
    written inside the caller's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def load_settings(self, dev_eui: int, epoch: int) -> tuple[int, int] | None:
        sql = "SELECT tx_power, nb_trans FROM adr_power WHERE dev_eui = ? AND epoch = ?"
        row = self.conn.execute(sql, (eui_hex(dev_eui), epoch)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def save_settings(self, dev_eui: int, epoch: int, tx_power: int, nb_trans: int) -> None:
        sql = "INSERT OR REPLACE INTO adr_power (dev_eui, epoch, tx_power, nb_trans) VALUES (?, ?, ?, ?)"
        self.conn.execute(sql, (eui_hex(dev_eui), epoch, tx_power, nb_trans))


def format_time_now(t: float) -> str:
    """RFC 3339 UTC of a unix time."""
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(t, UTC))


__all__ = ["Command", "DownlinkScheduler", "DutyCycle", "Transmission", "airtime_s", "parse_down_topic"]
