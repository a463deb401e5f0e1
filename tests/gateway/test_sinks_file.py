"""The file sink: JSON Lines to a file (appended, optionally fsync'ed) or to stdout."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from support.outbox_records import harness, uplink
from support.small_disk import SmallDisk

from havel.errors import StorageError
from havel.gateway.sinks import make_sink


def test_jsonl_file_in_order_and_appended(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "out.jsonl"

    async def run(first: int) -> None:
        cfg = {"type": "file", "name": "log", "path": str(out), "fsync": True, "prefix": "city"}
        async with harness(tmp_path, [cfg], buffered_after_s=1e9) as h:  # (fixture times are in the past)
            h.put([uplink(d, f) for f in range(first, first + 5) for d in (1, 2)])
            await h.forwarder.wait_idle(5)
            assert h.outbox.depth() == 0

    asyncio.run(run(1))
    asyncio.run(run(6))  # a second run appends
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 20
    assert lines[0]["topic"] == "city/gw1/devices/70B3D57ED0000001/up"
    assert [x["payload"]["fcnt"] for x in lines if x["payload"]["device"] == "node-2"] == list(range(1, 11))
    assert lines[0]["payload"]["buffered"] is False


def test_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def run() -> None:
        async with harness(
            tmp_path,
            [{"type": "file", "path": "-", "format": "fiware", "fiware": {"apikey": "k"}}],
            buffered_after_s=1e9,  # (the fixture's receive times are in the past)
        ) as h:
            h.put([uplink(1, 3)])
            await h.forwarder.wait_idle(5)

    asyncio.run(run())
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "topic": "/json/k/70B3D57ED0000001/attrs",
        "payload": {
            "water_level_cm": 103,
            "TimeInstant": "2026-11-26T09:00:03.000Z",
            "havelId": "70B3D57ED0000001-3",
            "fcnt": 3,
            "buffered": False,
        },
    }


def test_unwritable_path_is_reported(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    sink = make_sink({"type": "file", "path": str(tmp_path / "blocker" / "out.jsonl")})

    async def run() -> None:
        with pytest.raises(StorageError):
            await sink.start()

    asyncio.run(run())
    assert sink.last_error and "cannot open" in sink.last_error


def test_a_sink_that_cannot_start_is_down(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")

    async def run() -> None:
        cfg = {"type": "file", "name": "log", "path": str(tmp_path / "blocker" / "x.jsonl")}
        async with harness(tmp_path, [cfg]) as h:
            h.put([uplink(1, 1)])
            st = await h.forwarder.wait_state("log", "down", 5)
            assert "cannot open" in (st.last_error or "")
            assert h.outbox.depth() == 1  # kept for when the path is fixed

    asyncio.run(run())


def test_full_disk_leaves_no_half_record_and_delivers_later(tmp_path: Path) -> None:
    """On a full file system a record's write fails: the file is cut back (no half line for a reader), the
    record stays in the outbox and is written once when space returns."""
    disk = SmallDisk(tmp_path / "small")
    try:
        if not disk.mounted:
            pytest.skip("mount not allowed here (the daemon's full-disk test covers this case otherwise)")
        out = tmp_path / "small" / "out.jsonl"

        async def run() -> None:
            cfg = {"type": "file", "name": "log", "path": str(out)}
            async with harness(tmp_path, [cfg]) as h:
                h.put([uplink(1, 1)])
                await h.forwarder.wait_idle(5)
                disk.fill()
                # (each larger than a memory page: the last page of the file cannot take one)
                h.put([uplink(1, f, data={"blob": "x" * 6000}) for f in (2, 3, 4)])
                async with asyncio.timeout(20):
                    while h.forwarder.status("log").refused < 3:
                        await asyncio.sleep(0.02)
                assert h.outbox.depth() == 3
                assert out.read_bytes().endswith(b"\n") and len(out.read_text().splitlines()) == 1
                disk.free()
                await h.forwarder.wait_idle(10)

        asyncio.run(run())
        lines = [json.loads(x) for x in out.read_text().splitlines()]  # every line whole
        assert [x["payload"]["fcnt"] for x in lines] == [1, 2, 3, 4]
    finally:
        disk.close()
