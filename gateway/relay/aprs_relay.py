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

import contextlib
import heapq
import itertools
import logging
import math
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError, HavelError, InputError, LegalError

from ..settings import read
from . import aprs, ax25, kiss
from .budget import Budget, afsk_airtime_s
from .emergency import EmergencySwitch
from .envelope import (
    RelayRecord,
    encode_event_line,
    encode_line,
    encode_status_line,
    sign_line,
    to_base36,
)
from .signing import Signer, identity

log = logging.getLogger("havel.relay.aprs")
CHANNEL = "aprs"
MIN_RESEND_S = 30.0
PRIO = {"alarm": 0, "state": 1}
# Room for " COUNTER.TAG" with a counter of up to 7 digits inside the 67 characters of an APRS message.
LINE_MAX = aprs.MAX_TEXT - 1 - 7 - 1 - 11
DEFAULT_PATH = ("WIDE2-1",)


@dataclass
class APRSConfig:
    """``[[relay.path]] type = "aprs"`` in the gateway config."""

    callsign: str
    addressee: str
    host: str = "127.0.0.1"
    port: int = 8001
    kiss_port: int = 0
    destination: str = "APZHVL"
    # A fixed rooftop station: one hop through the wide-area digipeaters. WIDE1-1 asks fill-in digipeaters
    # meant for mobiles and adds copies; [] in a local net where the crisis centre hears the gateway.
    path: list[str] = field(default_factory=lambda: list(DEFAULT_PATH))
    resend_s: float = MIN_RESEND_S
    # Between two of our frames the channel stays free this long: the digipeater repeats the frame, the
    # crisis centre acks it, other stations get a turn. A burst (emergency switched on with a backlog)
    # goes out spread at this pace, alarms first, within the airtime budget.
    min_gap_s: float = 5.0
    retries: int = 3
    budget_airtime_s: float = 60.0
    budget_window_s: float = 3600.0
    state_share: float = 0.5
    txdelay_s: float = 0.3
    baud: int = 1200
    # State as APRS telemetry: up to five analog channels, each one data field of one device, e.g.
    # {name = "Pegel1", unit = "cm", dev_eui = "70B3D57ED0000001", field = "level", b = 2.0, c = 0.0}
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    definitions_every_s: float = 3600.0

    @classmethod
    def from_config(cls, d: dict[str, Any], where: str = "relay.path (aprs)") -> APRSConfig:
        """Read a ``[[relay.path]]`` table; errors name the key under ``where`` (``relay.path[0]``)."""
        call = str(d.get("callsign") or "").strip()
        if not call:
            raise LegalError(
                f"{where}: no callsign configured: the APRS relay may not transmit without the "
                "licensed callsign of the station",
                hint='set callsign = "DB0XYZ-10" (club station)',
            )
        try:
            ax25.Address.parse(call)
        except InputError as exc:
            raise ConfigError(f"{where}.callsign: {exc}") from exc
        if "addressee" not in d:
            raise ConfigError(f"{where}.addressee is missing (the crisis centre's callsign)")
        # types, unknown keys and defaults from the dataclass's fields
        cfg = read(cls, {k: v for k, v in d.items() if k not in ("type", "name")}, where)
        for name in ("resend_s", "budget_airtime_s", "budget_window_s", "min_gap_s", "definitions_every_s"):
            v = getattr(cfg, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"{where}.{name} must be a finite number >= 0, not {v!r}")
        if cfg.resend_s < MIN_RESEND_S:
            raise ConfigError(f"{where}.resend_s must be at least {MIN_RESEND_S:g} (APRS resend rule)")
        try:
            # One spelling everywhere (SSID 0 has none): what goes on the air is what is signed.
            cfg.callsign = str(ax25.Address.parse(call))
            cfg.addressee = str(ax25.Address.parse(str(cfg.addressee)))
            aprs.pad_addressee(cfg.addressee)
            cfg.path = [str(ax25.Address.parse(p)) for p in cfg.path]  # e.g. ["WIDE2-1"]
            cfg.destination = str(ax25.Address.parse(str(cfg.destination)))
        except InputError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        cfg.channels()  # validates the telemetry table
        return cfg

    def channels(self) -> list[TelemetryChannel]:
        """The telemetry channels of the config (ConfigError names a bad entry)."""
        if len(self.telemetry) > 5:
            raise ConfigError("relay.path (aprs).telemetry: APRS telemetry has five analog channels")
        out = []
        for i, t in enumerate(self.telemetry):
            where = f"relay.path (aprs).telemetry[{i}]"
            missing = [k for k in ("name", "dev_eui", "field") if k not in t]
            if missing:
                raise ConfigError(f"{where}.{missing[0]} is missing")
            unknown = set(t) - {"name", "unit", "dev_eui", "field", "b", "c"}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            ch = aprs.Channel(
                str(t["name"]), str(t.get("unit", "")), 0.0, float(t.get("b", 1.0)), float(t.get("c", 0.0))
            )
            if ch.b == 0:
                raise ConfigError(f"{where}.b must not be 0")
            out.append(TelemetryChannel(ch, str(t["dev_eui"]).upper(), str(t["field"])))
        return out


@dataclass(frozen=True)
class TelemetryChannel:
    """An APRS telemetry channel fed by one data field of one device."""

    channel: aprs.Channel
    dev_eui: str
    field: str


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
        self._sock: socket.socket | None = None
        self._decoder = kiss.Decoder()
        # TNC2 text of the frames handed to the TNC (status output and tests), the latest 1000
        self.sent: deque[str] = deque(maxlen=1000)
        self.channels = cfg.channels()
        self._values: list[float | None] = [None] * len(self.channels)
        self._tlm_seq = 0
        self._defs_sent_at: float | None = None  # when the last full set of definitions went out
        self._defs_todo: list[str] = []  # definition texts still to send before the next report
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
        (:meth:`_definitions_due`), so a state update can never drop them.
        """
        hit = False
        for i, ch in enumerate(self.channels):
            v = rec.data.get(ch.field)
            if (
                ch.dev_eui == rec.dev_eui
                and isinstance(v, int | float)
                and not isinstance(v, bool)
                and math.isfinite(v)
            ):
                self._values[i] = float(v)
                hit = True
        if not hit:
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

    def _definitions_due(self) -> bool:
        """Before the first report of every emergency, and again once the last were sent an hour ago."""
        return self._defs_sent_at is None or self.clock() - self._defs_sent_at >= self.cfg.definitions_every_s

    def _definition_texts(self) -> list[str]:
        """PARM., UNIT., EQNS. and the signed BITS. (its title carries the signature over all four)."""
        msgs = aprs.definition_messages(self.cfg.callsign, [c.channel for c in self.channels])
        defs = [m.text for m in msgs]
        sig = self.signer.sign(CHANNEL, aprs.definitions_body(defs).encode())
        defs[3] = f"{defs[3]} {sig}"
        return defs

    def _telemetry_report(self) -> str:
        analog = [
            c.channel.raw(v) if v is not None else 0 for c, v in zip(self.channels, self._values, strict=True)
        ]
        analog += [0] * (5 - len(analog))
        self._tlm_seq = (self._tlm_seq + 1) % 1000
        report = aprs.Telemetry(
            self._tlm_seq, (analog[0], analog[1], analog[2], analog[3], analog[4])
        ).encode()
        sig = self.signer.sign(CHANNEL, report.encode())
        return f"{report} {sig}"

    def _info(self, item: _Item) -> str:
        if item.kind == "tlm":
            return self._telemetry_report()
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
            if self._sock is None:
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
        sock = socket.create_connection((self.cfg.host, self.cfg.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(5)
        self._sock = sock
        self._decoder = kiss.Decoder()
        self.stats["tnc_connects"] += 1
        log.info("APRS relay: connected to TNC %s:%d", self.cfg.host, self.cfg.port)

    def _close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _read(self, timeout: float) -> None:
        assert self._sock is not None
        r, _, _ = select.select([self._sock], [], [], timeout)
        if not r:
            return
        data = self._sock.recv(4096)
        if not data:
            raise ConnectionResetError("TNC closed the connection")
        before = self._decoder.errors
        for fr in self._decoder.feed(data):
            if fr.command == kiss.CMD_DATA:
                self._heard(fr.payload)
        self.stats["rx_malformed"] += self._decoder.errors - before  # broken escapes, oversize

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
            self._defs_sent_at = None
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
        if item.kind == "tlm" and not self._defs_todo and self._definitions_due():
            self._defs_todo = self._definition_texts()
        if item.kind == "tlm" and self._defs_todo:
            # The definitions go first, one frame per turn, so a receiver can read the report that follows.
            item = _Item(item.prio, item.seq, "state", self._defs_todo[0][:4], self._defs_todo[0], "def")
        try:
            info = self._info(item)
            frame = ax25.UIFrame.aprs(self.cfg.callsign, self.cfg.destination, info, self.cfg.path)
        except HavelError as exc:
            if item.kind == "def":
                self._defs_todo = []
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
        assert self._sock is not None
        try:
            self._sock.sendall(kiss.encode(raw, port=self.cfg.kiss_port))
        except OSError:
            if item.kind != "def":
                with self._lock:
                    heapq.heappush(self._queue, item)  # not sent: keep it
            raise
        self._last_tx_at = now
        item.tries += 1
        self.sent.append(frame.tnc2())
        if item.kind == "def":
            self._defs_todo.pop(0)
            self.stats["definitions_sent"] += 1
            if not self._defs_todo:
                self._defs_sent_at = now  # the hour counts from the last sending, not the queueing
            log.info("APRS relay: sent %s (%.2f s airtime)", item.label, cost)
            return
        self.stats["resent" if item.tries > 1 else "sent"] += 1
        log.info("APRS relay: sent %s (try %d, %.2f s airtime)", item.label, item.tries, cost)
        if item.msgno is not None:
            with self._lock:
                self._inflight[item.msgno] = (item, now + self.cfg.resend_s)

    def health(self) -> dict[str, Any]:
        return {
            "connected": self._sock is not None,
            "emergency": self._was_on,
            "pending": self.pending(),
            **self.stats,
        }
