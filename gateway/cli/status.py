"""``havel gateway status`` without a daemon to ask (what the database says, read-only), and the status
document printed for people."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from havel.errors import HavelError
from havel.gateway import db
from havel.gateway.config import Config


def offline_status(cfg: Config, running: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the database says, read-only; ``running``: the daemon's lock document when one runs."""
    st: dict[str, Any] = {"gateway_id": cfg.gateway_id, "state": "not running", "data_dir": str(cfg.data_dir)}
    if running is not None:
        pid = running.get("pid")
        st["pid"] = pid
        if running.get("http"):
            st["state"] = "degraded"
            st["note"] = f"the daemon (pid {pid}) runs but does not answer on {running['http']}"
        else:
            st["state"] = "running"
            st["note"] = f"the daemon (pid {pid}) runs without an HTTP port; this is what its database says"
    if not cfg.db_path.exists():
        return st
    from havel.gateway.outbox import Outbox
    from havel.gateway.outbox_sinks import pending_by_sink

    try:
        conn = db.open_db_readonly(cfg.db_path)
    except HavelError as exc:
        st["error"] = str(exc)
        return st
    try:
        st["devices"] = count_devices(conn)
        per_sink = pending_by_sink(conn)
        if per_sink:
            ob = Outbox.reader(conn)
            st["outbox"] = {
                "depth": ob.depth(),
                "bytes": ob.size_bytes(),
                "oldest": ob.oldest_received_at(),
                "dropped": ob.dropped(),
                "waiting_per_sink": per_sink,
            }
    except (HavelError, sqlite3.Error) as exc:
        st["error"] = str(exc)
    finally:
        conn.close()
    return st


def count_devices(conn: sqlite3.Connection) -> int | None:
    try:
        return int(conn.execute("SELECT count(*) FROM devices").fetchone()[0])
    except sqlite3.OperationalError:  # no registry yet
        return None


def print_status(st: dict[str, Any]) -> None:
    con = Console()
    state = st.get("state")
    color = {"ok": "green", "degraded": "yellow"}.get(str(state), "red")
    con.print(
        f"[bold]gateway {st.get('gateway_id')}[/bold]: [{color}]{state}[/{color}]"
        + (f"  up {st['uptime_s']:.0f} s, GWMP {st.get('udp')}" if "uptime_s" in st else "")
    )
    fwds = st.get("forwarders") or []
    if fwds:
        t = Table(
            "concentrator", "proto", "last heard", "rx", "tx", "downlinks", "state", title="packet forwarders"
        )
        for f in fwds:
            t.add_row(
                f["gateway"],
                f"v{f['version']}",
                f"{f['seen_s_ago']} s ago",
                str(f["rx"]),
                str(f["tx"]),
                "ready" if f["downlink_ready"] else "no PULL_DATA yet",
                "[red]SILENT[/red]" if f["silent"] else "[green]ok[/green]",
            )
        con.print(t)
    elif "uptime_s" in st:
        con.print("[yellow]no packet forwarder has spoken yet[/yellow]")
    up = st.get("uplinks")
    if up:
        rej = ", ".join(f"{k} {v:g}" for k, v in up["rejected"].items()) or "none"
        again = f", {up['retransmitted']:g} sent again" if up.get("retransmitted") else ""
        con.print(
            f"uplinks: {up['received']:g} received, {up['accepted']:g} accepted{again}; rejected: {rej}"
        )
    ob = st.get("outbox")
    if ob:
        done = ob.get("delivered") or 0
        held = f" (and {done} delivered, deleted within seconds)" if done else ""
        waiting = (ob.get("depth") or 0) - done
        con.print(f"outbox: {waiting} waiting{held}, {ob.get('bytes')} bytes, dropped {ob.get('dropped')}")
        per_sink = ob.get("waiting_per_sink") or {}
        if per_sink:
            con.print("waiting per sink: " + ", ".join(f"{k} {v}" for k, v in per_sink.items()))
    for key in ("note", "error"):
        if st.get(key):
            con.print(f"[yellow]{st[key]}[/yellow]" if key == "note" else f"[red]{st[key]}[/red]")
    storage = st.get("storage")
    if isinstance(storage, dict) and not storage.get("ok", True):
        con.print(f"[red]storage failing while {storage.get('doing')}: {storage.get('error')}[/red]")
    for name, s in (st.get("sinks") or {}).items():
        if isinstance(s, dict) and "state" in s:
            color = {"up": "green", "down": "red"}.get(str(s["state"]), "yellow")
            err = f", last error: {s['last_error']}" if s.get("last_error") else ""
            con.print(
                f"sink {name}: [{color}]{s['state']}[/{color}] since {s.get('since')}, sent {s.get('sent')}, "
                f"acknowledged {s.get('acked')}, waiting {s.get('inflight')}{err}"
            )
        elif isinstance(s, dict):
            con.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in s.items()))
    dl = st.get("downlinks")
    if dl:
        adr = dl.get("adr") or {}
        con.print(
            f"downlinks: {dl.get('queued', 0)} queued, {dl.get('sent', 0)} sent, "
            f"{dl.get('acked', 0)} acknowledged, {dl.get('failed', 0)} failed, "
            f"{dl.get('duty_cycle_blocked', 0)} held by the duty cycle; "
            f"ADR: {adr.get('requested', 0)} asked, {adr.get('accepted', 0)} accepted, "
            f"{adr.get('refused', 0)} refused; ADRACKReq answered {dl.get('adr_ack_answered', 0)}"
        )
    if "devices" in st:
        con.print(f"devices: {st['devices']}")
    shared = st.get("shared_store")
    if isinstance(shared, dict):  # a roof of a shared network (docs/multiroof.md)
        con.print(shared_store_line(shared))
    from havel.gateway.power.cli import status_lines  # the UPS and the forwarder watchdog (docs/roof.md)

    for line in status_lines(st):
        con.print(line)


def shared_store_line(s: dict[str, Any]) -> str:
    """The status line of a roof's shared store (times are unix seconds in the status)."""

    def at(t: Any) -> str:
        if not isinstance(t, int | float):
            return "never"
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))

    state = "[green]reachable[/green]" if s.get("reachable") else "[red]UNREACHABLE[/red]"
    return (
        f"shared store {s.get('url')} (roof {s.get('roof')}): {state} since {at(s.get('since'))}, "
        f"counters last reconciled {at(s.get('last_reconcile'))}, {s.get('cached_devices')} devices cached"
    )
