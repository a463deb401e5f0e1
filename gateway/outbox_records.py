"""What an outbox record is: the fields a producer gives, checked and turned into the row stored, the record
as fetched for a sink, and the statements on the outbox table that its modules share.

A row (:data:`Row`) is ``(id, kind, dev_eui, fcnt32, priority, received_at, payload_json, size)``; ``size``
is the stored JSON text plus a fixed per-row overhead (:data:`ROW_OVERHEAD`), what counts against the quota.
Every statement that inserts or deletes rows updates the totals row in the same transaction (one UPDATE per
statement, not a trigger per row), so a rolled-back transaction never skews them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from havel.errors import InputError
from havel.gateway.jsontext import encode_json

__all__ = ["KINDS", "PRIORITIES", "ROW_OVERHEAD", "OutboxRecord", "Row", "record_row", "stored_row"]

KINDS = ("up", "join", "down_result", "event")
PRIORITIES = ("alarm", "state", "background")
ROW_OVERHEAD = 96  # bytes counted per row besides the payload (ids, columns, index entries), roughly

Row = tuple[Any, ...]
# positions in a Row
ID, PRIORITY, RECEIVED_AT, SIZE = 0, 4, 5, 7

INSERT = (
    "INSERT OR IGNORE INTO outbox (id, kind, dev_eui, fcnt32, priority, received_at, payload, size, pending,"
    " seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SEQ_OF = "SELECT id, seq FROM outbox WHERE id IN (SELECT value FROM json_each(?))"
LAST_SEQ = "SELECT seq FROM outbox_totals WHERE one = 1"
ADD_TOTALS = "UPDATE outbox_totals SET rows = rows + ?, bytes = bytes + ? WHERE one = 1"
ADD_TOTALS_SEQ = "UPDATE outbox_totals SET rows = rows + ?, bytes = bytes + ?, seq = ? WHERE one = 1"
DELETE_DONE = "DELETE FROM outbox WHERE pending = 0 RETURNING size"
DELETE_SEQS = "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) RETURNING size"
DELETE_IDS = "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?)) RETURNING size"


def add_totals(conn: sqlite3.Connection, rows: int, size: int) -> None:
    """Add to the stored totals (inside the caller's transaction)."""
    if rows or size:
        conn.execute(ADD_TOTALS, (rows, size))


def delete_counted(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> int:
    """Run one of the ``DELETE_*`` statements and take the rows off the totals; returns how many went."""
    sizes = conn.execute(sql, args).fetchall()
    if sizes:
        add_totals(conn, -len(sizes), -sum(r[0] for r in sizes))
    return len(sizes)


@dataclass
class OutboxRecord:
    """One stored record as fetched for a sink (treat it as read-only; not frozen only because a frozen
    dataclass is measurably slower to build, and a backlog drain builds one per message).

    ``payload`` is the json-scheme message (with ``id``, without ``buffered``), parsed on first use from
    ``payload_json``, the stored text (the json format splices ``buffered`` into that text directly).
    """

    seq: int
    id: str
    kind: str
    dev_eui: str | None
    fcnt32: int | None
    priority: str
    received_at: str
    payload_json: str

    @cached_property
    def payload(self) -> dict[str, Any]:
        value = json.loads(self.payload_json)
        assert isinstance(value, dict)
        return value


def _dev_eui_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:016X}"
    if isinstance(value, str):
        return value.upper()
    raise InputError(f"outbox record dev_eui must be a hex string or an int, not {type(value).__name__}")


def record_row(r: dict[str, Any]) -> Row:
    """The row to store for record ``r`` (see :meth:`.outbox.Outbox.put`); InputError names what is wrong."""
    if not isinstance(r, dict):
        raise InputError(f"outbox record must be a dict, not {type(r).__name__}")
    rid = r.get("id")
    if not isinstance(rid, str) or not rid:
        raise InputError(
            "outbox record has no 'id'",
            hint="use <DevEUI>-<SessionEpoch>-<FCnt32> or <DevEUI>-join-<SessionEpoch> (docs/mqtt.md)",
        )
    kind = r.get("kind")
    if kind not in KINDS:
        raise InputError(f"outbox record {rid}: kind {kind!r} is not one of {', '.join(KINDS)}")
    priority = r.get("priority", "background")
    if priority not in PRIORITIES:
        raise InputError(f"outbox record {rid}: priority {priority!r} is not one of {', '.join(PRIORITIES)}")
    received_at = r.get("received_at")
    if not isinstance(received_at, str) or not received_at:
        raise InputError(f"outbox record {rid}: 'received_at' must be an RFC 3339 time string")
    fcnt = r.get("fcnt32")
    if fcnt is not None and (not isinstance(fcnt, int) or isinstance(fcnt, bool) or fcnt < 0):
        raise InputError(f"outbox record {rid}: 'fcnt32' must be a non-negative int")
    payload = r.get("payload")
    if not isinstance(payload, dict):
        raise InputError(f"outbox record {rid}: 'payload' must be a dict")
    text = r.get("payload_json")
    if text is not None:
        # the producer encoded the payload itself (the network server does, see _message_json): it
        # must be that payload's text, with its id first and without `buffered`
        if (
            not isinstance(text, str)
            or not text.startswith(f'{{"id":"{rid}"')
            or next(iter(payload), None) != "id"
            or "buffered" in payload
        ):
            raise InputError(f"outbox record {rid}: 'payload_json' is not the text of its payload")
    else:
        # the stored message carries its stable id first; `buffered` is decided at publish time. (A
        # dict keeps the position of its first key when the value is replaced: "id" stays first.)
        payload = {"id": rid, **payload}
        payload["id"] = rid
        payload.pop("buffered", None)
        try:
            # (the text of json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
            text = encode_json(payload)
        except (TypeError, ValueError) as exc:
            raise InputError(f"outbox record {rid}: payload is not JSON-serialisable: {exc}") from None
    return stored_row(rid, kind, _dev_eui_text(r.get("dev_eui")), fcnt, priority, received_at, text)


def stored_row(
    rid: str, kind: str, dev_eui: str | None, fcnt32: int | None, priority: str, received_at: str, text: str
) -> Row:
    """The row of a record whose fields are already what :func:`record_row` would make of them (``dev_eui``
    upper-case hex, ``text`` the payload's JSON with its id first and without ``buffered``): the size is
    counted, nothing is checked. For a producer that builds its records itself (the network server's
    message builder); anyone else goes through :func:`record_row`."""
    size = (len(text) if text.isascii() else len(text.encode())) + ROW_OVERHEAD
    return (rid, kind, dev_eui, fcnt32, priority, received_at, text, size)
