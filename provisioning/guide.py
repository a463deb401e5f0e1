"""The Markdown assembly guide of a kit, generated from hw/kits and hw/boards.

Generated, never written by hand, so the guide cannot disagree with what ``havel kit check`` checks:
the same wiring table, sensor addresses and pins feed both.
"""

from __future__ import annotations

from havel.provisioning.kits import Board, Kit


def _cell(v: object) -> str:
    return str(v).replace("|", "\\|")


def _board_section(board: Board) -> list[str]:
    lines = ["## Board", ""]
    lines.append(f"{board.title} (`{board.name}`, {board.mcu}).")
    if board.radio:
        r = board.radio
        lines.append(
            f"LoRa radio {r.chip.upper()} on SPI{r.spi}: SCK {r.sck}, MOSI {r.mosi}, MISO {r.miso}, "
            f"NSS {r.nss}"
            + (f", RST {r.rst}" if r.rst is not None else "")
            + (f", BUSY {r.busy}" if r.busy is not None else "")
            + " (on the board, nothing to wire)."
        )
    lines.append("")
    return lines


def _sensor_line(s: dict[str, object]) -> str:
    part = s.get("part", s["id"])
    iface = str(s["interface"])
    if iface == "i2c":
        return f"| {_cell(part)} | I2C | address {s['address']}, SDA GPIO{s['sda']}, SCL GPIO{s['scl']} |"
    if iface == "uart":
        return (
            f"| {_cell(part)} | UART{s.get('uart', 1)} {s.get('baud', 9600)} baud "
            f"| board TX GPIO{s['tx']} -> sensor RX, sensor TX -> board RX GPIO{s['rx']}; "
            f"firmware uses {s.get('firmware_mode', 'query')} mode |"
        )
    if iface == "onewire":
        n = s.get("count", 1)
        return f"| {_cell(part)} | 1-Wire | GPIO{s['pin']}, {n} sensor(s), 4.7 kOhm pull-up to 3V3 |"
    pins = ", ".join(f"{k} GPIO{v}" for k, v in s.items() if k in ("pin", "trig", "echo"))
    return f"| {_cell(part)} | {iface} | {pins} {_cell(s.get('note', ''))} |"


def render(kit: Kit) -> str:
    """The whole guide as Markdown (pins from the kit's board file)."""
    board = kit.board()
    out = [
        f"# {kit.title}",
        "",
        f"Kit `{kit.name}`: firmware app `{kit.app}`, payload codec `{kit.codec}`. Generated from "
        f"`hw/kits/{kit.name}.json`; do not edit by hand.",
        "",
    ]
    out += _board_section(board)
    out += ["## Bill of materials", "", "| Qty | Item | Part number |", "| ---: | --- | --- |"]
    out += [f"| {b['qty']} | {_cell(b['item'])} | {_cell(b.get('part_number', ''))} |" for b in kit.bom]
    out += ["", "## Sensors", "", "| Part | Interface | Connection |", "| --- | --- | --- |"]
    out += [_sensor_line(s) for s in kit.resolved_sensors(board)]
    out += [
        "",
        "## Wiring",
        "",
        "Wire with the board unplugged. Colours are the ones in the kit bag.",
        "",
        "| # | From | To | Wire colour |",
        "| ---: | --- | --- | --- |",
    ]
    out += [
        f"| {i} | {_cell(w['from'])} | {_cell(w['to'])} | {_cell(w.get('colour', ''))} |"
        for i, w in enumerate(kit.resolved_wiring(board), 1)
    ]
    out += ["", "## Power", "", f"Power source: {kit.power.get('source', '?')}.", ""]
    if kit.current_ma:
        out += ["| State | Expected current |", "| --- | ---: |"]
        out += [f"| {_cell(k)} | {v:g} mA |" for k, v in kit.current_ma.items()]
        out.append("")
    out += [
        "## Flash, check and register",
        "",
        "Plug the board into the computer with a USB data cable, then run:",
        "",
        "```",
        f"havel kit build --kit {kit.name}",
        "```",
        "",
        "It installs MicroPython if needed, flashes the firmware, checks every part listed above, registers "
        "the node and prints its label. Fix anything marked with a red cross, then run the same command "
        "again: it continues where it stopped. Close the enclosure only when every line has a green tick.",
        "",
    ]
    return "\n".join(out)
