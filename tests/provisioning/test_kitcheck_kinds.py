"""The kit of every node kind (``NodeKind.kit``, from the registry) passes the kit check on a virtual board
wired like the kit, and a kit with its first I2C sensor left out fails on exactly that sensor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from havel.codecs.payload import list_kinds
from havel.provisioning import checklist, kitcheck
from havel.provisioning.kits import load_kit
from havel.provisioning.transport import Board

pytestmark = pytest.mark.timeout(120)

KITS = [kind.kit for kind in list_kinds()]


def _check(vb: Any, kit_name: str, loaded: list[str] | None = None) -> list[checklist.Item]:
    """The kit check on the virtual board; ``loaded`` collects the board scripts it loaded."""
    kit = load_kit(kit_name)
    with Board(vb.path) as link:
        if loaded is not None:
            load = link.load

            def recording_load(script: str) -> None:
                loaded.append(script)
                load(script)

            link.load = recording_load  # type: ignore[method-assign]
        return kitcheck.run_check(link, kit, kit.board())


@pytest.mark.parametrize("kit_name", KITS)
def test_a_healthy_kit_of_every_kind_passes(kit_board: Callable[..., Any], kit_name: str) -> None:
    loaded: list[str] = []
    items = _check(kit_board(kit_name), kit_name, loaded)
    kit = load_kit(kit_name)
    # the SDS011's serial protocol is a board script of its own: in the board's RAM only for a kit with one
    has_sds011 = any(s["id"] == "sds011" for s in kit.sensors)
    assert set(loaded) == ({"kitcheck", "sds011"} if has_sds011 else {"kitcheck"}), loaded
    # parts no check can test (a float switch) are left to the volunteer, named as such
    assert all(i.status in (checklist.OK, checklist.MANUAL) for i in items), [
        (i.name, i.status) for i in items
    ]
    # one line per sensor at least (and the radio's)
    assert len(items) > len(kit.sensors), [i.name for i in items]


@pytest.mark.parametrize(
    "kit_name", [k for k in KITS if any(s["interface"] == "i2c" for s in load_kit(k).sensors)]
)
def test_a_missing_i2c_sensor_fails_by_its_address(kit_board: Callable[..., Any], kit_name: str) -> None:
    kit = load_kit(kit_name)
    sensor = next(s for s in kit.sensors if s["interface"] == "i2c")
    items = _check(kit_board(kit_name, {f"missing:{sensor['id']}"}), kit_name)
    failed = [i for i in items if i.status == checklist.FAIL]
    assert len(failed) == 1 and sensor["part"] in failed[0].name, [(i.name, i.status) for i in items]
    assert sensor["address"].lower() in failed[0].name.lower()
