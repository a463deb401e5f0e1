"""Move a roof's SQLite registry into the shared store, so that the roof can join others: every device with
its session as it is (DevAddr, keys, both frame counters and the session epoch, so message ids continue
where they were), every used DevNonce, and the JoinNonce counter (never lower than the store's).

Usage: ``python -m havel.gateway.network.shared.migrate --db /var/lib/havel/havel.db --store URL
[--password-file FILE] [--ca-file FILE]`` (with the roof's daemon stopped)."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from havel.errors import HavelError
from havel.gateway import db
from havel.gateway.network.shared.connection import StoreSettings, connect
from havel.gateway.network.shared.state import SharedState
from havel.gateway.registry import Registry

_JOIN_NONCE_MAX = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


def import_registry(conn: sqlite3.Connection, shared: SharedState) -> tuple[int, int]:
    """Copy the registry on ``conn`` into the store; returns (devices, DevNonces)."""
    devices = Registry(conn).devices()
    for dev in devices:
        shared.put_device(dev)
    nonces = 0
    pipe = shared.r.pipeline(transaction=False)
    for dev_eui, dev_nonce in conn.execute("SELECT dev_eui, dev_nonce FROM dev_nonces"):
        pipe.sadd(f"{shared.p}nonces:{int(dev_eui, 16):016X}", str(int(dev_nonce)))
        nonces += 1
    pipe.execute()
    row = conn.execute("SELECT value FROM meta WHERE key = 'join_nonce'").fetchone()
    if row is not None:
        shared.r.register_script(_JOIN_NONCE_MAX)(keys=[f"{shared.p}join_nonce"], args=[int(row[0])])
    return len(devices), nonces


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Move a roof's device registry into the shared Redis store.")
    ap.add_argument("--db", required=True, help="the roof's database (havel.db in its data directory)")
    ap.add_argument("--store", required=True, help="redis:// or rediss:// URL (no password in it)")
    ap.add_argument("--password-file", help="the store's password, in a file only its owner may read")
    ap.add_argument("--ca-file", help="the CA of the store's TLS certificate (rediss://)")
    args = ap.parse_args(argv)
    try:
        shared = SharedState(connect(StoreSettings(args.store, args.password_file, args.ca_file)))
        conn = db.open_db_readonly(args.db)
        try:
            n, nonces = import_registry(conn, shared)
        finally:
            conn.close()
    except HavelError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    print(f"{n} devices and {nonces} used DevNonces moved into the shared store")
    return 0


if __name__ == "__main__":
    sys.exit(main())
