"""Printable node labels: name, DevEUI and a QR code in the LoRa Alliance TR005 format.

TR005 (LoRaWAN device identification QR codes): ``LW:D0:<JoinEUI>:<DevEUI>:<ProfileID>`` with EUIs as 16
upper-case hex digits and the ProfileID as 8 hex digits (VendorID + VendorProfileID); network-server apps
scan it to add the device. Both labels (SVG, and PNG at 300 dpi) carry the QR code, the node name and the
DevEUI; the PNG's text is drawn with a small built-in bitmap font (``pngtext``), so Pillow is not needed.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import segno

from havel.errors import InputError
from havel.provisioning.identity import eui_hex
from havel.provisioning.pngtext import ADVANCE, Canvas

DEFAULT_PROFILE_ID = "00000000"  # no LoRa Alliance VendorID assigned to the city yet


def tr005_payload(join_eui: int, dev_eui: int, profile_id: str = DEFAULT_PROFILE_ID) -> str:
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", profile_id):
        raise InputError(f"ProfileID {profile_id!r} must be 8 hex digits (VendorID + VendorProfileID)")
    return f"LW:D0:{eui_hex(join_eui)}:{eui_hex(dev_eui)}:{profile_id.upper()}"


def _qr(payload: str) -> segno.QRCode:
    return segno.make(payload, error="m", micro=False)


def label_svg(name: str, join_eui: int, dev_eui: int, profile_id: str = DEFAULT_PROFILE_ID) -> str:
    """A 62 x 29 mm label (a common label-printer tape) with the QR code on the left, text on the right."""
    qr = _qr(tr005_payload(join_eui, dev_eui, profile_id))
    buf = io.BytesIO()
    qr.save(buf, kind="svg", scale=1, border=0, xmldecl=False, svgns=True, nl=False)
    inner = buf.getvalue().decode()
    size = qr.symbol_size(scale=1, border=0)[0]
    scale = 25.0 / size
    body = re.sub(r"^<svg[^>]*>|</svg>$", "", inner)
    deveui = eui_hex(dev_eui)
    grouped = " ".join(deveui[i : i + 4] for i in range(0, 16, 4))
    name_size = min(3.6, 31.0 / (0.62 * max(len(name), 1)))  # a monospace glyph is ~0.6 em wide
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="62mm" height="29mm" viewBox="0 0 62 29">'
        f'<rect width="62" height="29" fill="#fff"/>'
        f'<g transform="translate(2 2) scale({scale:.5f})">{body}</g>'
        f'<text x="29" y="8" font-family="DejaVu Sans Mono, monospace" font-size="{name_size:.2f}" '
        f'font-weight="bold">{escape(name)}</text>'
        f'<text x="29" y="14" font-family="DejaVu Sans Mono, monospace" font-size="2.6">DevEUI</text>'
        # 19 monospace glyphs of 0.6 em from x=29 must end before 62 mm: 2.8 mm ends at 61 (3.0 ran off)
        f'<text x="29" y="18" font-family="DejaVu Sans Mono, monospace" font-size="2.8">{grouped}</text>'
        f'<text x="29" y="25" font-family="DejaVu Sans, sans-serif" font-size="2.4">Havel · Potsdam</text>'
        f"</svg>\n"
    )


PNG_DPI = 300
PNG_W, PNG_H = 732, 342  # 62 x 29 mm at 300 dpi
QR_QUIET = 2  # modules of white around the code (scanners cope with 2 on a white label)


@dataclass(frozen=True)
class PngLayout:
    qr_x: int
    qr_y: int
    qr_scale: int
    text_x: int
    name_y: int
    name_scale: int
    eui_y: int
    eui_scale: int


def png_layout(qr_modules: int, name_chars: int = 16) -> PngLayout:
    """Where the QR code and the text lines go on the PNG label (tests read the label back with this);
    the name's font scale shrinks so that long names still fit."""
    scale = (PNG_H - 2 * 12) // (qr_modules + 2 * QR_QUIET)
    qr = (qr_modules + 2 * QR_QUIET) * scale
    top = (PNG_H - qr) // 2
    text_x = 12 + qr + 12
    room = PNG_W - text_x - 8
    name_scale = next((s for s in (4, 3, 2) if name_chars * ADVANCE * s <= room), 1)
    return PngLayout(
        qr_x=12 + QR_QUIET * scale,
        qr_y=top + QR_QUIET * scale,
        qr_scale=scale,
        text_x=text_x,
        name_y=60,
        name_scale=name_scale,
        eui_y=170,
        eui_scale=3,
    )


def grouped_eui(dev_eui: int) -> str:
    h = eui_hex(dev_eui)
    return " ".join(h[i : i + 4] for i in range(0, 16, 4))


def label_png(name: str, join_eui: int, dev_eui: int, profile_id: str = DEFAULT_PROFILE_ID) -> bytes:
    """The label as a 1-bit PNG at 300 dpi: QR code on the left, name and DevEUI on the right."""
    modules = [[bool(m) for m in row] for row in _qr(tr005_payload(join_eui, dev_eui, profile_id)).matrix]
    lay = png_layout(len(modules), len(name))
    c = Canvas(PNG_W, PNG_H)
    c.matrix(lay.qr_x, lay.qr_y, modules, lay.qr_scale)
    c.text(lay.text_x, lay.name_y, name, lay.name_scale)
    c.text(lay.text_x, lay.eui_y - 40, "DEVEUI", 2)
    c.text(lay.text_x, lay.eui_y, grouped_eui(dev_eui), lay.eui_scale)
    c.text(lay.text_x, PNG_H - 60, "HAVEL POTSDAM", 2)
    return c.png(dpi=PNG_DPI)


def write_labels(
    out_base: Path, name: str, join_eui: int, dev_eui: int, profile_id: str = DEFAULT_PROFILE_ID
) -> list[Path]:
    """Write ``<out_base>.svg`` and ``<out_base>.png``; returns both paths."""
    out_base.parent.mkdir(parents=True, exist_ok=True)
    svg = out_base.with_suffix(".svg")
    png = out_base.with_suffix(".png")
    svg.write_text(label_svg(name, join_eui, dev_eui, profile_id))
    png.write_bytes(label_png(name, join_eui, dev_eui, profile_id))
    return [svg, png]
