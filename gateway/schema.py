"""Every table of the gateway database, and the ladder of migrations that brings any earlier database to them.

The database records its schema version in SQLite's ``PRAGMA user_version``. :func:`migrate` runs the steps
from that version up to :data:`VERSION`, all in one transaction together with the new version number, so a
crash leaves either the old database or the migrated one. Opening a current database costs one PRAGMA read.

Version 0 is every database made before the version was recorded: those were built table by table by the
components that use them, with three in-place fixes for even older files (the ``session_epoch`` column, the
downlink queue keyed per device, the ``nb_trans`` column, and per-row outbox triggers that went). Step 1
adopts all of them: it creates the tables that are missing and makes the same fixes where they are needed.
Step 2 numbers downlink commands; step 3 gives the outbox a leaner layout (fewer pages written per record).
A later change of the schema adds a step at the end of :data:`STEPS`; steps are never edited once released
(step 1 creates the tables as version 1 had them, :data:`_TABLES_V1`, and later steps change them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from havel.errors import StorageError

# the identity of the database (see db.py: a database replaced by another one is refused)
DB_IDENTITY = (
    "CREATE TABLE IF NOT EXISTS db_identity (one INTEGER PRIMARY KEY CHECK (one = 1), db_id TEXT NOT NULL)"
)

# ---------------------------------------------------------------------------------- device registry
DEVICES = """
CREATE TABLE IF NOT EXISTS devices (
    dev_eui       TEXT PRIMARY KEY,          -- 16 upper-case hex digits (u64 does not fit SQLite's int)
    name          TEXT NOT NULL UNIQUE,
    join_eui      TEXT,
    codec         TEXT NOT NULL,
    activation    TEXT NOT NULL CHECK (activation IN ('otaa', 'abp')),
    app_key       BLOB,
    dev_addr      INTEGER,                   -- NULL until an OTAA device joined
    nwk_s_key     BLOB,
    app_s_key     BLOB,
    fcnt_up       INTEGER,                   -- last accepted 32-bit uplink counter, NULL: none yet
    fcnt_down     INTEGER NOT NULL DEFAULT 0,-- next downlink counter to use
    session_epoch INTEGER NOT NULL DEFAULT 0,-- joins accepted for this device (0 for ABP): in message ids
    rx1_delay     INTEGER NOT NULL DEFAULT 1,
    rx1_dr_offset INTEGER NOT NULL DEFAULT 0,
    rx2_dr        INTEGER NOT NULL DEFAULT 0,
    rx2_freq_hz   INTEGER NOT NULL DEFAULT 869525000,
    battery       INTEGER,                   -- last DevStatusAns battery (0 external, 1..254, 255 unknown)
    battery_at    REAL,                      -- unix time of that answer
    last_seen     REAL,
    created_at    REAL NOT NULL
)"""
REGISTRY = (
    DEVICES,
    "CREATE INDEX IF NOT EXISTS devices_dev_addr ON devices(dev_addr)",
    """CREATE TABLE IF NOT EXISTS dev_nonces (
    dev_eui   TEXT NOT NULL,
    dev_nonce INTEGER NOT NULL,
    used_at   REAL NOT NULL,
    PRIMARY KEY (dev_eui, dev_nonce)
) WITHOUT ROWID""",
    # the session epoch of removed devices: one added again continues above it, so its new readings never
    # get the message ids of old ones that may still wait in the outbox or sit in the platform's store
    """CREATE TABLE IF NOT EXISTS retired_epochs (
    dev_eui TEXT PRIMARY KEY,
    epoch   INTEGER NOT NULL
) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta VALUES ('registry_version', 0)",
    "INSERT OR IGNORE INTO meta VALUES ('join_nonce', 0)",
)

# ---------------------------------------------------------------------------------- downlinks and ADR
DOWNLINKS_TABLE = """
CREATE TABLE IF NOT EXISTS downlinks (
    id         TEXT NOT NULL,                -- the platform's command id, unique per device
    dev_eui    TEXT NOT NULL,
    fport      INTEGER NOT NULL,
    payload    BLOB NOT NULL,
    confirmed  INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    awaiting   INTEGER NOT NULL DEFAULT 0,   -- a confirmed downlink sent, waiting for the device's ACK
    fcnt_down  INTEGER,
    request    TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (dev_eui, id)
)"""
# the commands of removed devices, until the daemon publishes their "failed" result (docs/mqtt.md)
DOWNLINKS_REMOVED = """
CREATE TABLE IF NOT EXISTS downlinks_removed (
    dev_eui    TEXT NOT NULL,
    id         TEXT NOT NULL,
    seq        INTEGER,
    device     TEXT,                         -- the removed device's name
    request    TEXT NOT NULL,
    fcnt_down  INTEGER
)"""
DOWNLINKS = (
    DOWNLINKS_TABLE,
    "CREATE INDEX IF NOT EXISTS downlinks_dev ON downlinks(dev_eui, created_at)",
    """CREATE TABLE IF NOT EXISTS adr_power (
    dev_eui  TEXT PRIMARY KEY,
    epoch    INTEGER NOT NULL,             -- the session it was acknowledged in (a new one starts at 0)
    tx_power INTEGER NOT NULL,             -- the TXPower index the device last acknowledged (LinkADRAns)
    nb_trans INTEGER NOT NULL DEFAULT 1    -- and the NbTrans
)""",
)

# ---------------------------------------------------------------------------------- outbox
OUTBOX_TABLE = """CREATE TABLE IF NOT EXISTS outbox (
    seq         INTEGER PRIMARY KEY,                -- insertion order = per-device FCnt order (outbox_totals)
    id          TEXT NOT NULL UNIQUE,               -- <DevEUI>-<SessionEpoch>-<FCnt32> | ... (docs/mqtt.md)
    kind        TEXT NOT NULL,                      -- up | join | down_result | event
    dev_eui     TEXT,                               -- 16 upper-case hex digits, or NULL for gateway events
    fcnt32      INTEGER,
    priority    TEXT NOT NULL,                      -- alarm | state | background
    received_at TEXT NOT NULL,                      -- RFC 3339 UTC, the original receive time
    payload     TEXT NOT NULL,                      -- the json-scheme message, JSON text
    size        INTEGER NOT NULL,                   -- bytes counted against the quota
    pending     INTEGER NOT NULL                    -- bit per sink still to acknowledge
)"""
# Only alarm and state records are indexed by priority (the relay and the quota policy pick them out of a
# backlog); routine readings, nearly every record, are found in seq order, and storing or deleting one
# writes no index page for it.
OUTBOX_URGENT = (
    "CREATE INDEX IF NOT EXISTS outbox_urgent ON outbox(priority, seq) WHERE priority != 'background'"
)
OUTBOX_DONE = "CREATE INDEX IF NOT EXISTS outbox_done ON outbox(seq) WHERE pending = 0"
OUTBOX_SINKS = """CREATE TABLE IF NOT EXISTS outbox_sinks (
    name TEXT PRIMARY KEY,
    bit  INTEGER NOT NULL UNIQUE
)"""
OUTBOX_DROPPED = """CREATE TABLE IF NOT EXISTS outbox_dropped (
    priority TEXT PRIMARY KEY,
    count    INTEGER NOT NULL
)"""
# the rows and bytes stored, and the highest seq ever given out: one row, updated with each statement that
# adds or deletes records (one page for all three)
OUTBOX_TOTALS = """CREATE TABLE IF NOT EXISTS outbox_totals (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    rows    INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    seq     INTEGER NOT NULL DEFAULT 0
)"""
OUTBOX = (
    OUTBOX_TABLE,
    OUTBOX_URGENT,
    OUTBOX_DONE,
    OUTBOX_SINKS,
    OUTBOX_TOTALS,
    "INSERT OR IGNORE INTO outbox_totals (one, rows, bytes, seq) VALUES (1, 0, 0, 0)",
    OUTBOX_DROPPED,
)
# The outbox as versions 1 and 2 had it (step 1 makes it; step 3 changes it)
_OUTBOX_V1 = (
    """CREATE TABLE IF NOT EXISTS outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    dev_eui     TEXT,
    fcnt32      INTEGER,
    priority    TEXT NOT NULL,
    received_at TEXT NOT NULL,
    payload     TEXT NOT NULL,
    size        INTEGER NOT NULL,
    pending     INTEGER NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS outbox_priority ON outbox(priority, seq)",
    OUTBOX_DONE,
    OUTBOX_SINKS,
    """CREATE TABLE IF NOT EXISTS outbox_totals (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    rows    INTEGER NOT NULL,
    bytes   INTEGER NOT NULL
)""",
    "INSERT OR IGNORE INTO outbox_totals (one, rows, bytes) VALUES (1, 0, 0)",
    OUTBOX_DROPPED,
)

# ---------------------------------------------------------------------------------- intake journal
JOURNAL = (
    """CREATE TABLE IF NOT EXISTS intake (
    seq         INTEGER PRIMARY KEY,
    gateway_eui TEXT NOT NULL,
    data        BLOB NOT NULL,   -- the PHYPayload
    tmst        INTEGER NOT NULL,
    freq_hz     INTEGER NOT NULL,
    datr        TEXT NOT NULL,
    chan        INTEGER NOT NULL,
    rssi        REAL NOT NULL,
    lsnr        REAL,
    rx_time     TEXT,            -- the forwarder's time (RFC 3339) and GPS ms, when it sent them
    tmms        INTEGER,
    received_at REAL NOT NULL,   -- unix time this machine received it
    time_source TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS intake_datagrams (
    seq         INTEGER PRIMARY KEY,
    gateway_eui TEXT NOT NULL,
    received_at REAL NOT NULL,   -- unix time this machine received it
    wanted      INTEGER NOT NULL, -- bit i set: rxpk i of the datagram waits to be stored
    datagram    BLOB NOT NULL    -- the PUSH_DATA as it came
)""",
)

TABLES = (DB_IDENTITY, *REGISTRY, *DOWNLINKS, *OUTBOX, *JOURNAL)
# what step 1 creates (the tables of version 1)
_TABLES_V1 = (DB_IDENTITY, *REGISTRY, *DOWNLINKS, *_OUTBOX_V1, *JOURNAL)


# ---------------------------------------------------------------------------------- the ladder
def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _adopt_unversioned(conn: sqlite3.Connection) -> None:
    """0 -> 1: create what is missing and repair the shapes older databases may have."""
    # the downlink queue keyed by the command id alone let one device's command replace another's of the
    # same id: rebuild it keyed by (dev_eui, id), rows kept (an id queued for two devices was one row then)
    pk = [r[1] for r in sorted(conn.execute("PRAGMA table_info(downlinks)"), key=lambda r: r[5]) if r[5]]
    if pk == ["id"]:
        conn.execute("ALTER TABLE downlinks RENAME TO downlinks_by_id")
        conn.execute("DROP INDEX IF EXISTS downlinks_dev")
        conn.execute(DOWNLINKS_TABLE)
        conn.execute(
            "INSERT INTO downlinks (id, dev_eui, fport, payload, confirmed, expires_at, attempts, awaiting, "
            "fcnt_down, request, created_at) SELECT id, dev_eui, fport, payload, confirmed, expires_at, "
            "attempts, awaiting, fcnt_down, request, created_at FROM downlinks_by_id"
        )
        conn.execute("DROP TABLE downlinks_by_id")
    for statement in _TABLES_V1:
        conn.execute(statement)
    if "session_epoch" not in _columns(conn, "devices"):
        # ids were <DevEUI>-<FCnt32> then: the form <DevEUI>-<epoch>-<FCnt32> never collides with them, so
        # starting every device at 0 is safe
        conn.execute("ALTER TABLE devices ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0")
    if "nb_trans" not in _columns(conn, "adr_power"):
        conn.execute("ALTER TABLE adr_power ADD COLUMN nb_trans INTEGER NOT NULL DEFAULT 1")
    # per-row triggers kept the outbox totals once (about 8 us per record put and acknowledged): they go,
    # and the totals are counted once from the rows
    triggers = [
        str(name)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        if name in ("outbox_totals_ins", "outbox_totals_del")
    ]
    for name in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    if triggers:
        conn.execute(
            "UPDATE outbox_totals SET rows = (SELECT count(*) FROM outbox), "
            "bytes = (SELECT coalesce(sum(size), 0) FROM outbox) WHERE one = 1"
        )


def _command_numbers(conn: sqlite3.Connection) -> None:
    """1 -> 2: every command the gateway takes gets a number (``downlinks.seq``, counted in ``meta``
    ``downlink_seq``) that makes its result ids unique, also when a command id is used again; commands
    already queued are numbered in queue order. The commands of removed devices wait in
    ``downlinks_removed`` for their result."""
    if "seq" not in _columns(conn, "downlinks"):
        conn.execute("ALTER TABLE downlinks ADD COLUMN seq INTEGER")
    conn.execute("UPDATE downlinks SET seq = rowid WHERE seq IS NULL")
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) SELECT 'downlink_seq', coalesce(max(seq), 0) FROM downlinks"
    )
    conn.execute(DOWNLINKS_REMOVED)


def _lean_outbox(conn: sqlite3.Connection) -> None:
    """2 -> 3: fewer pages written per stored record. The outbox loses AUTOINCREMENT (its counter was a page
    of ``sqlite_sequence`` written with every insert): the highest seq given out moves into the totals row,
    which each insert writes anyway, so seqs still never come back. The priority index keeps only alarm and
    state records (``outbox_urgent``). Rows, seqs and totals are kept as they were."""
    if "seq" not in _columns(conn, "outbox_totals"):
        conn.execute("ALTER TABLE outbox_totals ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
    last = conn.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0), "
        "coalesce((SELECT max(seq) FROM outbox), 0))"
    ).fetchone()[0]
    conn.execute("UPDATE outbox_totals SET seq = max(seq, ?) WHERE one = 1", (int(last),))
    conn.execute("DROP INDEX IF EXISTS outbox_priority")
    conn.execute("DROP INDEX IF EXISTS outbox_done")
    conn.execute("ALTER TABLE outbox RENAME TO outbox_v2")
    conn.execute(OUTBOX_TABLE)
    conn.execute("INSERT INTO outbox SELECT * FROM outbox_v2 ORDER BY seq")
    conn.execute("DROP TABLE outbox_v2")  # (its sqlite_sequence row goes with it)
    conn.execute(OUTBOX_URGENT)
    conn.execute(OUTBOX_DONE)


# STEPS[i] takes a database from version i to i + 1
STEPS: tuple[Callable[[sqlite3.Connection], None], ...] = (_adopt_unversioned, _command_numbers, _lean_outbox)
VERSION = len(STEPS)


def version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0: made before versions were recorded, or new)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database on ``conn`` to :data:`VERSION`; returns how many steps ran (0 when it is current).

    All steps and the new version are one transaction (a savepoint when the caller has one open). A
    database from a newer release is refused rather than guessed at."""
    from havel.gateway import db  # (db opens databases through this module)

    try:
        if version(conn) == VERSION:
            return 0
        with db.unit_of_work(conn):
            start = version(conn)  # again, under the write lock: another process may have migrated it
            if start > VERSION:
                raise StorageError(
                    f"the database has schema version {start}, newer than this Havel knows ({VERSION})",
                    hint="run the Havel release that wrote it, or restore a backup made by this one",
                )
            for step in STEPS[start:]:
                step(conn)
            if start != VERSION:
                conn.execute(f"PRAGMA user_version = {VERSION}")
            return VERSION - start
    except sqlite3.Error as exc:
        raise db.storage_error(exc, "bringing the database schema up to date") from None
