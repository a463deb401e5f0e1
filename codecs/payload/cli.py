"""``havel payload decode|encode|list``: the payload codecs from the command line."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from havel.codecs.payload.registry import CODEC_NAMES, get_codec, list_codecs
from havel.errors import InputError

_DIRECTION = click.Choice(["up", "down"])
# The codec name is checked by get_codec, not by click.Choice: an unknown codec (or port) is then one line
# "havel: error: unknown codec ...; codecs are ..." with exit status 1, like every other bad input.
_CODEC_HELP = f"Codec name: {', '.join(CODEC_NAMES)}."


def parse_hex(text: str) -> bytes:
    """Bytes from hex (spaces, colons and a 0x prefix allowed); InputError naming the problem."""
    cleaned = text.strip().replace(" ", "").replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if len(cleaned) % 2:
        raise InputError(
            f"hex payload {text!r} has an odd number of digits ({len(cleaned)})",
            hint="each byte is two hex digits",
        )
    try:
        return binascii.unhexlify(cleaned)
    except (binascii.Error, ValueError):
        raise InputError(f"{text!r} is not hex", hint="give the payload as hex, e.g. 1800d75b") from None


def parse_base64(text: str) -> bytes:
    """Bytes from base64 (as The Things Stack and ChirpStack show frm_payload); InputError otherwise."""
    cleaned = text.strip()
    cleaned += "=" * (-len(cleaned) % 4)  # padding optional, as in `havel frame decode --base64`
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{text!r} is not valid base64", hint="drop --base64 to give hex") from None


def parse_json_object(text: str) -> dict[str, Any]:
    """A JSON object from the command line; InputError naming the problem."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON: {exc.msg} at character {exc.pos}",
            hint="quote the object in single quotes: '{\"interval\": 900}'",
        ) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply to read") from None
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got {type(value).__name__}")
    return value


@click.group()
def payload() -> None:
    """Decode and encode sensor payloads (codecs: air, water, temperature, cooling, cayenne-lpp)."""


@payload.command("decode")
@click.option("--codec", "codec_name", required=True, metavar="NAME", help=_CODEC_HELP)
@click.option("--fport", type=int, default=1, show_default=True, help="LoRaWAN FPort.")
@click.option("--direction", type=_DIRECTION, default="up", show_default=True)
@click.option("--base64", "is_base64", is_flag=True, help="The payload is base64, not hex.")
@click.argument("hex_payload", metavar="HEX")
def decode_cmd(codec_name: str, fport: int, direction: str, is_base64: bool, hex_payload: str) -> None:
    """Decode HEX and print the JSON object {codec, fport, version, data, units, warnings, errors}."""
    codec = get_codec(codec_name)
    data = parse_base64(hex_payload) if is_base64 else parse_hex(hex_payload)
    result = codec.decode(data, fport, direction)
    click.echo(json.dumps(result, ensure_ascii=False))


@payload.command("encode")
@click.option("--codec", "codec_name", required=True, metavar="NAME", help=_CODEC_HELP)
@click.option(
    "--fport",
    type=int,
    default=None,
    help="LoRaWAN FPort (needed when the codec has several ports in that direction).",
)
@click.option("--direction", type=_DIRECTION, default="up", show_default=True)
@click.argument("json_data", metavar="JSON")
def encode_cmd(codec_name: str, fport: int | None, direction: str, json_data: str) -> None:
    """Encode JSON (the decoder's `data` object) and print the payload as lower-case hex."""
    codec = get_codec(codec_name)
    if fport is None and codec_name == "cayenne-lpp":
        fport = 1
    click.echo(codec.encode(parse_json_object(json_data), fport, direction).hex())


@payload.command("list")
def list_cmd() -> None:
    """Show the codecs with their ports."""
    table = Table(title="Havel payload codecs")
    for col in ("codec", "fport", "dir", "payload", "fields"):
        table.add_column(col)
    for codec in list_codecs():
        for i, port in enumerate(codec.ports):
            fport = "1-223" if port.fport is None else str(port.fport)
            fields = ", ".join(port.keys) if port.keys else port.summary
            table.add_row(codec.name if i == 0 else "", fport, port.direction, port.name, fields)
        table.add_section()
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=140)
    console.print(table)


@payload.command("export-js")
@click.option("--codec", "codec_name", metavar="NAME", help=_CODEC_HELP)
@click.option(
    "--all",
    "export_all",
    is_flag=True,
    help="Every codec's formatter and the device profiles (ChirpStack v4, The Things Stack) into --out DIR.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="With --codec: the file to write (default: standard output). With --all: the folder.",
)
def export_js_cmd(codec_name: str | None, export_all: bool, out: Path | None) -> None:
    """JavaScript payload formatters for The Things Stack and ChirpStack v4 (docs/network-servers.md)."""
    from havel.codecs.payload.js import export, formatter, formatter_notes  # only this command needs them

    if export_all == (codec_name is not None):
        raise InputError("give either --codec NAME or --all", hint="havel payload export-js --codec water")
    if export_all:
        if out is None:
            raise InputError("--all writes several files: give the folder with --out DIR")
        done = export(out)
        for note in done.notes:
            click.echo(f"havel: warning: {note}", err=True)
        for rel in done.files:
            click.echo(str(out / rel))
        return
    assert codec_name is not None
    script = formatter(codec_name)
    for note in formatter_notes(codec_name):
        click.echo(f"havel: warning: {codec_name}: {note}", err=True)
    if out is None:
        click.echo(script, nl=False)
    else:
        out.write_text(script, encoding="utf-8")
