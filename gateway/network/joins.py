"""The OTAA join server: join-request MIC, DevNonce reuse, DevAddr allocation, session keys, join-accept.

A join is recorded only together with its join-accept: the caller's ``after_store`` schedules it inside a
savepoint with the join's writes, and when it raises :class:`NotAnswered` (no concentrator to send through,
the duty cycle) they are rolled back and the join-request is rejected as ``join_unanswered``; the device asks
again with a new DevNonce. A join-request replayed from the intake journal after a restart cannot be answered
at all (its windows are gone)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from havel.codecs.lorawan import crypto, eu868, phy
from havel.codecs.lorawan.ids import eui_hex
from havel.errors import HavelError
from havel.gateway.config import NetworkConfig
from havel.gateway.network.messages import MessageBuilder
from havel.gateway.network.outcome import NotAnswered, Outcome, Reason, Status, rejected
from havel.gateway.network.reception import COUNTER_MODULO, Reception
from havel.gateway.network.sessions import Device, Session, SessionStore
from havel.gateway.outbox_records import Row, record_row

log = logging.getLogger("havel.gateway.netserver")

# EU868 CFList sent in join-accepts: the five common extra channels (867.1 .. 867.9 MHz).
CFLIST_HZ = [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000]


class JoinServer:
    """Answers join-requests against the devices in ``store`` (inside the caller's transaction)."""

    def __init__(
        self, store: SessionStore, net: NetworkConfig, messages: MessageBuilder, rng: random.Random
    ) -> None:
        self.store = store
        self.net = net
        self.messages = messages
        self.rng = rng

    def join(
        self,
        jr: phy.JoinRequest,
        copies: list[Reception],
        nonces_seen: set[tuple[int, int]],
        records: list[Row],
        after_store: Callable[[Outcome], None] | None,
    ) -> Outcome:
        """A join-request (``copies`` best first): joined with its join-accept scheduled by ``after_store``,
        or rejected. ``nonces_seen`` are the (DevEUI, DevNonce) taken earlier in the batch; the join's
        outbox row goes to ``records``."""
        best = copies[0]
        if best.replayed:
            return rejected(
                Reason.JOIN_UNANSWERED,
                "join-request from before a restart: its join-accept windows have passed",
                copies,
            )
        mark = len(records)
        try:
            with self.store.transaction():  # a savepoint of the caller's transaction
                out = self._accept(jr, copies, nonces_seen, records)
                if out.status == Status.JOINED and after_store is not None:
                    after_store(out)
        except NotAnswered as exc:
            del records[mark:]
            nonces_seen.discard((jr.dev_eui, jr.dev_nonce))
            log.warning("join-request of %s not answered: %s", eui_hex(jr.dev_eui), exc)
            return rejected(Reason.JOIN_UNANSWERED, str(exc), copies)
        except BaseException:
            del records[mark:]  # rolled back with the savepoint
            nonces_seen.discard((jr.dev_eui, jr.dev_nonce))
            raise
        return out

    def _accept(
        self,
        jr: phy.JoinRequest,
        copies: list[Reception],
        nonces_seen: set[tuple[int, int]],
        records: list[Row],
    ) -> Outcome:
        best = copies[0]
        dev = self.store.by_join(jr.join_eui, jr.dev_eui)
        if dev is None or dev.app_key is None:
            return rejected(
                Reason.UNKNOWN_DEVICE,
                f"no OTAA device with DevEUI {eui_hex(jr.dev_eui)} and JoinEUI {eui_hex(jr.join_eui)}",
                copies,
            )
        if not crypto.verify_mic(crypto.join_request_mic(dev.app_key, jr.msg), jr.mic):
            return rejected(Reason.MIC, "join-request MIC does not verify", copies, device=dev)
        if (dev.dev_eui, jr.dev_nonce) in nonces_seen or self.store.dev_nonce_used(dev.dev_eui, jr.dev_nonce):
            return rejected(
                Reason.DEV_NONCE_REUSED, f"DevNonce {jr.dev_nonce} was used before", copies, device=dev
            )
        nonces_seen.add((dev.dev_eui, jr.dev_nonce))
        net = self.net
        dev_addr = self._allocate_dev_addr(dev)
        join_nonce = self.store.next_join_nonce()
        nwk, app = crypto.derive_session_keys(dev.app_key, join_nonce, net.net_id, jr.dev_nonce)
        epoch = self.store.activate(
            dev.dev_eui,
            Session(dev_addr, nwk, app, None, 0),
            jr.dev_nonce,
            rx1_delay=net.rx1_delay_s,
            rx1_dr_offset=net.rx1_dr_offset,
            rx2_dr=net.rx2_dr,
        )
        accept = phy.build_join_accept(
            app_key=dev.app_key,
            join_nonce=join_nonce,
            net_id=net.net_id,
            dev_addr=dev_addr,
            rx1_dr_offset=net.rx1_dr_offset,
            rx2_dr=net.rx2_dr,
            rx_delay=net.rx1_delay_s,
            cflist_hz=CFLIST_HZ,
        )
        record = self.messages.join(dev, jr, dev_addr, epoch, copies)
        records.append(record_row(record))
        rx = best.rx
        plan = [
            (rx.freq_hz, rx.datr, (rx.tmst + eu868.JOIN_ACCEPT_DELAY1_S * 1_000_000) % COUNTER_MODULO),
            # the device has not seen our DLSettings yet: its join RX2 is the region's default (DR0)
            (
                eu868.RX2_FREQ_HZ,
                eu868.datr(eu868.RX2_DR),
                (rx.tmst + eu868.JOIN_ACCEPT_DELAY2_S * 1_000_000) % COUNTER_MODULO,
            ),
        ]
        log.info("join accepted: %s DevAddr %08X", dev.name, dev_addr)
        return Outcome(
            Status.JOINED,
            device=dev,
            best=best,
            copies=copies,
            record=record,
            join_accept=accept,
            downlink_plan=plan,
        )

    def _allocate_dev_addr(self, dev: Device) -> int:
        """A random free DevAddr under the configured prefix (re-joining devices get a new one)."""
        plen = self.net.dev_addr_prefix_len
        host_bits = 32 - plen
        for _ in range(1000):
            addr = self.net.dev_addr_prefix | self.rng.getrandbits(host_bits)
            current = dev.session.dev_addr if dev.session else None
            if addr != current and not self.store.dev_addr_in_use(addr):
                return addr
        raise HavelError(
            "no free DevAddr left under the configured prefix", hint="widen network.dev_addr_prefix"
        )
