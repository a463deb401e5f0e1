"""``havel frame decode|encode`` and ``havel airtime``: the frame layer on the command line.

Decode prints JSON Lines (one object per frame); a frame that cannot be read prints ``{"error": ...}`` on
its line, the others are still processed, and the exit status is then 1. Keys given on the command line
are never echoed; errors name the option, not its value.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import click

from havel.codecs.lorawan import airtime as airtime_mod
from havel.codecs.lorawan import eu868, maccmds, phy
from havel.codecs.lorawan.decode import decode_frame
from havel.codecs.lorawan.ids import parse_base64, parse_hex, parse_id_hex, parse_int, parse_key
from havel.errors import HavelError, InputError

_KEY_FIELDS = ("nwk_s_key", "app_s_key", "app_key")


@click.group(name="frame")
def frame() -> None:
    """Decode and encode LoRaWAN 1.0.x frames (PHYPayloads)."""


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


def _cflist(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise InputError("--cflist: expected frequencies in Hz separated by commas") from None


def _only(kind: str, given: Iterable[tuple[str, object]]) -> None:
    """Refuse options that do not belong to the kind of frame being built."""
    extra = [name for name, value in given if value not in (None, False)]
    if extra:
        raise InputError(f"{', '.join(extra)} cannot be used when building a {kind}")


@frame.command(name="encode")
@click.option("--data", "kind", flag_value="data", default=True, help="Build a data frame (the default).")
@click.option("--join-request", "kind", flag_value="join-request", help="Build a join-request.")
@click.option("--join-accept", "kind", flag_value="join-accept", help="Build an encrypted join-accept.")
@click.option("--dev-addr", metavar="HEX", help="DevAddr, big-endian hex as consoles print it.")
@click.option("--fcnt", metavar="INT", help="Full 32-bit frame counter (the air carries its low 16 bits).")
@click.option("--fport", metavar="INT", help="FPort 0..255 (0: payload holds MAC commands, NwkSKey).")
@click.option("--payload", metavar="HEX", help="Plain FRMPayload (encrypted by this command).")
@click.option("--fopts", metavar="HEX", help="FOpts bytes (MAC commands piggybacked, at most 15).")
@click.option(
    "--mac",
    "mac_json",
    metavar="JSON",
    help="MAC commands as a JSON list, e.g. "
    '\'[{"name": "DevStatusReq"}]\': into FOpts, or the payload with --fport 0.',
)
@click.option("--nwk-s-key", metavar="HEX", help="NwkSKey (MIC; FPort-0 encryption).")
@click.option("--app-s-key", metavar="HEX", help="AppSKey (FPort 1..255 encryption).")
@click.option("--confirmed", is_flag=True, help="Confirmed data frame.")
@click.option("--down", is_flag=True, help="Downlink (network to device); default uplink.")
@click.option("--adr", is_flag=True, help="FCtrl ADR.")
@click.option("--adr-ack-req", is_flag=True, help="FCtrl ADRACKReq (uplink).")
@click.option("--ack", is_flag=True, help="FCtrl ACK.")
@click.option("--fpending", is_flag=True, help="FCtrl FPending (downlink).")
@click.option("--class-b", is_flag=True, help="FCtrl ClassB (uplink).")
@click.option("--join-eui", metavar="HEX", help="JoinEUI/AppEUI, big-endian hex.")
@click.option("--dev-eui", metavar="HEX", help="DevEUI, big-endian hex.")
@click.option("--dev-nonce", metavar="INT", help="DevNonce as a number (0xCC85 is sent as bytes 85 CC).")
@click.option("--app-key", metavar="HEX", help="AppKey (join-request MIC, join-accept MIC and encryption).")
@click.option("--join-nonce", metavar="INT", help="JoinNonce/AppNonce (24 bits).")
@click.option("--net-id", metavar="HEX", help="NetID, big-endian hex (3 bytes).")
@click.option("--rx1-dr-offset", type=int, default=None, help="DLSettings RX1DRoffset (default 0).")
@click.option("--rx2-dr", type=int, default=None, help="DLSettings RX2DataRate (default 0).")
@click.option("--rx-delay", type=int, default=None, help="RxDelay in seconds (default 1).")
@click.option("--cflist", metavar="HZ,...", help="Up to 5 extra channel frequencies in Hz (CFList).")
@click.option("--base64", "use_base64", is_flag=True, help="Print base64 instead of hex.")
def encode_cmd(
    kind: str,
    dev_addr: str | None,
    fcnt: str | None,
    fport: str | None,
    payload: str | None,
    fopts: str | None,
    mac_json: str | None,
    nwk_s_key: str | None,
    app_s_key: str | None,
    confirmed: bool,
    down: bool,
    adr: bool,
    adr_ack_req: bool,
    ack: bool,
    fpending: bool,
    class_b: bool,
    join_eui: str | None,
    dev_eui: str | None,
    dev_nonce: str | None,
    app_key: str | None,
    join_nonce: str | None,
    net_id: str | None,
    rx1_dr_offset: int | None,
    rx2_dr: int | None,
    rx_delay: int | None,
    cflist: str | None,
    use_base64: bool,
) -> None:
    """Build a frame and print it as upper-case hex (or base64).

    \b
    Data frame:    --dev-addr --fcnt --fport --payload --nwk-s-key --app-s-key [--fopts|--mac]
                   [--confirmed] [--down] [--adr --adr-ack-req --ack --fpending --class-b]
    Join-request:  --join-request --join-eui --dev-eui --dev-nonce --app-key
    Join-accept:   --join-accept --app-key --join-nonce --net-id --dev-addr
                   [--rx1-dr-offset --rx2-dr --rx-delay --cflist]
    """
    join_opts = [("--join-eui", join_eui), ("--dev-eui", dev_eui), ("--dev-nonce", dev_nonce)]
    accept_opts = [
        ("--join-nonce", join_nonce),
        ("--net-id", net_id),
        ("--rx1-dr-offset", rx1_dr_offset),
        ("--rx2-dr", rx2_dr),
        ("--rx-delay", rx_delay),
        ("--cflist", cflist),
    ]
    data_opts = [
        ("--fcnt", fcnt),
        ("--fport", fport),
        ("--payload", payload),
        ("--fopts", fopts),
        ("--mac", mac_json),
        ("--nwk-s-key", nwk_s_key),
        ("--app-s-key", app_s_key),
        ("--confirmed", confirmed),
        ("--down", down),
        ("--adr", adr),
        ("--adr-ack-req", adr_ack_req),
        ("--ack", ack),
        ("--fpending", fpending),
        ("--class-b", class_b),
    ]
    if kind == "data":
        _only("data frame", [*join_opts, *accept_opts, ("--app-key", app_key)])
        out = _build_data(
            dev_addr,
            fcnt,
            fport,
            payload,
            fopts,
            mac_json,
            nwk_s_key,
            app_s_key,
            confirmed,
            down,
            adr,
            adr_ack_req,
            ack,
            fpending,
            class_b,
        )
    elif kind == "join-request":
        _only("join-request", [*data_opts, *accept_opts, ("--dev-addr", dev_addr)])
        out = phy.build_join_request(
            join_eui=parse_id_hex(_required(join_eui, "--join-eui"), what="--join-eui", size=8),
            dev_eui=parse_id_hex(_required(dev_eui, "--dev-eui"), what="--dev-eui", size=8),
            dev_nonce=parse_int(_required(dev_nonce, "--dev-nonce"), what="--dev-nonce", bits=16),
            app_key=parse_key(_required(app_key, "--app-key"), "--app-key"),
        )
    else:
        _only("join-accept", [*data_opts, *join_opts])
        out = phy.build_join_accept(
            app_key=parse_key(_required(app_key, "--app-key"), "--app-key"),
            join_nonce=parse_int(_required(join_nonce, "--join-nonce"), what="--join-nonce", bits=24),
            net_id=parse_id_hex(_required(net_id, "--net-id"), what="--net-id", size=3),
            dev_addr=parse_id_hex(_required(dev_addr, "--dev-addr"), what="--dev-addr", size=4),
            rx1_dr_offset=0 if rx1_dr_offset is None else rx1_dr_offset,
            rx2_dr=0 if rx2_dr is None else rx2_dr,
            rx_delay=1 if rx_delay is None else rx_delay,
            cflist_hz=_cflist(cflist),
        )
    if use_base64:
        click.echo(base64.b64encode(out).decode())
    else:
        click.echo(out.hex().upper())


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise InputError(f"{name} is required for this kind of frame", hint="see havel frame encode --help")
    return value


def _build_data(
    dev_addr: str | None,
    fcnt: str | None,
    fport: str | None,
    payload: str | None,
    fopts: str | None,
    mac_json: str | None,
    nwk_s_key: str | None,
    app_s_key: str | None,
    confirmed: bool,
    down: bool,
    adr: bool,
    adr_ack_req: bool,
    ack: bool,
    fpending: bool,
    class_b: bool,
) -> bytes:
    uplink = not down
    port = _opt_int(fport, "--fport", 8)
    body = b"" if payload is None else parse_hex(payload, what="--payload")
    fopts_bytes = b"" if fopts is None else parse_hex(fopts, what="--fopts")
    if mac_json is not None:
        try:
            cmds = json.loads(mac_json)
        except json.JSONDecodeError as exc:
            raise InputError(f"--mac: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise InputError("--mac: JSON nested too deeply to read") from None
        if not isinstance(cmds, list):
            raise InputError("--mac: expected a JSON list of MAC commands")
        mac_bytes = maccmds.encode(cmds, uplink)
        if port == 0:
            if payload is not None:
                raise InputError("--mac with --fport 0 is the payload: leave out --payload")
            body = mac_bytes
        else:
            if fopts is not None:
                raise InputError("--mac fills FOpts: leave out --fopts")
            fopts_bytes = mac_bytes
    nwk = parse_key(_required(nwk_s_key, "--nwk-s-key"), "--nwk-s-key")
    if port is not None and port > 0:
        app = parse_key(_required(app_s_key, "--app-s-key"), "--app-s-key")
    else:
        # No application payload to encrypt: the AppSKey is not used, any valid key fills the slot.
        app = nwk if app_s_key is None else parse_key(app_s_key, "--app-s-key")
    return phy.build_data_frame(
        uplink=uplink,
        confirmed=confirmed,
        dev_addr=parse_id_hex(_required(dev_addr, "--dev-addr"), what="--dev-addr", size=4),
        fcnt32=parse_int(fcnt if fcnt is not None else 0, what="--fcnt", bits=32),
        fport=port,
        payload=body,
        fopts=fopts_bytes,
        adr=adr,
        adr_ack_req=adr_ack_req,
        ack=ack,
        fpending=fpending,
        class_b=class_b,
        nwk_s_key=nwk,
        app_s_key=app,
    )


@click.command(name="airtime")
@click.option("--sf", type=click.IntRange(7, 12), help="Spreading factor 7..12.")
@click.option(
    "--bw",
    "bw_khz",
    type=click.Choice(["125", "250", "500"]),
    default="125",
    show_default=True,
    help="Bandwidth in kHz.",
)
@click.option("--dr", type=click.IntRange(0, 6), help="EU868 data rate instead of --sf/--bw.")
@click.option(
    "--bytes",
    "size",
    type=click.IntRange(0, 255),
    required=True,
    help="Application payload (FRMPayload) bytes; the PHYPayload adds 13 (MHDR, FHDR, FPort, MIC) "
    "plus --fopts-len. With --phy: the whole PHYPayload length.",
)
@click.option("--fopts-len", type=click.IntRange(0, 15), default=0, help="FOpts bytes in the frame.")
@click.option("--phy", "is_phy", is_flag=True, help="--bytes is the PHYPayload length.")
@click.option("--down", is_flag=True, help="Downlink (no payload CRC).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def airtime(
    sf: int | None,
    bw_khz: str,
    dr: int | None,
    size: int,
    fopts_len: int,
    is_phy: bool,
    down: bool,
    as_json: bool,
) -> None:
    """Time on air of a LoRaWAN frame and the minimum pause after it under each EU868 duty cycle.

    Semtech AN1200.13 formula, CR 4/5, 8-symbol preamble, explicit header, low-data-rate optimisation
    on for SF11/SF12 at 125 kHz. The pause is airtime x (1/duty - 1).
    """
    if dr is not None:
        if sf is not None:
            raise InputError("give either --dr or --sf/--bw, not both")
        sf, bw = eu868.DATA_RATES[dr]
    elif sf is None:
        raise InputError("--sf (or --dr) is required", hint="e.g. havel airtime --sf 12 --bytes 51")
    else:
        bw = int(bw_khz)
    phy_len = size if is_phy else size + airtime_mod.LORAWAN_OVERHEAD + fopts_len
    if phy_len > phy.MAX_PHY_LEN:
        raise InputError(f"a PHYPayload of {phy_len} bytes exceeds 255")
    ldro = airtime_mod.ldro_needed(sf, bw)
    toa_us = eu868.airtime_us(phy_len, sf, bw, crc=not down)
    pauses: list[dict[str, Any]] = []
    for duty in eu868.DUTY_CYCLES:
        bands = [f"{lo / 1e6:g}-{hi / 1e6:g} MHz" for lo, hi, d in eu868.SUBBANDS if d == duty]
        pause = round(airtime_mod.pause_s(toa_us, duty), 3)
        pauses.append(
            {
                "duty": duty,
                "subbands": bands,
                "pause_s": pause,
                "max_frames_per_hour": int(3600 * 1e6 * duty // toa_us),
            }
        )
    result: dict[str, Any] = {
        "sf": sf,
        "bw_khz": bw,
        "phy_len": phy_len,
        "app_bytes": None if is_phy else size,
        "ldro": ldro,
        "crc": not down,
        "airtime_us": toa_us,
        "airtime_ms": toa_us / 1000,
        "pauses": pauses,
    }
    if not is_phy:
        drs = [d for d, v in eu868.DATA_RATES.items() if v == (sf, bw)]
        if drs and size > eu868.max_app_payload(drs[0]):
            result["warning"] = (
                f"{size} bytes exceed the EU868 maximum of {eu868.max_app_payload(drs[0])} at DR{drs[0]}"
            )
    if as_json:
        click.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    what = f"{phy_len}-byte PHYPayload" + ("" if is_phy else f" ({size} application bytes)")
    console.print(
        f"Time on air: {toa_us / 1000:.3f} ms for a {what} at SF{sf}/{bw} kHz, CR 4/5, "
        f"LDRO {'on' if ldro else 'off'}"
    )
    table = Table("duty cycle", "sub-bands", "min pause", "max frames/hour")
    for p in pauses:
        table.add_row(
            f"{p['duty'] * 100:g} %",
            ", ".join(p["subbands"]),
            f"{p['pause_s']:.3f} s",
            str(p["max_frames_per_hour"]),
        )
    console.print(table)
    if "warning" in result:
        console.print(f"[yellow]warning:[/] {result['warning']}")
