"""A real write failure under the outbox: the file-size limit of the process (RLIMIT_FSIZE) makes the
kernel refuse writes past it, as a full disk does. Run in a child process so pytest's own files are not
limited. Expected: StorageError with a hint, nothing committed is lost, the database opens cleanly after."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from havel.gateway import db
from havel.gateway.outbox import Outbox

CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from havel.errors import StorageError
    from havel.gateway import db
    from havel.gateway.outbox import Outbox

    path = sys.argv[1]
    conn = db.open_db(path)
    ob = Outbox(conn)

    def rec(i, blob=""):
        eui = "70B3D57ED0000001"
        return {"id": f"{eui}-{i}", "kind": "up", "dev_eui": eui, "fcnt32": i, "priority": "background",
                "received_at": "2026-11-26T09:00:00.000Z", "payload": {"fcnt": i, "blob": blob}}

    for k in range(0, 200, 50):
        ob.put_many([rec(i) for i in range(k, k + 50)])
    committed = ob.ids()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    import os
    limit = max(os.path.getsize(path), os.path.getsize(path + "-wal")) + 64 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    error = None
    i = 200
    try:
        while i < 5000:
            if ob.put(rec(i, "x" * 2000)):
                committed.append(f"70B3D57ED0000001-{i}")
            i += 1
    except StorageError as exc:
        error = {"message": str(exc), "hint": exc.hint}
    print(json.dumps({"committed": committed, "error": error, "failed_at": i}))
    """
)


@pytest.mark.timeout(60)
def test_write_failure_is_storage_error_and_committed_records_survive(tmp_path: Path) -> None:
    path = tmp_path / "havel.db"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=50, check=True
    )
    result = json.loads(out.stdout)
    assert result["error"] is not None, "the file-size limit was never hit"
    assert "database error while" in result["error"]["message"]
    assert result["error"]["hint"]  # says what to do
    assert 200 < result["failed_at"] < 5000
    conn = db.open_db(path)
    ob = Outbox(conn)
    assert ob.ids() == result["committed"]  # everything committed is there, nothing else
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
