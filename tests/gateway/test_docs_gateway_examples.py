"""The shell examples of docs/gateway.md for backup, restore and the outbox run as written (with the paths
pointed at a test folder; `systemctl` lines stand for the daemon being stopped, as it is here)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from support.gateway_run import REPO, write_config

from havel.gateway import config, db
from havel.gateway.outbox import Outbox
from havel.gateway.outbox_sinks import pending_by_sink
from havel.gateway.registry import Registry

DOC = REPO / "docs" / "gateway.md"


def examples(needle: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S)
    (block,) = [b for b in blocks if needle in b]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def havel(line: str, cfg_path: Path, tmp: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    line = line.replace("/etc/havel/gateway.toml", str(cfg_path)).replace("/media/usb", str(tmp))
    args = shlex.split(line)
    assert args[0] == "havel"
    return subprocess.run(
        [sys.executable, "-m", "havel", *args[1:]], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_backup_and_restore_examples(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    conn = db.open_db(config.load(cfg_path).db_path)
    Registry(conn)
    Outbox(conn, sinks=["file"])
    conn.close()
    lines = examples("havel gateway backup")
    assert [ln.split()[0] for ln in lines] == ["havel", "systemctl", "havel", "systemctl"]
    for line in lines:
        if line.startswith("systemctl"):
            continue  # (no daemon runs here)
        r = havel(line, cfg_path, tmp_path, stdin="y\n")  # (restore asks)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "havel-2026-12-07.db").exists()
    assert list((tmp_path / "data").glob("havel.db.replaced-*"))


def test_outbox_examples(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    conn = db.open_db(config.load(cfg_path).db_path)
    old = Outbox(conn, sinks=["old-platform"])
    old.put({"id": "gw-event-1", "kind": "event", "received_at": "2026-12-07T05:00:00Z", "payload": {}})
    Outbox(conn, sinks=["file"])  # the config now has another sink: old-platform keeps its record
    conn.close()
    show, discard = examples("havel gateway outbox show")
    r = havel(show, cfg_path, tmp_path)
    assert r.returncode == 0 and "old-platform: 1 waiting (not configured)" in r.stdout, r.stdout + r.stderr
    r = havel(discard, cfg_path, tmp_path, stdin="y\n")
    assert (
        r.returncode == 0 and "Drop the 1 record(s)" in r.stdout and "discarded sink old-platform" in r.stdout
    )
    conn = db.open_db_readonly(config.load(cfg_path).db_path)
    assert pending_by_sink(conn) == {"file": 0}
    conn.close()


def _device_cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "havel", "device", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_the_import_file_examples_import_and_export_gives_them_back(tmp_path: Path) -> None:
    """docs/gateway.md, "The import file": its JSON and CSV examples import as they are, and what
    `havel device export --show-keys` writes imports again to the same devices."""
    text = DOC.read_text()
    section = text[text.index("- The import file") :]
    exported = []
    for kind in ("json", "csv"):
        block = re.search(rf"```{kind}\n(.*?)```", section, re.S)
        assert block is not None, kind
        path = tmp_path / f"nodes.{kind}"
        # (indented in its list item)
        path.write_text("\n".join(line.strip() for line in block.group(1).splitlines()) + "\n")
        r = _device_cli("import", str(path), "--data-dir", str(tmp_path / kind))
        assert r.returncode == 0 and "imported 2 device(s)" in r.stdout, r.stderr
        out = _device_cli("export", "--show-keys", "--data-dir", str(tmp_path / kind))
        assert out.returncode == 0, out.stderr
        exported.append(json.loads(out.stdout))
        again = tmp_path / f"exported-{kind}.json"
        again.write_text(out.stdout)
        r = _device_cli("import", str(again), "--data-dir", str(tmp_path / f"again-{kind}"))
        assert r.returncode == 0, r.stderr
    assert exported[0] == exported[1]
    assert {d["name"]: d["activation"] for d in exported[0]} == {"pegel-havel-1": "otaa", "kuehlung-1": "abp"}
