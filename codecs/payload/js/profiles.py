"""Device profiles for Havel nodes: ChirpStack v4 and The Things Stack's device repository.

Both say the same facts about a node: class A, OTAA, EU868, its LoRaWAN MAC and regional-parameters
versions, its codec and ports, and carry the generated formatter. The MAC version follows the firmware
(firmware/lw/mac.py: LoRaWAN 1.0.x class A with the 1.0.4 rules that matter to a server: DevNonce a
persisted counter, JoinNonce checked to increase), so the profiles say 1.0.4 with RP002-1.0.1.

The device-repository files are YAML; they are written as JSON, which is YAML too (no YAML library needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from havel.codecs.payload.base import NodeCodec

VENDOR_ID = "havel"
PROFILE_ID = "havel-node-profile"
MAC_VERSION = "1.0.4"
REGIONAL_PARAMETERS = "RP002-1.0.1"
UPLINK_INTERVAL_S = 900  # the firmware's default reporting interval (firmware/config.py)
MAX_EIRP_DBM = 16  # EU868, what the MAC asks the radio for

_VECTORS = Path(__file__).resolve().parents[2] / "vectors"

# The Things Stack's sensor vocabulary, found in the keys of a node's ports (first match per key)
_SENSOR_WORDS = (
    ("pm2_5", "pm2.5"),
    ("pm10", "pm10"),
    ("co2", "co2"),
    ("moisture", "moisture"),
    ("humidity", "humidity"),
    ("pressure", "pressure"),
    ("temperature", "temperature"),
    ("probes", "temperature"),
    ("level", "level"),
    ("distance", "distance"),
    ("valve", "smart valve"),
    ("water", "water"),
    ("battery", "battery"),
)
_COMMON_DOWNLINKS = {"set_interval", "request_status", "reboot"}


def title(codec: NodeCodec) -> str:
    """The model's name ("Air node"): the device repository wants no vendor name in it."""
    return f"{codec.name.replace('-', ' ').replace('_', ' ').capitalize()} node"


def sensors(codec: NodeCodec) -> list[str]:
    """What the node measures, in The Things Stack's words, from the keys of its uplinks."""
    out: list[str] = []
    for port in codec.ports:
        if port.direction != "up":
            continue
        for key in port.keys:
            word = next((w for part, w in _SENSOR_WORDS if part in key), None)
            if word is not None and word not in out:
                out.append(word)
    return out


def is_actuator(codec: NodeCodec) -> bool:
    """A node with downlinks of its own (beyond interval, status and reboot) drives something."""
    return any(p.direction == "down" and p.name not in _COMMON_DOWNLINKS for p in codec.ports)


def model_id(codec: NodeCodec) -> str:
    return f"havel-{codec.name}"


def ports_text(codec: NodeCodec) -> str:
    """The ports as "up 1 readings, up 2 status, down 10 set_interval, ..." for descriptions and tags."""
    return ", ".join(f"{p.direction} {p.fport} {p.name}" for p in codec.ports)


def chirpstack_profile(codec: NodeCodec, script: str) -> dict[str, Any]:
    """The body of ChirpStack v4's ``POST /api/device-profiles`` (fill in ``tenantId``)."""
    tags = {"vendor": VENDOR_ID, "codec": codec.name, "payload_format_version": "1"}
    tags.update({f"fport_{p.fport}_{p.direction}": p.name for p in codec.ports})
    return {
        "deviceProfile": {
            "tenantId": "",
            "name": f"Havel {codec.name}",
            "description": f"{title(codec)}: {codec.summary}. Ports: {ports_text(codec)}.",
            "region": "EU868",
            "macVersion": "LORAWAN_" + MAC_VERSION.replace(".", "_"),
            "regParamsRevision": REGIONAL_PARAMETERS.replace("-", "_").replace(".", "_"),
            "adrAlgorithmId": "default",
            "payloadCodecRuntime": "JS",
            "payloadCodecScript": script,
            "flushQueueOnActivate": True,
            "uplinkInterval": UPLINK_INTERVAL_S,
            "deviceStatusReqInterval": 1,
            "supportsOtaa": True,
            "supportsClassB": False,
            "supportsClassC": False,
            "tags": tags,
            "autoDetectMeasurements": True,
        }
    }


def _vectors(codec: NodeCodec) -> list[dict[str, Any]]:
    path = _VECTORS / f"{codec.name}.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _examples(codec: NodeCodec) -> dict[str, list[dict[str, Any]]]:
    """The shared vectors as the device repository's codec examples (what the formatter answers)."""
    out: dict[str, list[dict[str, Any]]] = {"up": [], "encode": [], "down": []}
    for v in _vectors(codec):
        raw = list(bytes.fromhex(v["bytes"]))
        result = codec.decode(bytes(raw), v["fport"], v["direction"])
        decoded = {"data": result["data"], "warnings": result["warnings"] + result["errors"]}
        example = {
            "description": v["description"],
            "input": {"fPort": v["fport"], "bytes": raw},
            "output": decoded,
        }
        if v["direction"] == "up":
            out["up"].append(example)
            continue
        out["down"].append(example)
        out["encode"].append(
            {
                "description": v["description"],
                "input": {"data": v["data"]},
                "output": {"bytes": raw, "fPort": v["fport"]},
            }
        )
    return out


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def tts_repository(codecs: list[NodeCodec], scripts: dict[str, str]) -> dict[str, str]:
    """The device-repository files (vendor/havel/...) of ``codecs``: path -> text."""
    base = f"vendor/{VENDOR_ID}"
    files: dict[str, str] = {
        f"{base}/index.yaml": _dump({"endDevices": [model_id(c) for c in codecs]}),
        f"{base}/{PROFILE_ID}.yaml": _dump(
            {
                "macVersion": MAC_VERSION,
                "regionalParametersVersion": REGIONAL_PARAMETERS,
                "supportsJoin": True,
                "maxEIRP": MAX_EIRP_DBM,
                "supports32bitFCnt": True,
                "supportsClassB": False,
                "supportsClassC": False,
            }
        ),
    }
    for codec in codecs:
        model = model_id(codec)
        js = f"{model}.js"
        examples = _examples(codec)
        files[f"{base}/{js}"] = scripts[codec.name]
        files[f"{base}/{model}-codec.yaml"] = _dump(
            {
                "uplinkDecoder": {"fileName": js, "examples": examples["up"]},
                "downlinkEncoder": {"fileName": js, "examples": examples["encode"]},
                "downlinkDecoder": {"fileName": js, "examples": examples["down"]},
            }
        )
        files[f"{base}/{model}.yaml"] = _dump(
            {
                "name": title(codec),
                "description": f"{codec.summary}. Ports: {ports_text(codec)}.",
                "firmwareVersions": [
                    {
                        "version": "1",
                        "numeric": 1,
                        "profiles": {
                            "EU863-870": {
                                "id": PROFILE_ID,
                                "lorawanCertified": False,
                                "codec": f"{model}-codec",
                            }
                        },
                    }
                ],
                "devicetype": ["sensor", "actuator"] if is_actuator(codec) else ["sensor"],
                "sensors": sensors(codec),
                "keyProvisioning": ["custom"],
                "keyProgramming": ["serial"],
                "firmwareProgramming": ["serial"],
            }
        )
    return files
