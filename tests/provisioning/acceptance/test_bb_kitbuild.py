"""Black-box: the check step of `havel kit build --kit air`, run without questions (`--yes`).

From provisioning/README.md: settings from HAVEL_PROVISIONING_CONFIG, the passphrase from
HAVEL_REGISTRY_PASSPHRASE, a bundle built and signed with `havel flash keygen` / `havel flash build`;
"`havel kit build` stops at a failed check and continues there when run again". The board is rewired
the way tools/vboard/README.md says: a new /_vboard/scenario.json on it and a soft reset.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from bbprov_kit import (
    Run,
    VBoard,
    air_wired,
    assert_only_red,
    on_board,
    run_havel,
    soft_reset,
)

Start = Callable[..., VBoard]


@pytest.fixture(scope="module")
def signed_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle folder, city.pub): the city's key and a signed air bundle, made by the real commands."""
    d = tmp_path_factory.mktemp("city")
    key = d / "city.pem"
    r = run_havel(["flash", "keygen", str(key)])
    assert r.rc == 0, str(r)
    r = run_havel(["flash", "build", "--kit", "air", "--out", str(d / "bundle"), "--sign-key", str(key)])
    assert r.rc == 0, str(r)
    return d / "bundle", d / "city.pub"


@pytest.fixture
def build(signed_bundle: tuple[Path, Path], tmp_path: Path) -> Callable[[str], Run]:
    bundle, pub = signed_bundle
    home = tmp_path / "volunteer"
    home.mkdir()
    settings = home / "provisioning.json"
    settings.write_text(
        json.dumps(
            {
                "registry": str(home / "registry.bin"),
                "state_dir": str(home / "state"),
                "label_dir": str(home / "labels"),
                "trusted_keys": [str(pub)],
            }
        )
    )
    env = {
        "HOME": str(home),
        "HAVEL_PROVISIONING_CONFIG": str(settings),
        "HAVEL_REGISTRY_PASSPHRASE": "volunteer night at the lab",
    }

    def run(port: str) -> Run:
        return run_havel(
            ["kit", "build", "--kit", "air", "--port", port, "--bundle", str(bundle), "--yes"], env
        )

    return run


def labels(tmp_path: Path) -> list[str]:
    folder = tmp_path / "volunteer" / "labels"
    return sorted(p.suffix for p in folder.iterdir()) if folder.exists() else []


def test_healthy_air_kit_builds_without_questions(
    vboard: Start, build: Callable[[str], Run], tmp_path: Path
) -> None:
    run = build(vboard(air_wired()).path)
    assert run.rc == 0, str(run)
    assert "Traceback" not in run.out + run.err
    assert [i.mark for i in run.items] == ["✔", "✔", "✔"], str(run)
    assert "Everything checked out." in run.out
    assert labels(tmp_path) == [".png", ".svg"]
    assert stat.S_IMODE((tmp_path / "volunteer" / "registry.bin").stat().st_mode) == 0o600


def test_build_stops_at_a_red_check_and_continues_there(
    vboard: Start, build: Callable[[str], Run], tmp_path: Path
) -> None:
    board = vboard(air_wired(bme={"chip": "bmp280"}))
    first = build(board.path)
    assert "replace it with a real BME280" in assert_only_red(first, "BME280")
    assert labels(tmp_path) == [], "a node with a failed check was registered and labelled"
    # the volunteer swaps in a real BME280: the board is rewired and soft-reset
    healthy = json.dumps(air_wired())
    on_board(board.path, f"open('/_vboard/scenario.json', 'w').write({healthy!r})\nprint(1)\n", tmp_path)
    soft_reset(board.path)
    second = build(board.path)
    assert second.rc == 0, str(second)
    assert all(i.mark == "✔" for i in second.items), str(second)
    assert re.search(r"\b0 copied", second.out), "the flash was done again"
    assert labels(tmp_path) == [".png", ".svg"]


def test_build_with_a_silent_sds011_ends_red_not_hung(
    vboard: Start, build: Callable[[str], Run], tmp_path: Path
) -> None:
    run = build(vboard(air_wired(no_sds=True)).path)
    assert "SDS011 sends nothing on RX, either way round" in assert_only_red(run, "SDS011")
    assert labels(tmp_path) == []
