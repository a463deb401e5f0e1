"""The gateway's JSON text (gateway/jsontext.py) per outbox message, next to ``json.dumps``.

Usage: ``.venv/bin/python bench/jsontext.py [--seconds 0.6] [--json]``

Three messages as the network server writes them into the outbox: a complete air reading, the same with
a reading the sensor did not give (a ``null``: the text is written again by the standard library, which
refuses NaN where orjson would write null), and a downlink command's status. For each: microseconds per
``encode_json`` and per ``json.dumps`` with the same options, per CPU second (process time, best of
several rounds; the machine is shared). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from typing import Any

from havel.gateway.jsontext import encode_json

RX = [
    {
        "gateway": "AA555A0000BEBC01",
        "time": "2026-05-04T10:00:00.123456Z",
        "rssi": -97.0,
        "snr": 6.25,
        "freq": 868.1,
        "chan": 0,
        "dr": "SF7BW125",
    }
]
AIR: dict[str, Any] = {
    "temperature": 21.5,
    "humidity": 48.5,
    "pressure": 1013.2,
    "pm2_5": 7.4,
    "pm10": 12.1,
    "co2": 612,
    "battery": 3680,
    "faults": {"pm": False, "thp": False, "co2": False},
}
UNITS = {
    "temperature": "Cel",
    "humidity": "%",
    "pressure": "hPa",
    "pm2_5": "ug/m3",
    "pm10": "ug/m3",
    "co2": "[ppm]",
    "battery": "mV",
}


def message(data: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    return {
        "id": "70B3D57ED0010001-1-4711",
        "dev_eui": "70B3D57ED0010001",
        "name": "schule-1",
        "codec": "air",
        "fport": 1,
        "fcnt": 4711,
        "received_at": "2026-05-04T10:00:00.125Z",
        "rx": RX,
        "data": data,
        "units": UNITS,
        "warnings": warnings,
        "errors": [],
    }


MESSAGES = {
    "air reading": message(AIR, []),
    "air reading with a null": message(
        {**AIR, "pm2_5": None, "faults": {**AIR["faults"], "pm": True}}, ["pm2_5: reading absent or faulty"]
    ),
    "downlink status": {
        "id": "cmd-42",
        "dev_eui": "70B3D57ED0010001",
        "state": "acked",
        "fport": 10,
        "payload": "1003840000",
        "at": "2026-05-04T10:00:01Z",
    },
}


def stdlib(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def per_call_us(fn: Callable[[], object], seconds: float, rounds: int = 7) -> float:
    """CPU microseconds per call: calibrated to about seconds / rounds a round, best round kept."""
    n = 1
    while True:
        t0 = time.process_time()
        for _ in range(n):
            fn()
        dt = time.process_time() - t0
        if dt > seconds / rounds / 4:
            break
        n *= 2
    loops = max(1, int(n * (seconds / rounds) / dt))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(loops):
            fn()
        best = min(best, (time.process_time() - t0) / loops)
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.6, help="CPU time per measurement")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    result: dict[str, dict[str, float]] = {}
    for label, msg in MESSAGES.items():
        assert json.loads(encode_json(msg)) == json.loads(stdlib(msg))
        ours = per_call_us(functools.partial(encode_json, msg), args.seconds)
        ref = per_call_us(functools.partial(stdlib, msg), args.seconds)
        result[label] = {
            "encode_json_us": round(ours, 2),
            "json_dumps_us": round(ref, 2),
            "bytes": len(encode_json(msg).encode()),
        }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'message':28} {'bytes':>6} {'encode_json us':>15} {'json.dumps us':>14} {'ratio':>6}")
    for label, r in result.items():
        print(
            f"{label:28} {r['bytes']:>6} {r['encode_json_us']:>15.2f} {r['json_dumps_us']:>14.2f} "
            f"{r['json_dumps_us'] / r['encode_json_us']:>5.1f}x"
        )


if __name__ == "__main__":
    main()
