"""The kit check's checklist: one item per part (its status and the one sentence that says what to do),
the small helpers the judges word their sentences with, and how the checklist prints on a terminal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console

OK, FIXED, FAIL, MANUAL = "ok", "fixed", "fail", "manual"
MARKS = {
    OK: "[green]✔[/green]",
    FIXED: "[green]✔[/green]",
    FAIL: "[red]✘[/red]",
    MANUAL: "[yellow]•[/yellow]",
}


@dataclass(frozen=True)
class Item:
    name: str
    status: str
    advice: str
    facts: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status != FAIL


def hex_byte(v: int) -> str:
    """An address or register as volunteers read it on a datasheet: 0x76."""
    return f"0x{v:02X}"


def address(v: Any) -> int:
    """An address from a kit or board file: a number, or a string such as "0x76"."""
    return int(v, 0) if isinstance(v, str) else int(v)


def print_checklist(items: list[Item], console: Console | None = None) -> None:
    console = console or Console()
    for it in items:
        console.print(f" {MARKS[it.status]} [bold]{it.name}[/bold]: {it.advice}", highlight=False)
    failed = sum(1 for it in items if it.status == FAIL)
    if failed:
        console.print(f"[red]{failed} problem(s) to fix before closing the enclosure.[/red]")
    else:
        console.print("[green]Everything checked out.[/green]")
