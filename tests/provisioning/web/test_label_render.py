"""The label the bench shows (and the printer gets) rendered by a real browser: every line of text stays
inside the 62 x 29 mm label, so no digit of the DevEUI is cut off."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import Browser

from havel.provisioning import label


@pytest.mark.timeout(120)
def test_label_text_fits_on_the_label(tmp_path: Path) -> None:
    names = ["havel-air-fe0c01", "havel-temperature-fe0c01", "x"]
    with Browser.start() as b:
        for name in names:
            svg = tmp_path / f"{name}.svg"
            svg.write_text(label.label_svg(name, 0x70B3D57ED0000000, 0xA4CF12FFFEFE0C01))
            b.goto(svg.as_uri())
            boxes = b.evaluate(
                "[...document.querySelectorAll('text')].map(t => { const r = t.getBBox(); "
                "return {text: t.textContent, left: r.x, right: r.x + r.width, bottom: r.y + r.height}; })"
            )
            assert len(boxes) == 4
            for box in boxes:
                assert box["left"] >= 0 and box["right"] <= 62 and box["bottom"] <= 29, (name, box)
