"""Every hint and message the provisioning tools print names something that exists: an option of the
command that prints it, a ``havel`` command (with its options), or a key of the settings file."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import click
import pytest

from havel.cli import cli
from havel.provisioning.settings import Settings

from .conftest import REPO

PROV = REPO / "provisioning"
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
HAVEL_CMD = re.compile(r"\bhavel((?: [a-z][a-z0-9-]*)+)")
SETTING = re.compile(r"\bset (\w+) in the settings|settings' (\w+)")


def command(path: str) -> click.Command:
    cmd: click.Command = cli
    for word in path.split():
        assert isinstance(cmd, click.Group), path
        sub = cmd.get_command(click.Context(cmd), word)
        assert sub is not None, f"no command 'havel {path}'"
        cmd = sub
    return cmd


def options(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params for o in p.opts + p.secondary_opts if o.startswith("-")}


# Where a module's messages reach the volunteer: the commands whose runs can print them.
PORT_COMMANDS = ["board info", "flash", "kit check", "kit build", "kit serve"]
SURFACES: dict[str, list[str]] = {
    "kitbuild.py": ["kit build", "kit serve"],
    "bundle.py": ["flash", "kit build", "kit serve"],
    "signing.py": ["flash", "flash build", "flash keygen", "kit build", "kit serve"],
    "flash.py": ["flash", "kit build", "kit serve"],
    "micropython_install.py": ["kit build", "kit serve"],
    "ports.py": PORT_COMMANDS,
    "transport.py": PORT_COMMANDS,
    "kitcheck.py": ["kit check", "kit build", "kit serve"],
    "kitcheck_sensors.py": ["kit check", "kit build", "kit serve"],
    "kitcheck_board.py": ["kit check", "kit build", "kit serve"],
    "checklist.py": ["kit check", "kit build", "kit serve"],
}
EVERY = ["board list", "board info", "flash", "flash build", "flash keygen", "keys init", "keys show"]
EVERY += ["keys export", "kit list", "kit guide", "kit check", "kit build", "kit serve", "kit label"]


def cli_surfaces() -> dict[str, list[str]]:
    """cli_*.py: the function that implements each command -> that command."""
    out: dict[str, list[str]] = {}
    for path in EVERY:
        cmd = command(path)
        if cmd.callback is not None:
            out[cmd.callback.__name__] = [path]
    return out


def messages(path: Path) -> list[tuple[str, str]]:
    """(enclosing function, text) of every string in the module that is not a docstring and not a bare
    option token (``"--port"`` as an argument of another tool's command line, or a click declaration)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, func: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = node.name
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            found.append((func, str(text)))
            return
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and not re.fullmatch(r"-{1,2}[\w-]+", node.value)
        ):
            found.append((func, node.value))
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, "")
    return found


def references(path: Path) -> list[tuple[str, str, str]]:
    """(where, what, detail) for each option, command and setting the module's messages name."""
    refs: list[tuple[str, str, str]] = []
    by_func = cli_surfaces() if path.name.startswith("cli_") else {}
    for func, text in messages(path):
        where = f"{path.name}:{func}: {text!r}"
        rest = text
        for m in HAVEL_CMD.finditer(text):
            words = m.group(1).split()
            top = cli.get_command(click.Context(cli), words[0])
            if top is None:
                continue  # "Havel" in prose, not a command
            cmd_path = [words[0]]
            for w in words[1:]:
                sub = command(" ".join(cmd_path))
                if isinstance(sub, click.Group) and sub.get_command(click.Context(sub), w) is not None:
                    cmd_path.append(w)
                else:
                    break
            refs.append((where, "command", " ".join(cmd_path)))
            tail = re.split(r"['`),]", text[m.end() :], maxsplit=1)[0]
            for opt in OPTION.findall(tail):
                refs.append((where, f"option of havel {' '.join(cmd_path)}", opt))
            rest = rest.replace(m.group(0) + tail, "")
        for opt in OPTION.findall(rest):
            surfaces = by_func.get(func) if path.name.startswith("cli_") else SURFACES.get(path.name)
            if not surfaces:  # a module many commands use (kits, registry, ...): some command has it
                refs.append((where, "option of any provisioning command", opt))
            for surface in surfaces or []:
                refs.append((where, f"option of havel {surface}", opt))
        for m in SETTING.finditer(text):
            refs.append((where, "setting", m.group(1) or m.group(2)))
    return refs


MODULES = sorted(p for p in PROV.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("module", MODULES, ids=[p.name for p in MODULES])
def test_every_option_command_and_setting_named_in_messages_exists(module: Path) -> None:
    settings = {f.name for f in fields(Settings)}
    wrong = []
    for where, what, name in references(module):
        if what == "command":
            try:
                command(name)
            except AssertionError:
                wrong.append(f"{where}: no command havel {name}")
        elif what == "setting":
            if name not in settings:
                wrong.append(f"{where}: no setting {name}")
        elif what == "option of any provisioning command":
            if not any(name in options(command(c)) for c in EVERY):
                wrong.append(f"{where}: no provisioning command has {name}")
        else:
            cmd = command(what.removeprefix("option of havel "))
            if name not in options(cmd):
                wrong.append(f"{where}: {name} is not an option of havel {cmd.name} ({what})")
    assert wrong == []


def test_the_scan_finds_the_hints_it_checks() -> None:
    """The checker itself: it sees the hints that name options, commands and settings."""
    bundle_refs = references(PROV / "bundle.py")
    assert ("option of havel kit build", "--trust") in {(w, n) for _, w, n in bundle_refs}
    assert ("option of havel flash build", "--kit") in {(w, n) for _, w, n in bundle_refs}
    assert ("setting", "trusted_keys") in {(w, n) for _, w, n in bundle_refs}
    kit_refs = {(w, n) for _, w, n in references(PROV / "kitbuild.py")}
    assert {("option of havel kit build", "--bundle"), ("setting", "bundle_dir")} <= kit_refs
    assert ("command", "keys init") in {(w, n) for _, w, n in references(PROV / "registry.py")}
