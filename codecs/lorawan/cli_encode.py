"""``havel frame encode``: build a data frame, a join-request or an encrypted join-accept on the command line.

Keys given on the command line are never echoed; errors name the option, not its value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import click

from havel.codecs.lorawan import maccmds, phy
from havel.codecs.lorawan.ids import parse_hex, parse_id_hex, parse_int, parse_key
from havel.errors import InputError


def _cflist(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise InputError("--cflist: expected frequencies in Hz separated by commas") from None


# the options of each kind of frame (their parameter names), to refuse those of another kind
_DATA = (
    "fcnt",
    "fport",
    "payload",
    "fopts",
    "mac_json",
    "nwk_s_key",
    "app_s_key",
    "confirmed",
    "down",
    "adr",
    "adr_ack_req",
    "ack",
    "fpending",
    "class_b",
)
_JOIN_REQUEST = ("join_eui", "dev_eui", "dev_nonce")
_JOIN_ACCEPT = ("join_nonce", "net_id", "rx1_dr_offset", "rx2_dr", "rx_delay", "cflist")


def _only(kind: str, given: Iterable[tuple[str, object]]) -> None:
    """Refuse options that do not belong to the kind of frame being built."""
    extra = [name for name, value in given if value not in (None, False)]
    if extra:
        raise InputError(f"{', '.join(extra)} cannot be used when building a {kind}")


@click.command(name="encode")
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
def encode_cmd(kind: str, use_base64: bool, **opts: Any) -> None:
    """Build a frame and print it as upper-case hex (or base64).

    \b
    Data frame:    --dev-addr --fcnt --fport --payload --nwk-s-key --app-s-key [--fopts|--mac]
                   [--confirmed] [--down] [--adr --adr-ack-req --ack --fpending --class-b]
    Join-request:  --join-request --join-eui --dev-eui --dev-nonce --app-key
    Join-accept:   --join-accept --app-key --join-nonce --net-id --dev-addr
                   [--rx1-dr-offset --rx2-dr --rx-delay --cflist]
    """
    flag = {p.name: p.opts[0] for p in click.get_current_context().command.params}

    def given(names: Iterable[str]) -> list[tuple[str, object]]:
        return [(flag[n], opts[n]) for n in names]

    join_eui, dev_eui, dev_nonce = (opts[n] for n in _JOIN_REQUEST)
    join_nonce, net_id, rx1_dr_offset, rx2_dr, rx_delay, cflist = (opts[n] for n in _JOIN_ACCEPT)
    app_key, dev_addr = opts["app_key"], opts["dev_addr"]
    if kind == "data":
        _only("data frame", given((*_JOIN_REQUEST, *_JOIN_ACCEPT, "app_key")))
        out = _build_data(dev_addr, **{n: opts[n] for n in _DATA})
    elif kind == "join-request":
        _only("join-request", given((*_DATA, *_JOIN_ACCEPT, "dev_addr")))
        out = phy.build_join_request(
            join_eui=parse_id_hex(_required(join_eui, "--join-eui"), what="--join-eui", size=8),
            dev_eui=parse_id_hex(_required(dev_eui, "--dev-eui"), what="--dev-eui", size=8),
            dev_nonce=parse_int(_required(dev_nonce, "--dev-nonce"), what="--dev-nonce", bits=16),
            app_key=parse_key(_required(app_key, "--app-key"), "--app-key"),
        )
    else:
        _only("join-accept", given((*_DATA, *_JOIN_REQUEST)))
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
    *,
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
    port = None if fport is None else parse_int(fport, what="--fport", bits=8)
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
