"""docs/payloads.md's byte-layout tables are printed from the codecs' declarations (codecs/payload/layout.py):
the document fails this test as soon as it differs from what the printer gives for the current schemas."""

from __future__ import annotations

from pathlib import Path

import construct as cs
import pytest

from havel.codecs.payload import KIND_NAMES, NodeCodec, Port, get_codec
from havel.codecs.payload.base import Bool, Reading, described, header
from havel.codecs.payload.layout import Unsupported, marked, render, table

DOC = Path(__file__).resolve().parents[3] / "docs" / "payloads.md"


def test_the_document_tables_are_what_the_declarations_print() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "run: python -m havel.codecs.payload.layout --write docs/payloads.md"


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_fixed_readings_layout_is_a_generated_table(kind: str) -> None:
    """A node kind whose readings have a fixed layout documents them with the printed table, never by hand."""
    codec = get_codec(kind)
    assert isinstance(codec, NodeCodec)
    try:
        table(codec.port(1, "up"))
    except Unsupported:
        pytest.skip(f"{kind}: a layout the printer does not lay out (documented by hand)")
    assert (kind, 1, "up") in marked(DOC.read_text(encoding="utf-8"))


def test_common_ports_are_generated_once_for_every_kind() -> None:
    marks = marked(DOC.read_text(encoding="utf-8"))
    assert {("every", 2, "up"), ("every", 10, "down"), ("every", 12, "down")} <= set(marks)


def test_a_changed_declaration_changes_the_printed_table() -> None:
    """Offsets, bits, types, steps, ranges and absent values come from the Struct itself."""
    port = Port(
        1,
        "up",
        "readings",
        "",
        cs.Struct(
            header(described("wet", Bool(cs.Flag), "too wet"), cs.Padding(3)),
            described(
                "depth", Reading(cs.Int16sb, "0.5", lo=-10, hi=10.5, sentinel=-0x8000, unit="cm"), "below"
            ),
            "count" / Reading(cs.Int8ub, lo=0, hi=200),
            "raw" / cs.Array(2, Reading(cs.Int32ub, lo=0, hi=9, sentinel=0xFFFFFFFF)),
            cs.Terminated,
        ),
        {},
        ("wet", "depth", "count", "raw"),
    )
    assert table(port).splitlines()[2:] == [
        "| 0 | b7-4 | version | u4 | | 1 | |",
        "| 0 | b3 | `wet` | bit | too wet | | |",
        "| 0 | b2-0 | (reserved, 0) | u3 | | | |",
        "| 1-2 | | `depth` | i16 | 0.5 cm, below | -10..10.5 | `0x8000` |",
        "| 3 | | `count` | u8 | | 0..200 | |",
        "| 4-11 | | `raw` | 2 x u32 | | 0..9 | `0xFFFFFFFF` |",
    ]


def test_a_stale_table_in_the_document_is_rewritten() -> None:
    text = DOC.read_text(encoding="utf-8")
    stale = text.replace("| 4-5 | | `soil_temperature` | i16 |", "| 4-5 | | `soil_temperature` | u16 |")
    assert stale != text and render(stale) == text


def test_variable_layouts_are_refused_not_guessed() -> None:
    with pytest.raises(Unsupported):
        table(get_codec("temperature").port(1, "up"))  # the probe count is in the header


def test_a_byte_of_flags_is_named_by_the_port_view() -> None:
    port = Port(
        1,
        "up",
        "readings",
        "",
        cs.Struct(
            header(cs.Padding(4)),
            "_bits"
            / cs.BitStruct(
                cs.Padding(6),
                described("leak", Bool(cs.Flag), "water where none should be"),
                "dry" / Bool(cs.Flag),
            ),
            cs.Terminated,
        ),
        {},
        ("faults",),
        view={"faults": {"leak": "_bits.leak", "dry": "_bits.dry"}},
    )
    assert table(port).splitlines()[4:] == [
        "| 1 | b7-2 | (reserved, 0) | u6 | | | |",
        "| 1 | b1 | `faults.leak` | bit | water where none should be | | |",
        "| 1 | b0 | `faults.dry` | bit | | | |",
    ]
