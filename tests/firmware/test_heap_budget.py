"""Heap the firmware takes on a board, per app and phase: a deterministic measurement (heap bytes
after a collection, not time) in the real MicroPython interpreter (wasm), from an empty
interpreter with every firmware module loaded as .mpy (compiled as the bundle is), along the boot
path of apps/board.py (bench/firmware_figures.py does the measuring; this test only holds the
figures to bounds).

The module bounds are the figures of this code plus about 1.5 KB: a change that makes an app load
more code fails here and has to say why it needs the memory (raise the bound in the same commit).
Every phase the bench measures is held to the 64 KB target (65 536 bytes) in every app: an
ordinary cycle, a cycle with a join attempt, a cycle whose downlink carries MAC commands, writing
the retained state before a deep sleep, and on a cooling node a valve-settings downlink.
The full table (objects, one cycle, the host stand-ins, what each phase allocates) is in the bench.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGET = 64 * 1024

# bytes of heap the firmware modules of each app take (the bench's "modules" column)
MODULES_BOUND = {"air": 58_000, "water": 57_300, "temperature": 54_200, "cooling": 59_900, "soil": 54_100}
# the phases (the bench's figures): an ordinary cycle ("board": modules + objects + cycle without
# the host stand-ins for C modules), a join attempt and a MAC-command downlink (a cycle's peak
# plus the one-job modules the phase holds at once), writing the retained state before a deep
# sleep and a valve-settings downlink (cooling) (the node at rest, the modules the call holds at
# once and what it allocates)
PHASES = ("board", "join_peak", "mac_peak", "sleep_peak", "settings_dl")
# the code loaded for one job that a phase may hold, and the most it takes at once (bytes)
ONE_JOB_BOUND = {"join": 2_000, "maccmds": 2_500}


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("firmware_figures", REPO / "bench" / "firmware_figures.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    assert shutil.which("node"), "Node.js is needed (tools/bootstrap.sh)"
    saved = list(sys.path)
    ff = _bench()
    sys.path[:] = saved  # the bench puts firmware/ on sys.path for its encoders
    root = tmp_path_factory.mktemp("heap") / "repo"
    ff.stage(root)
    return ff, root


@pytest.mark.parametrize("app", sorted(MODULES_BOUND))
def test_firmware_fits_64_kb_in_every_phase(staged: tuple[object, Path], app: str) -> None:
    ff, root = staged
    h = ff.heap(app, root)  # type: ignore[attr-defined]
    modules = h["m_modules"] - h["m_empty"]
    assert modules <= MODULES_BOUND[app], f"{app}: firmware modules take {modules} bytes of heap"
    f = ff.board_figures(h)  # type: ignore[attr-defined]
    over = {k: f[k] for k in PHASES if k in f and f[k] > TARGET}
    assert not over, f"{app}: more than {TARGET} bytes of heap in {over}"
    assert ("settings_dl" in f) == (app == "cooling")
    for k, bound in ONE_JOB_BOUND.items():
        assert f[k] <= bound, f"{app}: the one-job modules of {k} take {f[k]} bytes at once"
    # code loaded for one job is not resident: the join and session code, the MAC-command
    # handlers, the node's downlink code and common-downlink decoder, the start-up, boot and
    # deep-sleep code, config.py, the cooling node's settings code
    once = {
        "lw.join",
        "lw.session",
        "lw.maccmds",
        "apps.nodedown",
        "payload.commondown",
        "lw.startup",
        "apps.startup",
        "apps.boardboot",
        "apps.bootvalve",
        "config",
        "apps.coolingcfg",
        "apps.coolingset",
        "control.valvecfg",
        "control.valveset",
        "payload.coolingdown",
        "radio.sx1262boot",
        "lw.retain",
        "apps.retain",
    }
    assert not once & set(h["fw_modules"])
    assert h["late"] == []
    # a join holds the join code and the session code one after the other, never together
    assert [set(x) for x in h["join_sets"]] == [{"lw.join"}, {"lw.session"}]
    assert [set(x) for x in h["mac_sets"]] == [{"lw.maccmds"}]
    assert [set(x) for x in h["sleep_sets"]] == [{"apps.retain", "lw.retain"}]
    if app == "cooling":
        # the decoder is released before the settings code loads, the boot code stays unloaded
        held = [set(x) for x in h["dl_sets"]]
        assert {"payload.coolingdown"} in held
        assert all(x == {"payload.coolingdown"} for x in held if "payload.coolingdown" in x)
        assert not any({"apps.coolingcfg", "control.valvecfg", "apps.nodedown"} & x for x in held)
