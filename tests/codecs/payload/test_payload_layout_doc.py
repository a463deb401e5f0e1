"""docs/payloads.md's byte-layout tables are printed from the codecs' declarations (codecs/payload/layout.py):
the document fails this test as soon as it differs from what the printer gives for the current schemas."""

from __future__ import annotations

from pathlib import Path

import construct as cs
import pytest

from havel.codecs.payload import KIND_NAMES, NodeCodec, Port, get_codec
from havel.codecs.payload.fields import Bool, Reading, described, header
from havel.codecs.payload.layout import Unsupported, marked, render, table

DOC = Path(__file__).resolve().parents[3] / "docs" / "payloads.md"


def test_the_document_tables_are_what_the_declarations_print() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "run: python -m havel.codecs.payload.layout --write docs/payloads.md"


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_documents_its_ports_with_generated_tables(kind: str) -> None:
    """Every uplink and downlink of every node kind can be printed, and the readings uplink and the kind's
    own downlinks with a table are printed ones, never hand-written."""
    codec = get_codec(kind)
    assert isinstance(codec, NodeCodec)
    for port in codec.ports:
        table(port)  # no Unsupported: every layout of the node kinds can be printed
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


def test_counted_arrays_and_optional_fields_give_offsets_in_n_and_both_cases() -> None:
    counted = Port(
        1,
        "up",
        "readings",
        "",
        cs.Struct(
            header(described("count", cs.BitsInteger(4), "n")),
            "probes" / cs.Array(cs.this._header.count, Reading(cs.Int16sb, lo=0, hi=9)),
            "battery" / Reading(cs.Int8ub, lo=0, hi=9),
            cs.Terminated,
        ),
        {},
        ("probes", "battery"),
    )
    assert [r.split(" | ")[0] for r in table(counted).splitlines()[3:]] == ["| 0", "| 1 + 2i", "| 1 + 2n"]
    optional = Port(
        1,
        "up",
        "readings",
        "",
        cs.Struct(
            header("extra" / Bool(cs.Flag), cs.Padding(3)),
            "co2" / cs.If(cs.this._header.extra, Reading(cs.Int16ub, lo=0, hi=9)),
            "battery" / Reading(cs.Int8ub, lo=0, hi=9),
            cs.Terminated,
        ),
        {},
        ("co2", "battery"),
    )
    assert table(optional).splitlines()[-2:] == [
        "| 1-2 | | `co2` | u16 | | 0..9 | |",
        "| 3 (1 without co2) | | `battery` | u8 | | 0..9 | |",
    ]


def test_layouts_it_cannot_print_are_refused_not_guessed() -> None:
    twice = Port(
        1,
        "up",
        "readings",
        "",
        cs.Struct(
            header("count" / cs.BitsInteger(4)),
            "a" / cs.Array(cs.this._header.count, Reading(cs.Int8ub, lo=0, hi=9)),
            "b" / cs.Array(cs.this._header.count, Reading(cs.Int8ub, lo=0, hi=9)),
            cs.Terminated,
        ),
        {},
        ("a", "b"),
    )
    with pytest.raises(Unsupported):
        table(twice)
