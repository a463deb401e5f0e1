"""The APRS relay: signed, plain-text APRS messages over a KISS TNC on TCP (direwolf or a TNC bridge).

Legal guards (AFuV, see docs/relay.md): no start without a licensed callsign (:class:`LegalError`), nothing
transmitted unless the emergency switch is on (records wait, counted), content in clear text, signed.
APRS rules: alarms are messages with an id to the configured addressee, resent until acknowledged but not
faster than every 30 s and at most ``retries`` times; state lines go without id (no ack, no resend).
Every transmission is checked against the rolling airtime budget; alarms before state; at least
``min_gap_s`` between two frames, so a backlog never goes out as a burst. State of the telemetry channels
goes as a signed ``T#`` report, preceded by the signed definitions whenever they are due (the first report
of each emergency, then an hour after they were last sent).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError, HavelError, LegalError
from havel.gateway.relay import aprs, ax25
from havel.gateway.relay.aprs_config import APRSConfig
from havel.gateway.relay.aprs_telemetry import CHANNEL, TelemetryReports
from havel.gateway.relay.budget import Budget, afsk_airtime_s
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.events import encode_event_line
from havel.gateway.relay.lines import encode_line, encode_status_line, sign_line, to_base36
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.signing import Signer, identity
from havel.gateway.relay.tnc import TncConnection

log = logging.getLogger("havel.relay.aprs")
PRIO = {"alarm": 0, "state": 1}
# Room for " COUNTER.TAG" with a counter of up to 7 digits inside the 67 characters of an APRS message.
LINE_MAX = aprs.MAX_TEXT - 1 - 7 - 1 - 11


@dataclass(order=True)
class _Item:
    prio: int
    seq: int
    cls: str = field(compare=False)  # "alarm" | "state": budget class
    label: str = field(compare=False)  # for logs: the message id, or what it is
    line: str = field(compare=False)
    kind: str = field(compare=False, default="msg")  # "msg" (signed line) | "tlm" (T# report) | "def"
    rec: RelayRecord | None = field(compare=False, default=None)
    msgno: str | None = field(compare=False, default=None)
    tries: int = field(compare=False, default=0)
    held: bool = field(compare=False, default=False)


class APRSRelay:
    """Owns one TCP connection to a KISS TNC, in its own thread; ``offer()`` never blocks."""

    name = "aprs"

    def __init__(
        self,
        cfg: APRSConfig,
        signer: Signer,
        emergency: EmergencySwitch,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not cfg.callsign:
            raise LegalError("the APRS relay refuses to start without a callsign")
        self.cfg = cfg
        if identity(signer.sender) != identity(cfg.callsign):
            raise ConfigError(
                f"APRS relay: signing identity {signer.sender!r} must be the callsign "
                f"{cfg.callsign!r} (the receiver checks the frame's source)"
            )
        self.signer = signer
        self.emergency = emergency
        self.clock = clock
        self.budget = Budget(
            cfg.budget_airtime_s, cfg.budget_window_s, state_share=cfg.state_share, clock=clock
        )
        self._queue: list[_Item] = []
        self._inflight: dict[str, tuple[_Item, float]] = {}  # msgno -> (item, next resend time)
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.tnc = TncConnection(cfg.host, cfg.port, kiss_port=cfg.kiss_port)
        # TNC2 text of the frames handed to the TNC (status output and tests), the latest 1000
        self.sent: deque[str] = deque(maxlen=1000)
        self.telemetry = TelemetryReports(
            cfg.callsign, cfg.channels(), signer, every_s=cfg.definitions_every_s, clock=clock
        )
        self._was_on = False
        self._last_tx_at: float | None = None
        self.stats: dict[str, int] = {
            "offered": 0,
            "sent": 0,
            "resent": 0,
            "acked": 0,
            "gave_up": 0,
            "held_no_emergency": 0,
            "budget_wait": 0,
            "oversize": 0,
            "tnc_disconnects": 0,
            "tnc_connects": 0,
            "definitions_sent": 0,
            "rx_malformed": 0,
            "rx_other": 0,
            "restarts": 0,
        }
        self.on_ack: Callable[[RelayRecord], None] | None = None

    # ------------------------------------------------------------------ interface for the manager

    def offer(self, rec: RelayRecord) -> bool:
        """Queue a record (alarm or state); False when it cannot be sent as APRS at all (too big)."""
        if rec.cls not in PRIO:
            return False
        if rec.cls == "state" and self._telemetry_update(rec):
            return True
        try:
            line = encode_line(rec, max_len=LINE_MAX)
        except HavelError as exc:
            self.stats["oversize"] += 1
            log.warning("APRS relay cannot carry %s: %s", rec.id, exc)
            return False
        with self._lock:
            if rec.cls == "state":
                # Only the latest value per sensor waits for the slow path.
                self._queue = [
                    i
                    for i in self._queue
                    if not (i.cls == "state" and i.rec is not None and i.rec.dev_eui == rec.dev_eui)
                ]
                heapq.heapify(self._queue)
            heapq.heappush(
                self._queue, _Item(PRIO[rec.cls], next(self._seq), rec.cls, rec.id, line, "msg", rec)
            )
            self.stats["offered"] += 1
        self._wake.set()
        return True

    def publish_status(self, status: dict[str, Any]) -> None:
        """The primary path's state as a signed ``HP`` line to the crisis centre (acked like an alarm)."""
        line = encode_status_line(str(status["primary"]), int(status.get("at") or time.time()))
        with self._lock:
            heapq.heappush(self._queue, _Item(PRIO["alarm"], next(self._seq), "alarm", line[:7], line))
        self._wake.set()

    def publish_event(self, body: dict[str, Any]) -> bool:
        """An alarm-class gateway event as a signed ``HE`` line (acked like an alarm); False when even its
        name does not fit in a message."""
        try:
            line = encode_event_line(body, max_len=LINE_MAX)
        except HavelError as exc:
            self.stats["oversize"] += 1
            log.warning("APRS relay cannot carry event %s: %s", body.get("id"), exc)
            return False
        with self._lock:
            heapq.heappush(
                self._queue, _Item(PRIO["alarm"], next(self._seq), "alarm", str(body["event"]), line)
            )
            self.stats["offered"] += 1
        self._wake.set()
        return True

    def _telemetry_update(self, rec: RelayRecord) -> bool:
        """Feed a state record into the telemetry channels; queue one T# report (replacing a waiting one).

        The definitions are not queued here: they go out right before a report whenever they are due
        (:meth:`TelemetryReports.due`), so a state update can never drop them.
        """
        if not self.telemetry.feed(rec):
            return False
        with self._lock:
            waiting = any(i.kind == "tlm" for i in self._queue)
            if not waiting:
                heapq.heappush(
                    self._queue, _Item(PRIO["state"], next(self._seq), "state", "telemetry", "", "tlm")
                )
            self.stats["offered"] += 1
        self._wake.set()
        return True

    def _info(self, item: _Item) -> str:
        if item.kind == "tlm":
            return self.telemetry.report()
        if item.kind == "def":
            return aprs.Message(self.cfg.callsign, item.line).encode()
        if item.msgno is None and item.cls == "alarm":
            item.msgno = to_base36(self.signer.counters.next() % 36**5)
        ctx = aprs.pad_addressee(self.cfg.addressee) + ":"
        text = sign_line(self.signer, CHANNEL, item.line, context=ctx)
        return aprs.Message(self.cfg.addressee, text, item.msgno).encode()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._inflight)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="relay-aprs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self._close()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        backoff = 0.5
        while not self._halt.is_set():
            if not self.tnc.connected:
                try:
                    self._connect()
                    backoff = 0.5
                except OSError as exc:
                    log.warning("APRS relay: TNC %s:%d unreachable: %s", self.cfg.host, self.cfg.port, exc)
                    self._halt.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
            try:
                self._read(0.2)
                self._transmit_due()
            except OSError as exc:
                log.warning("APRS relay: TNC connection lost: %s", exc)
                self.stats["tnc_disconnects"] += 1
                self._close()
            except Exception:
                # A bug must not silence the path for the rest of the emergency: start over with a new
                # connection (the queue is kept), counted for /healthz.
                self.stats["restarts"] += 1
                log.exception("APRS relay: unexpected error; reconnecting to the TNC")
                self._close()
                self._halt.wait(1.0)

    def _connect(self) -> None:
        self.tnc.connect()
        self.stats["tnc_connects"] += 1
        log.info("APRS relay: connected to TNC %s:%d", self.cfg.host, self.cfg.port)

    def _close(self) -> None:
        self.tnc.close()

    def _read(self, timeout: float) -> None:
        before = self.tnc.malformed
        for payload in self.tnc.read(timeout):
            self._heard(payload)
        self.stats["rx_malformed"] += self.tnc.malformed - before  # broken escapes, oversize

    def _heard(self, payload: bytes) -> None:
        """An ack from the addressee for one of our messages ends its resends; everything else is counted."""
        try:
            frame = ax25.UIFrame.decode(payload)
            msg = aprs.parse_message(frame.info.decode("ascii"))
        except (HavelError, UnicodeDecodeError):
            self.stats["rx_other"] += 1  # other stations' traffic, noise, truncated frames
            return
        if msg.kind != "ack" or msg.addressee != self.cfg.callsign:
            self.stats["rx_other"] += 1
            return
        if not frame.source.same_station(ax25.Address.parse(self.cfg.addressee)):
            self.stats["rx_other"] += 1
            return
        with self._lock:
            entry = self._inflight.pop(msg.msgno or "", None)
        if entry is not None:
            self.stats["acked"] += 1
            log.info("APRS relay: %s acknowledged by %s", entry[0].label, frame.source)
            if self.on_ack is not None and entry[0].rec is not None:
                try:
                    self.on_ack(entry[0].rec)
                except Exception:
                    log.exception("APRS relay: ack listener failed")

    def _take(self, item: _Item) -> bool:
        """Remove ``item`` from the queue (offer() may have pushed others in front of it meanwhile)."""
        with self._lock:
            if self._queue and self._queue[0] is item:
                heapq.heappop(self._queue)
                return True
            for i, other in enumerate(self._queue):
                if other is item:
                    self._queue.pop(i)
                    heapq.heapify(self._queue)
                    return True
        return False

    def _emergency_on(self) -> bool:
        """The switch, read before every transmission; a new emergency sends the definitions again."""
        on = self.emergency.is_on()
        if on and not self._was_on:
            self.telemetry.new_emergency()
        self._was_on = on
        return on

    def _transmit_due(self) -> None:
        now = self.clock()
        on = self._emergency_on()
        item: _Item | None = None
        with self._lock:
            due = [m for m, (_, t) in self._inflight.items() if t <= now]
            for m in due:
                it, _ = self._inflight.pop(m)
                if it.tries > self.cfg.retries:
                    self.stats["gave_up"] += 1
                    log.warning("APRS relay: %s not acknowledged after %d tries", it.label, it.tries)
                    continue
                heapq.heappush(self._queue, it)
            if self._queue:
                item = self._queue[0]
        if item is None:
            self._wake.wait(0.05)
            self._wake.clear()
            return
        if not on:
            # AFuV: third-party traffic only in a declared emergency. Hold, count, transmit nothing.
            # Every waiting frame is counted once, not only the one at the head of the queue.
            with self._lock:
                for waiting in self._queue:
                    if not waiting.held:
                        self.stats["held_no_emergency"] += 1
                        waiting.held = True
            self._wake.wait(0.5)
            self._wake.clear()
            return
        if self._last_tx_at is not None and now - self._last_tx_at < self.cfg.min_gap_s:
            self._wake.wait(min(0.5, self.cfg.min_gap_s - (now - self._last_tx_at)))
            self._wake.clear()
            return
        tlm = self.telemetry
        if item.kind == "tlm" and not tlm.todo and tlm.due():
            tlm.todo = tlm.definition_texts()
        if item.kind == "tlm" and tlm.todo:
            # The definitions go first, one frame per turn, so a receiver can read the report that follows.
            item = _Item(item.prio, item.seq, "state", tlm.todo[0][:4], tlm.todo[0], "def")
        try:
            info = self._info(item)
            frame = ax25.UIFrame.aprs(self.cfg.callsign, self.cfg.destination, info, self.cfg.path)
        except HavelError as exc:
            if item.kind == "def":
                tlm.todo = []
            self._take(item)
            self.stats["oversize"] += 1
            log.error("APRS relay: dropped %s: %s", item.label, exc)
            return
        raw = frame.encode()
        cost = afsk_airtime_s(len(raw), baud=self.cfg.baud, txdelay_s=self.cfg.txdelay_s)
        if not self.budget.try_spend(cost, item.cls):
            self.stats["budget_wait"] += 1
            self._wake.wait(1.0)
            self._wake.clear()
            return
        if item.kind != "def" and not self._take(item):
            return  # superseded meanwhile (a newer state of the same sensor): not sent
        try:
            self.tnc.send(raw)
        except OSError:
            if item.kind != "def":
                with self._lock:
                    heapq.heappush(self._queue, item)  # not sent: keep it
            raise
        self._last_tx_at = now
        item.tries += 1
        self.sent.append(frame.tnc2())
        if item.kind == "def":
            tlm.sent_one(now)
            self.stats["definitions_sent"] += 1
            log.info("APRS relay: sent %s (%.2f s airtime)", item.label, cost)
            return
        self.stats["resent" if item.tries > 1 else "sent"] += 1
        log.info("APRS relay: sent %s (try %d, %.2f s airtime)", item.label, item.tries, cost)
        if item.msgno is not None:
            with self._lock:
                self._inflight[item.msgno] = (item, now + self.cfg.resend_s)

    def health(self) -> dict[str, Any]:
        return {
            "connected": self.tnc.connected,
            "emergency": self._was_on,
            "pending": self.pending(),
            **self.stats,
        }
