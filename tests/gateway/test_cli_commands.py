"""The ``havel gateway`` and ``havel device`` command trees, as the command table loads them: every
subcommand is there (also those added from other packages: setup, power) and answers --help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from havel.cli import cli

GATEWAY = {"backup", "check", "outbox", "power", "power-check", "restore", "run", "setup", "status"}
DEVICE = {"add", "export", "forget-nonces", "import", "list", "remove"}
OUTBOX = {"discard", "show"}


def commands(*group: str) -> set[str]:
    """The subcommands a group's --help lists."""
    result = CliRunner().invoke(cli, [*group, "--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    return {line.split()[0] for line in listed.splitlines() if line.startswith("  ") and line.split()}


def test_every_subcommand_is_in_its_group() -> None:
    assert commands("gateway") == GATEWAY
    assert commands("device") == DEVICE
    assert commands("gateway", "outbox") == OUTBOX


@pytest.mark.parametrize(
    "argv",
    [["gateway", name] for name in sorted(GATEWAY)]
    + [["device", name] for name in sorted(DEVICE)]
    + [["gateway", "outbox", name] for name in sorted(OUTBOX)],
)
def test_every_subcommand_answers_help(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, [*argv, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: cli {' '.join(argv)}")


def test_an_unknown_subcommand_is_a_usage_error() -> None:
    assert CliRunner().invoke(cli, ["gateway", "bogus"]).exit_code == 2
    assert CliRunner().invoke(cli, ["device", "bogus"]).exit_code == 2
