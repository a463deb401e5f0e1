"""Labels (TR005 QR content, read back out of the PNG) and the generated assembly guides."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import segno

from havel.codecs.payload import KIND_NAMES, list_kinds
from havel.errors import InputError
from havel.provisioning import guide, label
from havel.provisioning.kits import list_kits, load_kit
from havel.provisioning.pngtext import FONT

JOIN, DEV = 0x70B3D57ED0000000, 0xA4CF12FFFE0C0100


def decode_png(png: bytes) -> list[list[int]]:
    """Decode a greyscale PNG (1 or 8 bits) into rows of pixels, 1 = dark (an independent reader)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, depth = 8, b"", 0, 1
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", png[pos + 8 + n : pos + 12 + n])[0]
        if kind == b"IHDR":
            width, _height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth in (1, 8) and ctype == 0
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = (width * depth + 7) // 8
    bpp = max(1, depth // 8)
    rows: list[list[int]] = []
    prev, i = bytearray(stride), 0
    while i < len(raw):
        f, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 0xFF
            elif f == 2:
                line[x] = (line[x] + b) & 0xFF
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if depth == 1:
            rows.append([1 - ((line[x // 8] >> (7 - x % 8)) & 1) for x in range(width)])
        else:
            rows.append([1 if line[x] < 128 else 0 for x in range(width)])
        prev, i = line, i + 1 + stride
    return rows


def test_tr005_payload() -> None:
    assert label.tr005_payload(JOIN, DEV) == "LW:D0:70B3D57ED0000000:A4CF12FFFE0C0100:00000000"
    assert label.tr005_payload(JOIN, DEV, "a1b2c3d4").endswith(":A1B2C3D4")
    with pytest.raises(InputError):
        label.tr005_payload(JOIN, DEV, "xyz")


def test_png_label_carries_the_tr005_qr_code_name_and_deveui(tmp_path: Path) -> None:
    paths = label.write_labels(tmp_path / "havel-air-0c0100", "havel-air-0c0100", JOIN, DEV)
    img = decode_png(paths[1].read_bytes())
    assert (len(img[0]), len(img)) == (label.PNG_W, label.PNG_H)  # 62 x 29 mm at 300 dpi
    want = [
        [1 if m else 0 for m in row] for row in segno.make(label.tr005_payload(JOIN, DEV), error="m").matrix
    ]
    lay = label.png_layout(len(want), len("havel-air-0c0100"))
    s = lay.qr_scale
    got = [
        [img[lay.qr_y + r * s + s // 2][lay.qr_x + c * s + s // 2] for c in range(len(want))]
        for r in range(len(want))
    ]
    assert got == want  # the QR code in the PNG is exactly the TR005 payload's
    other = segno.make(label.tr005_payload(JOIN, DEV + 1), error="m").matrix
    assert got != [[1 if m else 0 for m in row] for row in other]
    # The DevEUI line starts with "A4CF": compare its first glyph with the font, pixel block by block.
    glyph = FONT["A"]
    es = lay.eui_scale
    drawn = [
        "".join("#" if img[lay.eui_y + gy * es][lay.text_x + gx * es] else "." for gx in range(5))
        for gy in range(7)
    ]
    assert drawn == glyph
    name_band = img[lay.name_y : lay.name_y + 7 * lay.name_scale]
    assert sum(sum(row[lay.text_x :]) for row in name_band) > 200  # the name is there


def test_svg_label_has_name_deveui_and_qr(tmp_path: Path) -> None:
    svg = label.label_svg("havel-air-0c0100", JOIN, DEV)
    assert svg.startswith("<svg") and "havel-air-0c0100" in svg and "A4CF 12FF FE0C 0100" in svg
    assert 'class="qrline"' in svg or "<path" in svg
    import xml.etree.ElementTree as ET

    ET.fromstring(svg)  # well-formed


@pytest.mark.parametrize("kit_name", list_kits())
def test_guide_has_every_wire_every_part_and_the_board_pins(kit_name: str) -> None:
    kit = load_kit(kit_name)
    board = kit.board()
    text = guide.render(kit)
    for w in kit.resolved_wiring(board):
        assert f"| {w['from']} | {w['to']} | {w['colour']} |" in text
    for b in kit.bom:
        assert f"| {b['qty']} | {b['item']} |" in text
    assert "{" not in "".join(w["to"] for w in kit.resolved_wiring(board))  # every placeholder filled
    assert f"havel kit build --kit {kit_name}" in text
    for s in kit.resolved_sensors(board):
        for k in ("sda", "scl", "tx", "rx", "pin"):
            if k in s:
                assert f"GPIO{s[k]}" in text


def test_all_kits_load_against_their_boards() -> None:
    # every node kind declares its kit, and every kit builds a node kind the firmware and codecs know
    assert {kind.kit for kind in list_kinds()} <= set(list_kits())
    for name in list_kits():
        kit = load_kit(name)
        assert kit.app in KIND_NAMES and kit.codec in KIND_NAMES, name
        board = kit.board()
        assert board.radio is not None
        assert kit.bom and kit.wiring and kit.current_ma and kit.power.get("source")
        assert all(b["qty"] >= 1 and b.get("part_number") for b in kit.bom)


@pytest.mark.timeout(60)
def test_every_kit_config_passes_the_firmware_checker(tmp_path: Path) -> None:
    """The config.json that provisioning writes for each kit is accepted by firmware/config.py (run under
    CPython with the firmware's host shims, in its own process so its module names stay there)."""
    import json
    import subprocess
    import sys

    from havel.provisioning import identity
    from havel.resources import firmware_dir

    cases = {}
    for name in list_kits():
        kit = load_kit(name)
        board = kit.board()
        ident = identity.Identity(name="n", dev_eui=0xA4CF12FFFEFE0C01, join_eui=1, app_key=bytes(range(16)))
        cases[name] = {
            "config": identity.board_config(ident, kit.settings, app=kit.app, board=board.name),
            "board": board.raw,
        }
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(firmware_dir())!r}, {str(firmware_dir() / 'host')!r}]\n"
        "import config\n"
        f"cases = json.load(open({str(tmp_path / 'cases.json')!r}))\n"
        "out = {}\n"
        "for k, c in cases.items():\n"
        "    try:\n"
        "        cfg = config.check_config(c['config'], config.check_board(c['board']))\n"
        "        out[k] = cfg['app']\n"
        "    except Exception as e:\n"
        "        out[k] = 'ERROR ' + str(e)\n"
        "print(json.dumps(out))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, check=False
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {name: load_kit(name).app for name in list_kits()}
