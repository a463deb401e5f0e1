"""The file sink: JSON Lines to a file (appended, optionally fsync'ed) or to stdout."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from support.outbox_records import harness, uplink

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
