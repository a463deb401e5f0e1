"""The Semtech ``sx1302_hal`` packet forwarder's ``global_conf.json`` for Havel's EU868 channel plan.

The plan is not a second copy: the uplink channels are the region's three default channels
(:data:`havel.codecs.lorawan.eu868.DEFAULT_CHANNELS_HZ`) plus the five the network server hands out in
every join-accept's CFList (:data:`havel.gateway.netserver.CFLIST_HZ`). They are spread over the two
SX1250 radios so that each channel lies within the radio's receive bandwidth. The forwarder sends to the
gateway daemon on 127.0.0.1 at the daemon's GWMP port.

Keys and types are those ``lora_pkt_fwd.c`` (sx1302_hal 2.1.0) reads in ``parse_SX130x_configuration``
and ``parse_gateway_configuration``; tests/gateway/setup checks them key by key.
"""

from __future__ import annotations

from typing import Any

from havel.codecs.lorawan import eu868
from havel.errors import ConfigError
from havel.gateway.network import joins as netserver
from havel.gateway.setup.boards import Board, radio_calibration

MULTI_SF_CHANNELS = 8  # the SX1302's multi-SF demodulators
RADIOS = 2
CHANNEL_BW_HZ = 125_000


def uplink_channels_hz() -> list[int]:
    """Havel's EU868 uplink channels: the default three and the CFList five, in order of frequency."""
    return sorted(set(eu868.DEFAULT_CHANNELS_HZ) | set(netserver.CFLIST_HZ))


def radio_plan(channels_hz: list[int], if_limit_hz: int) -> list[tuple[int, list[int]]]:
    """Group channels onto radios: [(centre_hz, [channel_hz, ...]), ...], each channel's IF plus half its
    bandwidth within ``if_limit_hz`` of the centre. ConfigError when the plan does not fit the chip."""
    if len(channels_hz) > MULTI_SF_CHANNELS:
        raise ConfigError(f"{len(channels_hz)} channels, but the SX1302 has {MULTI_SF_CHANNELS} demodulators")
    reach = if_limit_hz - CHANNEL_BW_HZ // 2  # farthest a channel's centre may lie from the radio's
    chans = sorted(channels_hz)
    # Both radios when there is more than one channel, split where the larger half-span is smallest: the
    # SX1250's sensitivity falls off towards the edges of its receive band.
    splits = [(chans,)] if len(chans) < 2 else [(chans[:k], chans[k:]) for k in range(1, len(chans))]
    best = min(splits, key=lambda groups: max(g[-1] - g[0] for g in groups))
    for g in best:
        if (g[-1] - g[0]) / 2 > reach:
            raise ConfigError(
                f"channels {g[0]}..{g[-1]} Hz do not fit one radio's receive band (+-{reach} Hz)",
                hint=f"the concentrator has {RADIOS} radios",
            )
    groups = list(best)
    # centre on a 100 kHz grid, as the forwarder's examples do
    return [(round((g[0] + g[-1]) / 2 / 100_000) * 100_000, g) for g in groups]


def global_conf(board: Board, gateway_eui: int, udp_port: int) -> dict[str, Any]:
    """The whole ``global_conf.json`` document for one board."""
    cal = radio_calibration(board.radio)
    plan = radio_plan(uplink_channels_hz(), int(cal["if_limit_hz"]))
    sx: dict[str, Any] = {
        "com_type": board.interface.upper(),
        "com_path": board.com_path,
        "lorawan_public": True,
        "clksrc": 0,  # radio_0 supplies the 32 MHz clock on all supported boards
        "antenna_gain": 0,
        "full_duplex": False,
        # needs a GNSS PPS and an SX1303; off so that every board starts the same way
        "fine_timestamp": {"enable": False, "mode": "all_sf"},
    }
    if board.sx1261_spi_path:
        # spectral scan and listen-before-talk stay off: EU868 has no LBT requirement
        sx["sx1261_conf"] = {
            "spi_path": board.sx1261_spi_path,
            "rssi_offset": 0,
            "spectral_scan": {
                "enable": False,
                "freq_start": plan[0][1][0],
                "nb_chan": 8,
                "nb_scan": 2000,
                "pace_s": 10,
            },
            "lbt": {"enable": False, "rssi_target": -70, "channels": []},
        }
    tx_lo = min(lo for lo, _, _ in eu868.SUBBANDS)
    tx_hi = max(hi for _, hi, _ in eu868.SUBBANDS)
    for i in range(RADIOS):
        centre = plan[i][0] if i < len(plan) else plan[0][0]
        radio: dict[str, Any] = {
            "enable": i < len(plan),
            "type": board.radio,
            "freq": centre,
            "rssi_offset": cal["rssi_offset"],
            "rssi_tcomp": dict(cal["rssi_tcomp"]),
            "tx_enable": i == 0,  # downlinks (RX1 on the uplink channel, RX2 869.525 MHz) go out on radio 0
        }
        if i == 0:
            radio.update(
                tx_freq_min=tx_lo, tx_freq_max=tx_hi, tx_gain_lut=[dict(e) for e in cal["tx_gain_lut"]]
            )
        sx[f"radio_{i}"] = radio
    sx["chan_multiSF_All"] = {
        "spreading_factor_enable": sorted({sf for sf, bw in eu868.DATA_RATES.values() if bw == 125})
    }
    n = 0
    for r, (centre, chans) in enumerate(plan):
        for ch in chans:
            sx[f"chan_multiSF_{n}"] = {"enable": True, "radio": r, "if": ch - centre}
            n += 1
    for k in range(n, MULTI_SF_CHANNELS):
        sx[f"chan_multiSF_{k}"] = {"enable": False}
    # Havel's plan has no DR6 (SF7/250 kHz) or DR7 (FSK) channel: the nodes never use one
    sx["chan_Lora_std"] = {"enable": False}
    sx["chan_FSK"] = {"enable": False}
    gw = {
        "gateway_ID": f"{gateway_eui:016X}",
        "server_address": "127.0.0.1",
        "serv_port_up": udp_port,
        "serv_port_down": udp_port,
        "keepalive_interval": 10,  # PULL_DATA every 10 s: well inside the daemon's silence alarm
        "stat_interval": 30,
        "push_timeout_ms": 100,
        "forward_crc_valid": True,
        "forward_crc_error": False,
        "forward_crc_disabled": False,
        "beacon_period": 0,  # class B beacons off
    }
    return {"SX130x_conf": sx, "gateway_conf": gw}
