"""The crisis-centre board: what the receiver verified, as one read-only page that updates itself.

The board listens to the receiver core (:meth:`ReceiverCore.observe`) and keeps, in memory:

- the latest alarms (newest first by the time the gateway measured them), each with its device, values
  and units, the alarm rule it crossed (when the gateway's rules are known here), its times and the path
  it came by;
- every path's state and since when: the receiver's own listeners (APRS over the TNC, mesh MQTT,
  Reticulum), watched every half second, and each gateway's primary path from its signed reports;
- per device the latest value of each field, and the water level (``level``) of the last hours for the
  chart the page draws.

Only what the receiver verified is kept as fact. What it could not verify is not shown as a reading: the
page gets the counts of rejected messages by reason, and the mesh broker's unsigned online/offline
status marked as unverified. The page reads ``GET /api/board`` whenever the event stream (``/events``)
says something changed; there is nothing to post.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from havel.errors import ConfigError
from havel.gateway.relay.priority import Rule
from havel.gateway.relay.record import RelayRecord
from havel.web import LocalApp, Request

log = logging.getLogger("havel.relay.board")

PATH_LABELS = {
    "primary": "Primary",
    "mqtt": "Mesh MQTT",
    "aprs": "APRS",
    "reticulum": "Reticulum",
    "rns": "Reticulum",
}
CHART_FIELDS = ("level",)  # the water level: the one reading the staff follow over hours
HISTORY_S = 6 * 3600.0
MAX_ALARMS = 100
MAX_POINTS = 2000  # per device and field: one reading a minute for more than a day
POLL_S = 0.5
# Counter names of the receiver that mean "arrived, but not shown": what the page lists as unverified.
REJECTED = ("forged", "replayed", "stale", "malformed", "unsigned", "future", "oversize", "unknown", "error")
_SYMBOLS = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "==": "=", "!=": "≠"}


def alarm_rules(path: str | Path) -> list[Rule]:
    """The alarm rules with a field test from a TOML file: the gateway's config (``[relay] rules``) or a
    file with ``rules = [...]`` at the top. They let the board name the threshold an alarm crossed."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"rules file {p} cannot be read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    relay = raw.get("relay")
    rules = raw.get("rules", relay.get("rules") if isinstance(relay, dict) else None)
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(
            f"{p}: no list of rules", hint="rules = [...] at the top of the file, or under [relay]"
        )
    parsed = [Rule.from_config(d, i) for i, d in enumerate(rules)]
    return [r for r in parsed if r.cls == "alarm" and r.field]


def crossed(rules: list[Rule], rec: RelayRecord) -> dict[str, Any] | None:
    """The first alarm rule the record matches, ignoring the rule's codec (a relayed record has none)."""
    payload = {"device": rec.device, "dev_eui": rec.dev_eui, "data": _nest(rec.data)}
    for r in rules:
        if dataclasses.replace(r, codec=None).matches(payload):
            return {"rule": r.name, "field": r.field, "text": _rule_text(r, rec.units.get(r.field or "", ""))}
    return None


def _rule_text(r: Rule, unit: str) -> str:
    if r.op in ("true", "false"):
        return f"{r.field} is {r.op}"
    if r.op == "present":
        return f"{r.field} reported"
    return f"{r.field} {_SYMBOLS.get(str(r.op), r.op)} {r.value}{' ' + unit if unit else ''}"


def _nest(data: dict[str, Any]) -> dict[str, Any]:
    """``{"faults.valve": true}`` (a relayed record's dotted names) back to nested objects."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        parts = str(key).split(".")
        cur = out
        for part in parts[:-1]:
            nxt = cur.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            cur = nxt
        else:
            cur[parts[-1]] = value
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


class Board:
    """The board of one running receiver (a :class:`~havel.gateway.relay.receive.receiver.Receiver`).

    ``board.app`` is the page for :func:`havel.web.serve`; :meth:`start` begins watching the listeners.
    """

    def __init__(
        self,
        receiver: Any,
        rules: list[Rule] | None = None,
        *,
        history_s: float = HISTORY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rx = receiver
        self.core = receiver.core
        self.rules = list(rules or [])
        self.history_s = history_s
        self.clock = clock
        self.app = LocalApp("Havel crisis-centre board", str(__package__))
        self._lock = threading.Lock()
        self._alarms: deque[dict[str, Any]] = deque(maxlen=MAX_ALARMS)
        self._devices: dict[str, dict[str, Any]] = {}
        self._paths: dict[str, dict[str, Any]] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="board-paths", daemon=True)
        now = clock()
        for name, up in self._listener_states().items():
            self._paths[name] = self._path_view(name, PATH_LABELS[name], "up" if up else "down", now)
        for gw in sorted({s.gateway_id for s in self.core.cfg.senders}):
            view = self._path_view(f"primary:{gw}", f"Primary ({gw})", "unknown", None)
            view["detail"] = "no signed report yet"
            self._paths[view["key"]] = view
        for d in list(self.core.latest):
            self._delivered(d)
        for status in list(self.core.status.values()):
            self._primary(status)
        self.app.route("GET", "/api/board")(self._api_board)
        self.core.observe(self._on_receiver)

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> Board:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.app.events.close()

    # ------------------------------------------------------------------------------ input

    def _on_receiver(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "accepted":
            self._delivered(info["delivered"])
        elif kind == "primary":
            self._primary(info)
        self._changed(kind)

    def _changed(self, why: str) -> None:
        self.app.events.publish("changed", {"why": why})

    def _delivered(self, d: Any) -> None:
        rec: RelayRecord = d.record
        with self._lock:
            dev = self._devices.setdefault(
                rec.dev_eui,
                {
                    "dev_eui": rec.dev_eui,
                    "name": None,
                    "gateway_id": d.gateway_id,
                    "values": {},
                    "history": {},
                },
            )
            if rec.device:
                dev["name"] = str(rec.device)
            for name, value in rec.data.items():
                prev = dev["values"].get(name)
                unit = str(rec.units.get(name) or (prev or {}).get("unit") or "")
                if prev is None or rec.received_at >= prev["at"]:
                    dev["values"][name] = {
                        "value": value,
                        "unit": unit,
                        "at": rec.received_at,
                        "via": d.via,
                        "class": rec.cls,
                    }
                number = _number(value)
                if name in CHART_FIELDS and number is not None:
                    points: list[tuple[float, float]] = dev["history"].setdefault(name, [])
                    bisect.insort(points, (float(rec.received_at), number))
                    del points[:-MAX_POINTS]
            if rec.cls == "alarm":
                self._alarms.append(
                    {
                        "id": rec.id,
                        "device": rec.device,
                        "dev_eui": rec.dev_eui,
                        "gateway_id": d.gateway_id,
                        "values": [
                            {"name": k, "value": v, "unit": str(rec.units.get(k) or "")}
                            for k, v in rec.data.items()
                        ],
                        "threshold": crossed(self.rules, rec),
                        "measured_at": rec.received_at,
                        "arrived_at": d.at,
                        "via": d.via,
                        "via_label": PATH_LABELS.get(d.via, d.via),
                    }
                )

    def _primary(self, status: dict[str, Any]) -> None:
        """A signed report of a gateway's primary path; the receiver already kept only the newest."""
        key = f"primary:{status['gateway_id']}"
        with self._lock:
            view = self._path_view(key, f"Primary ({status['gateway_id']})", status["primary"], status["at"])
            via = PATH_LABELS.get(status["via"], status["via"])
            view["detail"] = f"signed report from the gateway, by {via}"
            view["signed"] = True
            self._paths[key] = view

    @staticmethod
    def _path_view(key: str, label: str, state: str, since: float | None) -> dict[str, Any]:
        return {"key": key, "label": label, "state": state, "since": since, "detail": "", "signed": False}

    def _listener_states(self) -> dict[str, bool]:
        """The receiver's own listeners: connected to the TNC, to the mesh broker, the Reticulum node
        running."""
        out: dict[str, bool] = {}
        if getattr(self.rx, "kiss", None) is not None:
            out["aprs"] = bool(self.rx.kiss.health().get("connected"))
        if getattr(self.rx, "mqtt", None) is not None:
            out["mqtt"] = bool(self.rx.mqtt.connected)
        if getattr(self.rx, "rns", None) is not None:
            out["reticulum"] = bool(self.rx.rns.health().get("running"))
        return out

    def _watch(self) -> None:
        while not self._halt.wait(POLL_S):
            try:
                self.poll()
            except Exception:  # a listener's health that cannot be read must not end the watch
                log.exception("board: path states cannot be read")

    def poll(self) -> bool:
        """Look at the listeners once; True (and an event to the pages) when a path changed state."""
        now = self.clock()
        changed = False
        for name, up in self._listener_states().items():
            state = "up" if up else "down"
            with self._lock:
                old = self._paths.get(name)
                if old is None or old["state"] != state:
                    self._paths[name] = self._path_view(name, PATH_LABELS[name], state, now)
                    changed = True
        if changed:
            self._changed("path")
        return changed

    # ------------------------------------------------------------------------------ output

    def _api_board(self, req: Request) -> dict[str, Any]:
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON data."""
        now = self.clock()
        since = now - self.history_s
        with self._lock:
            alarms = sorted(self._alarms, key=lambda a: (a["measured_at"], a["arrived_at"]), reverse=True)
            devices = []
            for dev in sorted(self._devices.values(), key=lambda d: (d["name"] or d["dev_eui"]).lower()):
                charts = []
                for name, points in dev["history"].items():
                    cut = bisect.bisect_left(points, (since, -math.inf))
                    del points[:cut]
                    limit = next(
                        (r.value for r in self.rules if r.field == name and _number(r.value) is not None),
                        None,
                    )
                    charts.append(
                        {
                            "field": name,
                            "unit": dev["values"].get(name, {}).get("unit", ""),
                            "points": [list(p) for p in points],
                            "threshold": limit,
                        }
                    )
                devices.append(
                    {
                        "dev_eui": dev["dev_eui"],
                        "name": dev["name"],
                        "gateway_id": dev["gateway_id"],
                        "values": [{"name": k, **v} for k, v in sorted(dev["values"].items())],
                        "charts": charts,
                    }
                )
            paths = [dict(p) for p in self._paths.values()]
        rejected: dict[str, int] = {}
        for reason in REJECTED:
            n = self.core.total(reason)
            if n:
                rejected[reason] = n
        links = [
            {"gateway_id": gw, "state": v.get("state"), "at": v.get("at")}
            for gw, v in sorted(dict(self.core.link_status).items())
        ]
        return {
            "now": now,
            "window_s": self.history_s,
            "alarms": alarms,
            "paths": paths,
            "devices": devices,
            "unverified": {"rejected": rejected, "links": links},
        }
