"""Devices in and out of the registry as files: the import format (JSON or CSV, the provisioning tool's
export), every record checked before any is stored, and the export in the same format."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from havel.codecs.lorawan.ids import eui_hex, parse_id_hex, parse_key
from havel.errors import InputError
from havel.gateway.network.sessions import Device, Session

EXPORT_FIELDS = (
    "name",
    "dev_eui",
    "join_eui",
    "app_key",
    "codec",
    "activation",
    "dev_addr",
    "nwk_s_key",
    "app_s_key",
)


def device_from_record(rec: dict[str, Any], *, where: str = "record") -> Device:
    """A :class:`Device` from one import record (keys of :data:`EXPORT_FIELDS`); InputError naming the
    field and the record."""

    def text(key: str) -> str | None:
        v = rec.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return str(v).strip()

    def need(key: str) -> str:
        v = text(key)
        if v is None:
            raise InputError(f"{where}: field '{key}' is missing")
        return v

    try:
        activation = need("activation").lower()
        name = need("name")
        dev_eui = parse_id_hex(need("dev_eui"), what=f"{where} dev_eui", size=8)
        codec = need("codec")
        if activation == "otaa":
            return Device(
                name=name,
                dev_eui=dev_eui,
                codec=codec,
                activation="otaa",
                join_eui=parse_id_hex(need("join_eui"), what=f"{where} join_eui", size=8),
                app_key=parse_key(need("app_key"), f"{where} app_key"),
            )
        if activation == "abp":
            session = Session(
                dev_addr=parse_id_hex(need("dev_addr"), what=f"{where} dev_addr", size=4),
                nwk_s_key=parse_key(need("nwk_s_key"), f"{where} nwk_s_key"),
                app_s_key=parse_key(need("app_s_key"), f"{where} app_s_key"),
            )
            join = text("join_eui")
            return Device(
                name=name,
                dev_eui=dev_eui,
                codec=codec,
                activation="abp",
                session=session,
                join_eui=parse_id_hex(join, what=f"{where} join_eui", size=8) if join else None,
            )
    except InputError:
        raise
    raise InputError(f"{where}: activation {rec.get('activation')!r} is not otaa or abp")


def parse_import(content: bytes | str, filename: str) -> list[Device]:
    """Devices from JSON (a list of objects) or CSV (header of the same names), every record checked
    before any is stored. The file is UTF-8 (a byte-order mark is allowed); a file that is not, JSON nested
    too deep to read, or CSV that cannot be read is an InputError, never a traceback."""
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{filename}: not UTF-8 text (byte {exc.start} is {content[exc.start : exc.start + 1]!r})",
                hint="save the file as UTF-8 (havel device export writes UTF-8)",
            ) from None
    else:
        text = content
    stripped = text.lstrip()
    records: list[dict[str, Any]]
    if filename.lower().endswith(".json") or stripped.startswith("["):
        try:
            data = json.loads(text)
        except RecursionError:
            raise InputError(f"{filename}: not valid JSON (nested too deep)") from None
        except ValueError as exc:
            raise InputError(f"{filename}: not valid JSON ({exc})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(f"{filename}: expected a JSON list of device objects")
        records = data
    else:
        try:
            reader = csv.DictReader(io.StringIO(text))
            if not reader.fieldnames or "dev_eui" not in reader.fieldnames:
                raise InputError(f"{filename}: CSV needs a header line with {', '.join(EXPORT_FIELDS)}")
            records = list(reader)
        except csv.Error as exc:  # a NUL byte, a field beyond the csv module's size limit
            raise InputError(f"{filename}: not readable CSV (line {reader.line_num}: {exc})") from None
    devices = [device_from_record(r, where=f"{filename} record {i + 1}") for i, r in enumerate(records)]
    seen: set[int] = set()
    for d in devices:
        if d.dev_eui in seen:
            raise InputError(f"{filename}: DevEUI {d.eui_hex} appears twice")
        seen.add(d.dev_eui)
    return devices


def format_export(devices: list[Device], fmt: str, *, show_keys: bool) -> str:
    """JSON or CSV text of the devices in the import format."""
    rows = [d.export(show_keys=show_keys) for d in devices]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(EXPORT_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def device_dict(dev: Device) -> dict[str, Any]:
    """A JSON-ready view without keys (for status output)."""
    d = asdict(dev)
    d.pop("app_key", None)
    d.pop("eui_hex", None)  # (shown as dev_eui)
    s = d.pop("session", None)
    d["dev_eui"] = dev.eui_hex
    d["join_eui"] = eui_hex(dev.join_eui) if dev.join_eui is not None else None
    d["dev_addr"] = f"{s['dev_addr']:08X}" if s else None
    d["fcnt_up"] = s["fcnt_up"] if s else None
    d["fcnt_down"] = s["fcnt_down"] if s else None
    return d
