"""What a roof of a shared network sends in the receive windows of a data uplink it processed: the ACK of a
confirmed uplink, the MAC answers (:mod:`.mac`), and the device's next queued command, as a single roof does
(:mod:`havel.gateway.downlinks`); and the results of the device's commands that this uplink decided
(``acked``, ``failed``, ``expired``). The downlink goes through the gateway with the best signal that may
send (this roof's or another's, see :mod:`.roof`); the roof that transmits a command reports it ``sent``."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from havel.codecs.lorawan import eu868, maccmds, phy
from havel.errors import HavelError, InputError
from havel.gateway.network.outcome import NotAnswered, Outcome
from havel.gateway.network.shared.connection import UNREACHABLE
from havel.gateway.network.shared.mac import SharedMac
from havel.gateway.network.shared.queue import Taken
from havel.gateway.network.shared.results import event_result

if TYPE_CHECKING:
    from havel.gateway.network.shared.roof import Roof

log = logging.getLogger("havel.gateway.shared")

MAX_FOPTS = 15


class UplinkAnswers:
    """See the module docstring; one per :class:`~havel.gateway.network.shared.roof.Roof`."""

    def __init__(self, roof: Roof) -> None:
        self.roof = roof
        self.net = roof.ns.net
        self.mac = SharedMac(self.net, roof.counts)

    def answer(self, outs: list[Outcome], again: list[Outcome]) -> None:
        """After commit: ``outs`` new uplinks (their commands and MAC state read in one round trip),
        ``again`` confirmed frames sent again (an empty ACK)."""
        roof = self.roof
        for out in again:
            if out.frame is not None and out.frame.confirmed:
                self._send(out, None, [], 0, must=True)
        if not outs:
            return
        now = time.time()
        try:
            taken = roof.shared.take_commands(
                [(o.device.dev_eui, bool(o.frame and o.frame.ack)) for o in outs if o.device is not None],
                now,
                self.net.confirmed_retries,
            )
        except UNREACHABLE as exc:
            roof.store.offline(exc)
            return
        states: dict[int, str] = {}
        for out, t in zip(outs, taken, strict=True):
            dev = out.device
            assert dev is not None
            state = self.mac.load(dev.dev_eui, t.mac)
            command = self._command(out, t)
            mac, answer_adr = self.mac.answers(out, state, now)
            frame = out.frame
            assert frame is not None
            if command is not None or mac or frame.confirmed or answer_adr:
                sent = self._send(out, command, mac, t.more, must=bool(mac or frame.confirmed or answer_adr))
                if sent:
                    self.mac.sent(out, mac, state, now)
                    if frame.adr_ack_req:
                        roof.counts["adr_ack_answered"] += 1
            if frame.adr or mac or t.mac is not None:
                states[dev.dev_eui] = self.mac.dump(dev.dev_eui, state)
        try:
            roof.shared.save_mac_states(states)
        except UNREACHABLE as exc:
            roof.store.offline(exc)

    def _command(self, out: Outcome, t: Taken) -> tuple[str, dict[str, Any], int] | None:
        """The results this uplink decided go to the roof's outbox; returns the command to send (its JSON,
        read, and the attempt this is), if any."""
        roof = self.roof
        dev = out.device
        assert dev is not None
        for event, text in t.events:
            if event in ("next", "again"):
                try:
                    if event == "again":
                        wait = json.loads(text)
                        raw, attempt = str(wait["raw"]), int(wait["attempts"]) + 1
                    else:
                        raw, attempt = text, 1
                    command = json.loads(raw)
                    if not isinstance(command, dict) or not 1 <= int(command["fport"]) <= 223:
                        raise ValueError("fport")
                    bytes.fromhex(str(command["data"]))
                except (ValueError, TypeError, KeyError) as exc:
                    roof.counts["damaged_command"] += 1
                    log.error("queued command of %s is damaged (%s): dropped", dev.eui_hex, exc)
                    if event == "again":  # (else it would come back with every uplink)
                        try:
                            roof.shared.drop_wait(dev.dev_eui)
                        except UNREACHABLE as exc2:
                            roof.store.offline(exc2)
                    continue
                return raw, command, attempt
            record = event_result(event, text)
            if event == "damaged":  # (a command's wait for its ACK that cannot be read: dropped)
                roof.counts["damaged_command"] += 1
                log.error(
                    "a command of %s waiting for its ACK is damaged in the shared store: dropped", dev.eui_hex
                )
                continue
            if record is None:  # (a command put into Redis by hand, without id and number: no result)
                roof.counts["command_without_result"] += 1
                continue
            roof.counts[f"command_{record['payload']['state']}"] += 1
            roof.results.append(record)
        return None

    def _send(
        self,
        out: Outcome,
        command: tuple[str, dict[str, Any], int] | None,
        mac: list[dict[str, Any]],
        more: int,
        *,
        must: bool,
    ) -> bool:
        """Build and route one downlink (an ACK, MAC answers, a command); a command that cannot go now goes
        back to its queue (a confirmed one waiting for its ACK stays waiting). True when it went."""
        roof = self.roof
        dev, frame = out.device, out.frame
        assert dev is not None and frame is not None
        s = dev.session
        if s is None:
            return False
        c = roof.gateway_for(out.copies)
        if c is None:
            self._put_back(dev.dev_eui, command)
            roof.counts["no_gateway"] += 1
            return False
        fopts = maccmds.encode(mac, False)[:MAX_FOPTS] if mac else b""
        if command is not None:
            # the payload must fit the data rate of RX1 (the uplink's) and of RX2, beside the MAC answers
            try:
                room = min(
                    eu868.max_app_payload(eu868.dr_from_datr(c.rx.datr)), eu868.max_app_payload(dev.rx2_dr)
                )
            except InputError:
                room = eu868.max_app_payload(0)
            if len(bytes.fromhex(str(command[1]["data"]))) > room - len(fopts):
                self._put_back(dev.dev_eui, command)
                command, more = None, more + 1
                if not must:
                    return False
        cmd = command[1] if command is not None else None
        try:
            fcnt_down = roof.store.take_fcnt_down(dev.dev_eui)
            data = phy.build_data_frame(
                uplink=False,
                confirmed=bool(cmd.get("confirmed")) if cmd else False,
                dev_addr=s.dev_addr,
                fcnt32=fcnt_down,
                fport=int(cmd["fport"]) if cmd else None,
                payload=bytes.fromhex(str(cmd["data"])) if cmd else b"",
                fopts=fopts,
                ack=frame.confirmed,
                fpending=more > 0,
                nwk_s_key=s.nwk_s_key,
                app_s_key=s.app_s_key,
            )
        except HavelError as exc:
            log.error("downlink for %s not built: %s", dev.eui_hex, exc)
            roof.counts["downlink_failed"] += 1
            if isinstance(exc, NotAnswered):  # (no counter: the store went away)
                self._put_back(dev.dev_eui, command)
            return False
        kind = "command" if cmd else "ack" if frame.confirmed else "mac"
        d = roof.downlink(c, data, dev.rx1_delay, kind, out)
        if command is not None:
            raw, _, attempt = command
            d["command"], d["attempt"], d["fcnt_down"] = raw, attempt, fcnt_down
            if cmd and cmd.get("confirmed"):
                try:
                    roof.shared.await_ack(dev.dev_eui, raw, attempt, fcnt_down)
                except UNREACHABLE as exc:
                    roof.store.offline(exc)
        roof.route(d)
        return True

    def _put_back(self, dev_eui: int, command: tuple[str, dict[str, Any], int] | None) -> None:
        """A command taken but not sent goes back to the head of the device's queue (its next uplink); one
        waiting for its ACK (a later attempt) still waits."""
        if command is None or command[2] > 1:
            return
        try:
            self.roof.shared.requeue_command(dev_eui, command[0])
        except UNREACHABLE as exc:
            self.roof.store.offline(exc)
            self.roof.counts["command_lost"] += 1
            log.error("a command for %016X could not be put back: the shared store went away", dev_eui)
