"""Class-A downlinks: after each live uplink, what goes down in its receive windows, and through which window.

Fed by MQTT commands (``<prefix>/<gw>/devices/<DevEUI>/down`` with ``{"fport", "data"|"raw", "confirmed",
"ttl_s", "id"}``, queued per device by :mod:`.downlink_queue`) and by the MAC layer (ACK of confirmed
uplinks, and the answers of :mod:`.downlink_mac`: LinkCheckAns, DevStatusReq when the battery report is
stale, DeviceTimeAns, LinkADRReq from :mod:`.adr`, and an answer to every ADRACKReq). After each live uplink
the :class:`DownlinkScheduler` decides whether anything goes down in that uplink's receive windows: RX1
(``tmst`` + RX1 delay, the uplink's frequency, DR - RX1DROffset) when the gateway's duty cycle in that
sub-band allows, else RX2 (869.525 MHz, + 1 s more); the frame of each window is built by
:mod:`.downlink_frames`. FPending is set when more is queued. Confirmed downlinks are resent (new FCnt) until
an uplink ACKs them or they run out of attempts or time. Every command's fate is an outbox record (kind
``down_result``) that the sinks publish on ``.../down/result``, also a command that cannot be read
(rejected with the reason in ``detail`` and counted by reason, ``rejected_by_reason``).

Join-accepts and MAC answers come first: application commands may use only :data:`APP_DUTY_SHARE` of the
gateway's duty cycle in a sub-band, so that they can never leave a join unanswered; a downlink whose
command does not fit the rest goes without it (MAC answers, ACK, FPending). A join-accept that cannot be
sent (no packet forwarder to send through, or the duty cycle) raises
:class:`~.network.outcome.NotAnswered`, and the network server does not record the join.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from havel.codecs.lorawan import eu868
from havel.errors import InputError
from havel.gateway import schema
from havel.gateway.adr import AdrController
from havel.gateway.config import NetworkConfig
from havel.gateway.downlink_frames import Transmission, data_frame, fopts, transmission
from havel.gateway.downlink_mac import MacAnswers, SqlAdrStore
from havel.gateway.downlink_queue import Command, DownlinkQueue
from havel.gateway.dutycycle import DutyCycle, airtime_s
from havel.gateway.network.outcome import NotAnswered, Outcome
from havel.gateway.network.sessions import Device
from havel.gateway.registry import Registry

__all__ = ["APP_DUTY_SHARE", "DownlinkScheduler", "Transmission", "airtime_s"]

# Application commands may use this share of the duty cycle of a sub-band; the rest is kept for
# join-accepts and MAC answers (ACKs, LinkADRReq, ...), which a device needs to stay on the network.
APP_DUTY_SHARE = 0.75
Window = tuple[int, str, int, str]  # (freq_hz, datr, tmst, name)


class DownlinkScheduler:
    """See the module docstring. Result records of command fates are returned to the caller, which puts
    them into the outbox inside its transaction."""

    def __init__(
        self, registry: Registry, net: NetworkConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.registry = registry
        self.conn: sqlite3.Connection = registry.conn
        schema.migrate(self.conn)
        self.net = net
        self.clock = clock
        self.duty = DutyCycle()
        self.adr = AdrController(SqlAdrStore(self.conn), margin_db=net.adr_margin_db, enabled=net.adr)
        self.mac = MacAnswers(self.adr, net)
        self.rejected_by_reason: dict[str, int] = {}  # by reason (downlink_commands.REJECT_REASONS)
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
        self.commands = DownlinkQueue(registry, net, clock, self.counters, self.rejected_by_reason)

    # ------------------------------------------------------------------------------------- the queue
    def submit(self, dev_eui: int, body: Any) -> dict[str, Any]:
        """See :meth:`DownlinkQueue.submit` (inside a registry transaction)."""
        return self.commands.submit(dev_eui, body)

    def refuse_for_storage(self, dev_eui: int, body: Any, error: str) -> dict[str, Any]:
        """See :meth:`DownlinkQueue.refuse_for_storage`."""
        return self.commands.refuse_for_storage(dev_eui, body, error)

    def queue(self, dev_eui: int, limit: int = -1) -> list[Command]:
        """The device's queued commands, oldest first (at most ``limit``; -1: all)."""
        return self.commands.commands(dev_eui, limit)

    def depth(self) -> int:
        """Commands queued over all devices."""
        return self.commands.depth()

    def any_expired(self) -> bool:
        """Whether :meth:`expire` has work (checked without a write transaction)."""
        return self.commands.any_expired()

    def expire(self) -> list[dict[str, Any]]:
        """See :meth:`DownlinkQueue.expire` (inside a transaction)."""
        return self.commands.expire()

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
        commands = self.commands
        queued = commands.devices
        # the head (perhaps awaiting its ACK), the next and whether one more waits (FPending): a long queue
        # costs an uplink no more than a short one
        queue = commands.commands(dev.dev_eui, 3) if dev.dev_eui in queued else []
        # A confirmed downlink waiting for this uplink's ACK bit.
        if queue and queue[0].awaiting:
            head = queue[0]
            if frame.ack:
                commands.remove(dev, head.id)
                self.counters["acked"] += 1
                results.append(
                    commands.result(
                        dev.dev_eui, dev, head.id, "acked", "", head.request, head.fcnt_down, seq=head.seq
                    )
                )
                queue.pop(0)
            elif head.attempts >= self.net.confirmed_retries:
                commands.remove(dev, head.id)
                self.counters["failed"] += 1
                results.append(
                    commands.result(
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
            queued.discard(dev.dev_eui)
        mac, answer_adr = self.mac.answers(out, dev, now)
        if not (mac or frame.confirmed or queue or answer_adr):
            return None, results  # nothing to send (most uplinks): no gateway to look for
        where = self._receive_windows(dev, out, reachable)
        if where is None:
            return None, results
        gateway, (rx1, rx2) = where
        rx1_datr = rx1[1]
        mac_bytes = fopts(mac)
        # the application payload must fit the data rate of the window actually used; RX2's DR is the floor
        limit = min(
            eu868.max_app_payload(eu868.dr_from_datr(rx1_datr)), eu868.max_app_payload(dev.rx2_dr)
        ) - len(mac_bytes)
        cmd = queue[0] if queue and len(queue[0].payload) <= limit else None
        fcnt_down = self.registry.take_fcnt_down(dev.dev_eui)
        s = dev.session

        def build(cmd: Command | None) -> bytes:
            return data_frame(
                s,
                fcnt_down,
                confirmed=bool(cmd and cmd.confirmed),
                fport=cmd.fport if cmd else None,
                payload=cmd.payload if cmd else b"",
                mac=mac_bytes,
                ack=frame.confirmed,
                fpending=len(queue) > (1 if cmd else 0),
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
                commands.await_ack(dev, cmd, fcnt_down)
            else:
                commands.remove(dev, cmd.id)
            # "sent" once per command, at its first transmission; a confirmed one then waits for its ACK
            # (the resends of a confirmed command are no new fate: its "acked" or "failed" follows)
            if cmd.attempts == 1:
                self.counters["sent"] += 1
                results.append(
                    commands.result(
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
        data = data_frame(
            dev.session,
            self.registry.take_fcnt_down(dev.dev_eui),
            ack=True,
            fpending=dev.dev_eui in self.commands.devices,
        )
        tx = self._pick(gateway, data, list(windows), self.clock(), dev.dev_eui, None, "ack_again")
        self.counters["duty_cycle_blocked" if tx is None else "acked_again"] += 1
        return tx

    def _receive_windows(
        self, dev: Device, out: Outcome, reachable: Callable[[int], bool]
    ) -> tuple[int, tuple[Window, Window]] | None:
        """The concentrator to answer through (the first that heard the frame and can send) and the
        uplink's RX1 and RX2 windows as (freq_hz, datr, tmst, name); None if there is no way down."""
        for c in out.copies:  # (a loop, not next() over a generator: this runs for most uplinks)
            if reachable(c.gateway_eui):
                gateway, rx = c.gateway_eui, c.rx
                break
        else:
            return None
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
        windows: list[Window],
        now: float,
        dev_eui: int,
        cmd_id: str | None,
        kind: str,
        share: float = 1.0,
    ) -> Transmission | None:
        """The first window the duty cycle allows (the next as the fallback), its airtime recorded."""
        usable = []
        for freq, datr, tmst, name in windows:
            air = airtime_s(len(data), datr)
            if self.duty.allows(gateway, freq, air, now, share):
                usable.append((freq, datr, tmst, name, air))
        if not usable:
            return None
        tx = transmission(gateway, data, usable, self.net.tx_power_dbm, dev_eui, cmd_id, kind)
        self.duty.record(gateway, usable[0][0], usable[0][4], now)
        return tx

    def on_tx_failed(self, tx: Transmission, error: str) -> None:
        """Both windows failed (TX_ACK errors): an unconfirmed command already reported ``sent`` is lost to
        the radio; we only count it. A confirmed one stays queued and is retried on the next uplink."""
        self.counters["tx_error"] += 1
