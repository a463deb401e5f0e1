"""``havel frame decode|encode``: the frame layer on the command line (the group and ``decode``; ``encode``
is in :mod:`.cli_encode`, ``havel airtime`` in :mod:`.cli_airtime`).

Decode prints JSON Lines (one object per frame); a frame that cannot be read prints ``{"error": ...}`` on
its line, the others are still processed, and the exit status is then 1. Keys given on the command line
are never echoed; errors name the option, not its value.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import click

from havel.codecs.lorawan.cli_encode import encode_cmd
from havel.codecs.lorawan.decode import decode_frame
from havel.codecs.lorawan.ids import parse_base64, parse_hex, parse_int, parse_key
from havel.errors import HavelError, InputError

_KEY_FIELDS = ("nwk_s_key", "app_s_key", "app_key")


@click.group(name="frame")
def frame() -> None:
    """Decode and encode LoRaWAN 1.0.x frames (PHYPayloads)."""


frame.add_command(encode_cmd)


def _opt_key(value: str | None, what: str) -> bytes | None:
    return None if value is None else parse_key(value, what)


def _opt_int(value: str | int | None, what: str, bits: int) -> int | None:
    return None if value is None else parse_int(value, what=what, bits=bits)


def _inputs(frames: tuple[str, ...]) -> Iterator[str | InputError]:
    """The frames to decode: the arguments, else stdin lines (read as bytes: one bad line is one error)."""
    if frames:
        yield from frames
        return
    for raw in sys.stdin.buffer:
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield InputError("line is not UTF-8 text", hint="give frames as hex, base64 or JSON lines")
            continue
        if line:
            yield line


def _decode_one(text: str, base: dict[str, Any], use_base64: bool) -> dict[str, Any]:
    """Decode one input line (hex/base64 frame, or a JSON object carrying its own keys)."""
    opts = dict(base)
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"line is not valid JSON: {exc.msg} at column {exc.colno}") from None
        except RecursionError:
            raise InputError("line is JSON nested too deeply to read") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("phy"), str):
            raise InputError('a JSON line needs "phy": the frame as hex (base64 with --base64)')
        for name in _KEY_FIELDS:
            if obj.get(name) is not None:
                if not isinstance(obj[name], str):
                    raise InputError(f"{name}: expected a hex string")
                opts[name] = parse_key(obj[name], name)
        if obj.get("dev_nonce") is not None:
            opts["dev_nonce"] = parse_int(obj["dev_nonce"], what="dev_nonce", bits=16)
        if obj.get("fcnt32") is not None:
            opts["fcnt32"] = parse_int(obj["fcnt32"], what="fcnt32", bits=32)
        text = obj["phy"]
    data = parse_base64(text, what="frame") if use_base64 else parse_hex(text, what="frame")
    return decode_frame(data, **opts)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()  # a line per frame as it comes, also when piped from a live capture


@frame.command(name="decode")
@click.argument("frames", nargs=-1)
@click.option("--base64", "use_base64", is_flag=True, help="Frames are base64 (as forwarders send them).")
@click.option("--nwk-s-key", metavar="HEX", help="NwkSKey: checks data MICs, decrypts FPort-0 payloads.")
@click.option("--app-s-key", metavar="HEX", help="AppSKey: decrypts FRMPayloads of FPort 1..255.")
@click.option("--app-key", metavar="HEX", help="AppKey: checks join MICs, decrypts join-accepts.")
@click.option(
    "--dev-nonce",
    metavar="INT",
    help="DevNonce of the join-request (a number, e.g. 52357 or "
    "0xCC85 for on-air bytes 85 CC): derives the session keys from a join-accept.",
)
@click.option("--fcnt32", metavar="INT", help="This frame's full 32-bit FCnt (default: upper 16 bits 0).")
@click.pass_context
def decode_cmd(
    ctx: click.Context,
    frames: tuple[str, ...],
    use_base64: bool,
    nwk_s_key: str | None,
    app_s_key: str | None,
    app_key: str | None,
    dev_nonce: str | None,
    fcnt32: str | None,
) -> None:
    """Decode FRAMEs (hex arguments, else one per line on stdin) to JSON Lines.

    A stdin line may be a JSON object {"phy": HEX (base64 with --base64), "nwk_s_key": ..., "app_s_key": ...,
    "app_key": ..., "dev_nonce": ..., "fcnt32": ...} carrying its own keys; they override the options for
    that line (other members are ignored).
    A frame that cannot be read prints {"error": "..."} and the exit status becomes 1.
    Hex output: identifiers, MICs and keys upper case; fopts and payloads lower case.
    """
    base: dict[str, Any] = {
        "nwk_s_key": _opt_key(nwk_s_key, "--nwk-s-key"),
        "app_s_key": _opt_key(app_s_key, "--app-s-key"),
        "app_key": _opt_key(app_key, "--app-key"),
        "dev_nonce": _opt_int(dev_nonce, "--dev-nonce", 16),
        "fcnt32": _opt_int(fcnt32, "--fcnt32", 32),
    }
    failed = False
    for text in _inputs(frames):
        try:
            if isinstance(text, InputError):
                raise text
            _emit(_decode_one(text, base, use_base64))
        except HavelError as exc:
            failed = True
            _emit({"error": str(exc)})
    if failed:
        ctx.exit(1)
