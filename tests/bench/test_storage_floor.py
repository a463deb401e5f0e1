"""The storage-floor bench's own parts: its counters' parsing, the arithmetic docs/storage-wear.md quotes
(the doc's block must be what the code prints), and a smoke run of every strategy without a mount."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("storage_floor", REPO / "bench" / "storage_floor.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.path[:] = saved  # the bench puts bench/ on sys.path for its helpers
    return mod


def test_counters_are_read_from_the_kernels_formats(floor: ModuleType) -> None:
    cell = sys.modules["storage_cell"]
    stat = "1052 0 62466 277 1880 1327 417632 38110 0 1544 38387"
    assert cell.parse_disk_stat(stat) == 417632
    info = "1397 transactions (1380 requested), each up to 2048 blocks\naverage: \n  0ms waiting\n"
    assert cell.parse_jbd2_transactions(info) == 1397
    io = "rchar: 7411\nwchar: 9088\nsyscr: 14\nread_bytes: 0\nwrite_bytes: 12288\ncancelled_write_bytes: 0\n"
    assert cell.parse_write_bytes(io) == 12288
    with pytest.raises(ValueError, match="write_bytes"):
        cell.parse_write_bytes("rchar: 1\n")
    before, after = (100, 40, 3, 4096), (100 + 80, 40 + 48, 5, 4096 + 8 * 4096)
    got = cell.per_append(before, after, 8, mounted=True, own_journal=True)
    assert got == {"device": (80 + 48) * 512 / 8, "jbd2": 48 * 512 / 8, "commits": 0.25, "write_bytes": 4096}


def test_pages_a_contiguous_log_writes_per_fsynced_append(floor: ModuleType) -> None:
    # a sector-sized append never leaves its page; a 200-byte one crosses into the next page in 24 of
    # the 512 offsets (multiples of 8) it takes within a page: 1 + (200 - 8) / 4096 pages on average
    assert floor.pages_per_append(512) == 1.0
    assert floor.pages_per_append(4096) == 1.0
    assert floor.pages_per_append(200) == pytest.approx(1 + 192 / 4096)
    # an SQLite WAL frame of a 1 KiB page is 1,048 bytes; five of them (the gateway's commit) 5,240
    assert floor.wal_commit_bytes(5, 1024) == 5240
    assert floor.pages_per_append(5240) == pytest.approx(1 + (5240 - 8) / 4096)
    assert floor.pages_per_append(8192) == 2.0
    # the journal's timer commits 5 s after the append that dirtied the inode; the append after that
    # opens the next transaction: one commit per 3 appends 2 s apart (the bench measured 0.33)
    assert floor.timer_commits_per_append(2.0, 5.0) == pytest.approx(1 / 3)
    assert floor.timer_commits_per_append(2.0, 60.0) == pytest.approx(1 / 30)
    assert floor.timer_commits_per_append(30.0, 5.0) == 1.0
    assert floor.distinct_pages(1, 125) == pytest.approx(1.0)
    assert floor.distinct_pages(15, 125) == pytest.approx(125 * (1 - (124 / 125) ** 15))


def test_the_plans_arithmetic_adds_up(floor: ModuleType) -> None:
    now = floor.gateway_now()
    assert now["data"] == pytest.approx((1 + 5232 / 4096) * 4096)
    assert now["jbd2"] == pytest.approx(4096)
    stock = floor.gateway_plan(30, 5, raw_log=False)
    assert stock["uplinks"] == 15
    assert stock["jbd2"] == pytest.approx(4096)  # the log file's inode dirty at every uplink
    assert stock["total"] > floor.GOAL_BYTES
    long_commit = floor.gateway_plan(30, 60, raw_log=False)
    assert long_commit["jbd2"] == pytest.approx(12288 / 30)
    raw = floor.gateway_plan(30, 5, raw_log=True)
    assert raw["jbd2"] == pytest.approx(12288 / 15)  # only the WAL's inode, once a batch
    for plan in (long_commit, raw):
        parts = plan["log"] + plan["batch"] + plan["jbd2"] + plan["checkpoint"]
        assert plan["total"] == pytest.approx(parts)
        assert plan["total"] <= floor.GOAL_BYTES


def test_the_docs_arithmetic_is_what_the_bench_prints(floor: ModuleType) -> None:
    doc = (REPO / "docs" / "storage-wear.md").read_text()
    lines = floor.arithmetic()
    assert len(lines) >= 4
    for line in lines:
        assert line in doc, f"docs/storage-wear.md lacks the bench's line: {line!r}"


def test_every_strategy_runs_without_a_mount(
    floor: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert floor.main(["--quick", "--json", "--dir", str(tmp_path)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in results] == list(floor.STRATEGIES)
    by_name = {r["strategy"]: r for r in results}
    for name, r in by_name.items():
        if name.startswith("direct") and "error" in r:
            assert "Errno" in r["error"] or "Error" in r["error"]  # a file system without O_DIRECT (tmpfs)
            continue
        assert "error" not in r, r
        assert r["device"] is None and r["jbd2"] is None  # no mount, no device figures
        assert r["write_bytes"] >= 0
    assert list(tmp_path.iterdir()) == []  # the bench leaves nothing behind
    if os.statvfs(tmp_path).f_bsize == 4096 and by_name["prealloc-fdatasync"]["write_bytes"] > 0:
        # on a file system that counts it: an fsynced 200-byte write costs the kernel a whole page
        assert by_name["prealloc-fdatasync"]["write_bytes"] >= 4096
