"""Payload codec figures, measured on this machine (never asserted in tests).

1. decode/s per codec, plain construct Structs, construct's ``compile()`` and the fast path generated from
   the same Structs (codecs/payload/fastpath.py, the default), over the readings (FPort 1) and all uplink
   vectors of codecs/vectors/<codec>.json (full ``codec.decode``: parse, glue, warnings), in one run,
   with the ratios; then the gateway's own call (``get_codec`` + ``use_compiled()``) per codec against
   the gateway's budget of 6 us per decode.
2. bytes per reading set for each node codec next to Cayenne LPP carrying the same readings (targets:
   <= 50 % of LPP and <= 51 bytes, DR0).

Run: ``.venv/bin/python bench/payloads.py [--seconds 0.5]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from havel.codecs.payload import KIND_NAMES, NodeCodec, get_codec
from havel.codecs.payload.cayenne_lpp import CayenneLPP

VECTORS = Path(__file__).resolve().parents[1] / "codecs" / "vectors"
NODE_CODECS = KIND_NAMES


def load(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / f"{name}.json").read_text())


def rates(fns: list[Callable[[], object]], seconds: float, rounds: int = 7) -> list[float]:
    """Calls per CPU second of each of ``fns``: process CPU time, not wall time, because the machine is
    shared (time spent waiting for a core is not the codec's); rounds alternate between the functions
    and the best round counts."""
    loops = []
    for fn in fns:  # calibrate each to about seconds / rounds per round
        n = 1
        while True:
            t0 = time.process_time()
            for _ in range(n):
                fn()
            dt = time.process_time() - t0
            if dt > seconds / rounds / 4:
                break
            n *= 2
        loops.append(max(1, int(n * (seconds / rounds) / dt)))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.process_time()
            for _ in range(loops[i]):
                fn()
            best[i] = min(best[i], (time.process_time() - t0) / loops[i])
    return [1.0 / b for b in best]


def codec_trio(name: str) -> tuple[Any, Any, Any]:
    """The codec parsing with plain construct, with compiled construct, and with the fast path."""
    base = get_codec(name)
    if isinstance(base, NodeCodec):
        return (
            NodeCodec(name, base.summary, base.ports, fast=False),
            NodeCodec(name, base.summary, base.ports, compiled=True),
            NodeCodec(name, base.summary, base.ports),
        )
    return CayenneLPP(), CayenneLPP(compiled=True), None


def _runner(codec: Any, ups: list[tuple[bytes, int]]) -> Callable[[], None]:
    def run() -> None:
        for data, fport in ups:
            codec.decode(data, fport)

    return run


def decode_rates(seconds: float) -> Table:
    table = Table(
        title="decode/s per codec (per CPU second; full codec.decode: parse, glue, warnings; "
        "plain and compiled construct vs the generated fast path, one process)"
    )
    for col in (
        "codec",
        "payloads",
        "plain decode/s",
        "compiled decode/s",
        "fast path decode/s",
        "fast / plain",
        "fast / compiled",
        "us per decode (plain / compiled / fast)",
    ):
        table.add_column(col, justify="right" if col not in ("codec", "payloads") else "left")
    for name in (*NODE_CODECS, "cayenne-lpp"):
        vectors = [v for v in load(name) if v["direction"] == "up" and v["bytes"]]
        sets = [("uplinks", vectors)]
        if name in NODE_CODECS:  # the readings uplink is what a node sends all day
            sets.insert(0, ("FPort 1", [v for v in vectors if v["fport"] == 1]))
        codecs = [c for c in codec_trio(name) if c is not None]
        for label, chosen in sets:
            ups = [(bytes.fromhex(v["bytes"]), v["fport"]) for v in chosen]
            measured = [r * len(ups) for r in rates([_runner(c, ups) for c in codecs], seconds)]
            r_plain, r_comp = measured[:2]
            r_fast = measured[2] if len(measured) > 2 else None
            table.add_row(
                name,
                f"{len(ups)} {label}",
                f"{r_plain:,.0f}",
                f"{r_comp:,.0f}",
                "-" if r_fast is None else f"{r_fast:,.0f}",
                "-" if r_fast is None else f"{r_fast / r_plain:.1f}x",
                "-" if r_fast is None else f"{r_fast / r_comp:.1f}x",
                f"{1e6 / r_plain:.1f} / {1e6 / r_comp:.1f} / "
                + ("-" if r_fast is None else f"{1e6 / r_fast:.2f}"),
            )
    return table


def daemon_way(seconds: float) -> Table:
    """What the gateway does (gateway/network/messages.py compiled_codec, bench/gateway_e2e.py): the shared
    codec from get_codec() after use_compiled(), i.e. the fast path in front of compiled construct."""
    table = Table(
        title="the gateway's call: get_codec(name) + use_compiled(), decode(payload, 1) "
        "(first FPort 1 vector), us per decode"
    )
    for col in ("codec", "payload", "decode/s", "us per decode", "target <= 6 us"):
        table.add_column(col, justify="right" if col != "codec" else "left")
    for name in NODE_CODECS:
        codec = get_codec(name)
        assert isinstance(codec, NodeCodec)
        codec.use_compiled()
        payload = bytes.fromhex(next(v["bytes"] for v in load(name) if v["fport"] == 1))

        def one(codec: NodeCodec = codec, payload: bytes = payload) -> None:
            codec.decode(payload, 1)

        (rate,) = rates([one], seconds)
        table.add_row(
            name, payload.hex(), f"{rate:,.0f}", f"{1e6 / rate:.2f}", "yes" if rate >= 1e6 / 6 else "NO"
        )
    return table


# --- the same readings as Cayenne LPP (smallest LPP type per reading; flags LPP cannot say are left out
# except where a digital input carries them; absent readings are simply omitted, which favours LPP) ------


def _volts(mv: int | None) -> float | None:
    return None if mv is None else mv / 1000


def _deci(x: float | None) -> int | None:
    return None if x is None else round(x * 10)


def _pm(channel: int, value: float | None) -> dict[str, Any]:
    """PM in LPP: analog_in (0.01) while it fits, else a generic sensor in 0.1 ug/m3."""
    if value is not None and value > 327.67:
        return {f"generic_sensor_{channel}": _deci(value)}
    return {f"analog_in_{channel}": value}


def lpp_air(d: dict[str, Any]) -> dict[str, Any]:
    out = {
        "temperature_1": d["temperature"],
        "relative_humidity_2": d["humidity"],
        "barometric_pressure_3": d["pressure"],
        **_pm(4, d["pm2_5"]),
        **_pm(5, d["pm10"]),
    }
    if "co2" in d:
        out["concentration_6"] = d["co2"]
    out["voltage_7"] = _volts(d["battery"])
    return out


def lpp_water(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "analog_in_1": None if d["level"] is None else d["level"] / 100,  # m, 0.01 = cm
        "distance_2": None if d["distance"] is None else d["distance"] / 1000,
        "temperature_3": d["water_temperature"],
        "voltage_4": _volts(d["battery"]),
        "digital_in_5": int(d["alarm"]),
        "digital_in_6": d["alarm_level"],
        "digital_in_7": int(d["rising_fast"]),
    }


def lpp_temperature(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {f"temperature_{i}": t for i, t in enumerate(d["probes"])}
    out[f"relative_humidity_{len(d['probes'])}"] = d["humidity"]
    out[f"voltage_{len(d['probes']) + 1}"] = _volts(d["battery"])
    return out


def lpp_cooling(d: dict[str, Any]) -> dict[str, Any]:
    flags = sum(1 << i for i, v in enumerate([*d["interlock"].values(), *d["faults"].values()]) if v)
    modes = ("auto", "override_open", "override_closed", "flush")
    return {
        "digital_out_1": int(d["valve_open"]),
        "digital_in_2": int(d["enabled"]),
        "digital_in_3": modes.index(d["mode"]),
        "digital_in_4": flags,
        "digital_in_5": d["actuations"],
        "generic_sensor_6": d["open_time"],
        "generic_sensor_7": _deci(d["water_used"]),
        "generic_sensor_8": _deci(d["water_today"]),
        "temperature_9": d["ambient_temperature"],
        "temperature_10": d["on_threshold"],
        "temperature_11": d["off_threshold"],
    }


def lpp_soil(d: dict[str, Any]) -> dict[str, Any]:
    # moisture in LPP's relative-humidity type: the same 0.5 % steps in one byte
    return {
        "relative_humidity_1": d["moisture_10cm"],
        "relative_humidity_2": d["moisture_30cm"],
        "relative_humidity_3": d["moisture_60cm"],
        "temperature_4": d["soil_temperature"],
        "voltage_5": _volts(d["battery"]),
    }


# one per node kind (a kind missing here stops the size table with its name: KeyError)
TO_LPP = {
    "air": lpp_air,
    "water": lpp_water,
    "temperature": lpp_temperature,
    "cooling": lpp_cooling,
    "soil": lpp_soil,
}


def sizes() -> tuple[Table, bool]:
    lpp = get_codec("cayenne-lpp")
    table = Table(title="bytes per reading set (FPort 1 readings vectors) vs Cayenne LPP")
    for col in ("codec", "reading set", "Havel", "LPP", "ratio", "<=50 % and <=51 B"):
        table.add_column(col, justify="right" if col not in ("codec", "reading set") else "left")
    all_ok = True
    for name in NODE_CODECS:
        for v in load(name):
            if v["fport"] != 1 or v["direction"] != "up" or "null" in json.dumps(v["data"]):
                continue  # complete reading sets only: LPP would just leave absent readings out
            havel = len(bytes.fromhex(v["bytes"]))
            equivalent = {k: x for k, x in TO_LPP[name](v["data"]).items() if x is not None}
            n_lpp = len(lpp.encode(equivalent, 1))
            ok = havel <= 0.5 * n_lpp and havel <= 51
            all_ok &= ok
            table.add_row(
                name,
                v["description"][:60],
                str(havel),
                str(n_lpp),
                f"{havel / n_lpp:.0%}",
                "yes" if ok else "NO",
            )
    return table, all_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.6, help="time per measurement")
    args = parser.parse_args()
    console = Console(width=160)
    console.print(decode_rates(args.seconds))
    console.print(daemon_way(args.seconds))
    table, ok = sizes()
    console.print(table)
    console.print("size targets met by every reading set" if ok else "SIZE TARGET MISSED (see NO rows)")


if __name__ == "__main__":
    main()
