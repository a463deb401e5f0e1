"""The wiring diagram of a kit as SVG, from the same data as the printed guide.

The guide (:mod:`havel.provisioning.guide`) and this diagram both read ``Kit.resolved_wiring``: one wire
per row, in the same order and numbering, so the picture and the table cannot disagree. Each wire is an
SVG group ``id="wire-N"`` (N as in the guide's table), so a page can highlight the wire a failed check
names (:func:`failing_wires`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from havel.provisioning.kits import Board, Kit

# The kit bags' wire colours; anything else is drawn grey (a resistor's legs, "-")
COLOURS = {
    "red": "#d01c1c",
    "black": "#111111",
    "white": "#f4f4f4",
    "green": "#1b8a2e",
    "blue": "#1f5fd1",
    "yellow": "#f2c200",
    "orange": "#f07d00",
    "brown": "#7b4a1e",
    "purple": "#7d3cb5",
    "grey": "#8a8a8a",
}
_POWER = ("5V", "3V3", "GND")
_STOPWORDS = {"pin", "red", "black", "yellow", "white", "green", "blue", "module", "output", "to"}


@dataclass(frozen=True)
class Wire:
    number: int  # 1-based, as in the guide's wiring table
    part: str  # the part the wire starts at, e.g. "SDS011"
    part_pin: str  # e.g. "pin 7 (TXD)"
    board_pin: str  # e.g. "GPIO48", "GND", or the whole destination when it is no board pin
    to: str  # the guide's "To" cell
    colour: str

    @property
    def signals(self) -> set[str]:
        """The signal names on the part's end (TXD, SDA, VDD, ...), for matching a check's advice."""
        words = re.findall(r"[A-Za-z][A-Za-z0-9+]*", self.part_pin)
        return {w for w in words if w.lower() not in _STOPWORDS and len(w) > 1}


def _common_prefix(texts: list[str]) -> str:
    split = [t.split() for t in texts]
    out: list[str] = []
    for words in zip(*split, strict=False):
        if all(w == words[0] for w in words):
            out.append(words[0])
        else:
            break
    while out and out[-1].lower() == "pin":
        out.pop()
    return " ".join(out)


def _board_pin(to: str) -> str:
    m = re.search(r"\bGPIO\d+\b|\b5V\b|\b3V3\b|\bGND\b", to)
    return m.group(0) if m else to


def wires(kit: Kit, board: Board | None = None) -> list[Wire]:
    """The kit's wires with their parts and board pins (the guide's wiring table, read for drawing)."""
    rows = kit.resolved_wiring(board or kit.board())
    groups: dict[str, list[str]] = {}
    for w in rows:
        groups.setdefault(str(w["from"]).split()[0], []).append(str(w["from"]))
    out = []
    for i, w in enumerate(rows, 1):
        src = str(w["from"])
        same = groups[src.split()[0]]
        part = _common_prefix(same) if len(same) > 1 else src
        part = part or src.split()[0]
        pin = src[len(part) :].strip()
        to = str(w["to"])
        out.append(Wire(i, part, pin, _board_pin(to), to, str(w.get("colour", ""))))
    return out


def failing_wires(kit: Kit, item_name: str, advice: str, board: Board | None = None) -> list[int]:
    """The numbers of the wires a failed check line points at.

    The wires of the part the line is about (its name starts with the part, e.g. "SDS011 on UART ...");
    among them, those whose signal (TXD, VDD, ...) or board pin (GPIO41, 3V3) the advice names, or all of
    the part's wires when it names none (e.g. "replace it"). What the advice says not to do, in
    "(not GND ...)", does not count.
    """
    ws = wires(kit, board)
    head = item_name.split()[0].lower() if item_name.split() else ""
    mine = [w for w in ws if head and (w.part.split()[0].lower() == head or head in w.part.lower().split())]
    if not mine:
        return []
    text = re.sub(r"\(not [^)]*\)", "", advice)

    def said(word: str) -> bool:
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text) is not None

    def named(w: Wire) -> bool:
        for s in w.signals:
            # "TXD" is also said as "TX"
            if said(s) or (len(s) == 3 and s.endswith("D") and said(s[:2])):
                return True
        return said(w.board_pin) if w.board_pin != w.to else False

    picked = [w.number for w in mine if named(w)]
    return picked or [w.number for w in mine]


def _stroke(colour: str) -> tuple[str, str | None]:
    """(main colour, second colour for a two-colour wire like "red/black")."""
    names = [c.strip().lower() for c in colour.split("/")]
    first = COLOURS.get(names[0], COLOURS["grey"])
    second = COLOURS.get(names[1]) if len(names) > 1 else None
    return first, second


def svg(kit: Kit, board: Board | None = None) -> str:
    """The diagram: the board with the pins used on the left, the parts on the right, one line a wire."""
    board = board or kit.board()
    ws = wires(kit, board)
    pins: list[str] = []
    for w in ws:
        if w.board_pin not in pins:
            pins.append(w.board_pin)
    parts: dict[str, list[Wire]] = {}
    for w in ws:
        parts.setdefault(w.part, []).append(w)

    row, top, gap = 34, 70, 26
    board_x, board_w = 20, 250
    part_x, part_w = 560, 300
    pin_y = {p: top + 20 + i * row for i, p in enumerate(pins)}
    board_h = max(len(pins) * row + 30, 120)
    y = top
    part_boxes: list[tuple[str, float, float]] = []
    wire_y: dict[int, float] = {}
    for name, pw in parts.items():
        h = 40 + len(pw) * row
        part_boxes.append((name, y, h))
        for j, w in enumerate(pw):
            wire_y[w.number] = y + 40 + j * row + 6
        y += h + gap
    height = max(top + board_h, y) + 20
    width = part_x + part_w + 20

    o: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="wiring-title wiring-desc" class="wiring" font-family="DejaVu Sans, sans-serif">',
        f'<title id="wiring-title">Wiring of the {escape(kit.name)} kit</title>',
        f'<desc id="wiring-desc">{escape(board.title)} on the left, the parts on the right; '
        f"{len(ws)} wires, numbered as in the wiring table.</desc>",
        f'<rect x="{board_x}" y="{top}" width="{board_w}" height="{board_h}" rx="10" fill="#1d3b5c"/>',
        f'<text x="{board_x + 12}" y="{top - 12}" font-size="17" font-weight="bold" fill="#111">'
        f"{escape(board.title)}</text>",
    ]
    for p, py in pin_y.items():
        label = p if len(p) <= 18 else p[:17] + "…"
        o.append(
            f'<circle cx="{board_x + board_w}" cy="{py}" r="6" fill="#e8c15a" stroke="#111"/>'
            f'<text x="{board_x + board_w - 14}" y="{py + 6}" font-size="16" fill="#fff" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    for name, by, bh in part_boxes:
        o.append(
            f'<rect x="{part_x}" y="{by}" width="{part_w}" height="{bh}" rx="8" fill="#f1f1f1" '
            f'stroke="#333" stroke-width="2"/>'
            f'<text x="{part_x + 14}" y="{by + 26}" font-size="17" font-weight="bold" fill="#111">'
            f"{escape(name)}</text>"
        )
    for w in ws:
        x1, y1 = board_x + board_w, pin_y[w.board_pin]
        x2, y2 = part_x, wire_y[w.number]
        c1, c2 = _stroke(w.colour)
        mid = (x1 + x2) / 2
        d = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        label = w.part_pin or w.part
        o.append(
            f'<g class="wire" id="wire-{w.number}" data-wire="{w.number}">'
            f"<title>Wire {w.number}: {escape(w.part)} {escape(w.part_pin)} to {escape(w.to)}"
            f" ({escape(w.colour or 'no colour')})</title>"
            f'<path class="halo" d="{d}" fill="none" stroke="transparent" stroke-width="16"/>'
            f'<path d="{d}" fill="none" stroke="#111" stroke-width="7"/>'
            f'<path d="{d}" fill="none" stroke="{c1}" stroke-width="4"/>'
            + (
                f'<path d="{d}" fill="none" stroke="{c2}" stroke-width="4" stroke-dasharray="10 10"/>'
                if c2
                else ""
            )
            + f'<circle cx="{x2}" cy="{y2}" r="6" fill="#e8c15a" stroke="#111"/>'
            f'<text x="{x2 + 14}" y="{y2 + 6}" font-size="15" fill="#111">'
            f"{w.number}. {escape(label if len(label) <= 28 else label[:27] + '…')}</text></g>"
        )
    o.append("</svg>")
    return "".join(o)


def table(kit: Kit, board: Board | None = None) -> list[dict[str, Any]]:
    """The wiring table rows (number, from, to, colour): the guide's rows, for the page."""
    return [
        {"number": i, "from": str(w["from"]), "to": str(w["to"]), "colour": str(w.get("colour", ""))}
        for i, w in enumerate(kit.resolved_wiring(board or kit.board()), 1)
    ]
