"""Every `havel ...` example in docs/roof.md runs (setup under a temporary --root), and the page lists
every board and says what the generated files are."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from havel.cli import cli
from havel.gateway.setup.boards import board_names, load_board

DOC = Path(__file__).resolve().parents[3] / "docs" / "roof.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _havel_lines() -> list[str]:
    return [ln for b in _blocks("sh") for ln in b.splitlines() if ln.startswith("havel ")]


@pytest.mark.parametrize("line", _havel_lines())
def test_example_runs(line: str, tmp_path: Path) -> None:
    args = shlex.split(line)[1:]
    if args[:2] == ["gateway", "setup"]:
        args += ["--root", str(tmp_path)]
        if "--gateway-eui" not in args:
            args += ["--gateway-eui", "B827EBFFFE6C1D2A"]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output


def test_there_are_examples() -> None:
    lines = _havel_lines()
    assert any("setup" in ln for ln in lines) and any("power" in ln for ln in lines)


def test_toml_examples_are_accepted(tmp_path: Path) -> None:
    """The config reads each section, and its component accepts every key shown."""
    from havel.gateway import config
    from havel.gateway.metrics import Metrics
    from havel.gateway.power.component import PowerSettings
    from havel.gateway.setup.watchdog import WatchdogComponent

    seen = set()
    for block in _blocks("toml"):
        section = tomllib.loads(block)
        raw = {"gateway": {"id": "doc", "data_dir": str(tmp_path)}, "sink": [{"type": "file", "path": "-"}]}
        cfg = config.from_dict({**raw, **section})
        if cfg.power is not None:
            seen.add("power")
            assert PowerSettings(cfg.power).ups.name == "roofups"
        if cfg.watchdog is not None:
            seen.add("watchdog")
            gw = SimpleNamespace(event_listeners=[])
            ctx: Any = SimpleNamespace(gateway=gw, metrics=Metrics())
            wd = WatchdogComponent(ctx, cfg.watchdog)
            assert wd.command == ["systemctl", "restart", "havel-pktfwd.service"]
    assert seen == {"power", "watchdog"}


def test_every_board_is_in_the_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in board_names():
        b = load_board(name)
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| `{name}`"))
        pins = [
            f"GPIO{g}" if g is not None else "-"
            for g in (b.reset_gpio, b.power_enable_gpio, b.sx1261_reset_gpio)
        ]
        assert row.split("|")[2].strip() == b.interface.upper()
        assert [c.strip() for c in row.split("|")[3:6]] == pins, name


README = DOC.parents[1] / "README.md"


def _readme_roof_lines() -> list[str]:
    """The commands of the README's "A new roof" block."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index("**A new roof**") :]
    return re.findall(r"```sh\n(.*?)```", block, re.S)[0].strip().splitlines()


def test_the_readme_roof_is_two_commands_and_the_second_runs(tmp_path: Path) -> None:
    install, setup = _readme_roof_lines()
    assert "pipx install 'havel[gateway]'" in install and "PIPX_BIN_DIR=/usr/local/bin" in install
    args = shlex.split(setup)
    assert args[:3] == ["sudo", "havel", "gateway"]
    board = args[args.index("--board") + 1]
    assert board in board_names()
    res = CliRunner().invoke(
        cli, [*args[2:], "--root", str(tmp_path), "--gateway-eui", "B827EBFFFE6C1D2A"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    # the unit runs the havel the first command installed
    units = list(tmp_path.rglob("havel-gateway.service"))
    assert units and "/usr/local/bin/havel" in units[0].read_text()
