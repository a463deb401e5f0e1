"""The generated global_conf.json of every board, checked key by key against what the sx1302_hal packet
forwarder reads (lora_pkt_fwd.c 2.1.0, parse_SX130x_configuration / parse_gateway_configuration), and its
channel plan against Havel's EU868 region data."""

from __future__ import annotations

from typing import Any

import pytest

from havel.codecs.lorawan import eu868
from havel.gateway.config import UdpConfig
from havel.gateway.network import joins
from havel.gateway.network.joins import CFLIST_HZ
from havel.gateway.setup import pktfwd
from havel.gateway.setup.boards import board_names, load_board, radio_calibration

EUI = 0xB827EBFFFE6C1D2A

# Every key the forwarder reads, with the JSON type it accepts ("*" = any key below an array index).
# A key outside this table would be ignored by the forwarder without a word: a typo there is a silent bug.
N, B, S, O, A = "number", "bool", "string", "object", "array"  # noqa: E741 (JSON type names)
RADIO = {
    "enable": B,
    "type": S,
    "freq": N,
    "rssi_offset": N,
    "rssi_tcomp": O,
    "single_input_mode": B,
    "tx_enable": B,
    "tx_freq_min": N,
    "tx_freq_max": N,
    "tx_gain_lut": A,
}
READS: dict[str, str] = {
    "SX130x_conf": O,
    "gateway_conf": O,
    "debug_conf": O,
    "SX130x_conf.com_type": S,
    "SX130x_conf.com_path": S,
    "SX130x_conf.lorawan_public": B,
    "SX130x_conf.clksrc": N,
    "SX130x_conf.full_duplex": B,
    "SX130x_conf.antenna_gain": N,
    "SX130x_conf.fine_timestamp": O,
    "SX130x_conf.fine_timestamp.enable": B,
    "SX130x_conf.fine_timestamp.mode": S,
    "SX130x_conf.sx1261_conf": O,
    "SX130x_conf.sx1261_conf.spi_path": S,
    "SX130x_conf.sx1261_conf.rssi_offset": N,
    "SX130x_conf.sx1261_conf.spectral_scan": O,
    "SX130x_conf.sx1261_conf.spectral_scan.enable": B,
    "SX130x_conf.sx1261_conf.spectral_scan.freq_start": N,
    "SX130x_conf.sx1261_conf.spectral_scan.nb_chan": N,
    "SX130x_conf.sx1261_conf.spectral_scan.nb_scan": N,
    "SX130x_conf.sx1261_conf.spectral_scan.pace_s": N,
    "SX130x_conf.sx1261_conf.lbt": O,
    "SX130x_conf.sx1261_conf.lbt.enable": B,
    "SX130x_conf.sx1261_conf.lbt.rssi_target": N,
    "SX130x_conf.sx1261_conf.lbt.channels": A,
    **{f"SX130x_conf.radio_{i}": O for i in range(2)},
    **{f"SX130x_conf.radio_{i}.{k}": t for i in range(2) for k, t in RADIO.items()},
    **{f"SX130x_conf.radio_{i}.rssi_tcomp.coeff_{c}": N for i in range(2) for c in "abcde"},
    **{
        f"SX130x_conf.radio_{i}.tx_gain_lut.*.{k}": N
        for i in range(2)
        for k in ("rf_power", "pa_gain", "pwr_idx", "dig_gain", "dac_gain", "mix_gain")
    },
    **{f"SX130x_conf.radio_{i}.tx_gain_lut.*": O for i in range(2)},
    "SX130x_conf.chan_multiSF_All": O,
    "SX130x_conf.chan_multiSF_All.spreading_factor_enable": A,
    **{f"SX130x_conf.chan_multiSF_{i}": O for i in range(8)},
    **{
        f"SX130x_conf.chan_multiSF_{i}.{k}": t
        for i in range(8)
        for k, t in (("enable", B), ("radio", N), ("if", N))
    },
    "SX130x_conf.chan_Lora_std": O,
    **{
        f"SX130x_conf.chan_Lora_std.{k}": t
        for k, t in (
            ("enable", B),
            ("radio", N),
            ("if", N),
            ("bandwidth", N),
            ("spread_factor", N),
            ("implicit_hdr", B),
            ("implicit_payload_length", N),
            ("implicit_crc_en", B),
            ("implicit_coderate", N),
        )
    },
    "SX130x_conf.chan_FSK": O,
    **{
        f"SX130x_conf.chan_FSK.{k}": t
        for k, t in (
            ("enable", B),
            ("radio", N),
            ("if", N),
            ("bandwidth", N),
            ("freq_deviation", N),
            ("datarate", N),
        )
    },
    **{
        f"gateway_conf.{k}": t
        for k, t in (
            ("gateway_ID", S),
            ("server_address", S),
            ("serv_port_up", N),
            ("serv_port_down", N),
            ("keepalive_interval", N),
            ("stat_interval", N),
            ("push_timeout_ms", N),
            ("forward_crc_valid", B),
            ("forward_crc_error", B),
            ("forward_crc_disabled", B),
            ("gps_tty_path", S),
            ("ref_latitude", N),
            ("ref_longitude", N),
            ("ref_altitude", N),
            ("fake_gps", B),
            ("beacon_period", N),
            ("beacon_freq_hz", N),
            ("beacon_freq_nb", N),
            ("beacon_freq_step", N),
            ("beacon_datarate", N),
            ("beacon_bw_hz", N),
            ("beacon_power", N),
            ("beacon_infodesc", N),
            ("autoquit_threshold", N),
        )
    },
}
# What the forwarder refuses to start without (ERROR ... must be configured), or needs for Havel to work.
REQUIRED = [
    "SX130x_conf.com_type",
    "SX130x_conf.com_path",
    "gateway_conf.gateway_ID",
    "gateway_conf.server_address",
    "gateway_conf.serv_port_up",
    "gateway_conf.serv_port_down",
]


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return B
    if isinstance(v, int | float):
        return N
    return {str: S, dict: O, list: A}[type(v)]


def _walk(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            path = f"{prefix}.{k}" if prefix else k
            out.append((path, v))
            out += _walk(v, path)
    elif isinstance(doc, list) and prefix.endswith("tx_gain_lut"):
        for v in doc:
            out.append((f"{prefix}.*", v))
            out += _walk(v, f"{prefix}.*")
    return out


@pytest.mark.parametrize("name", board_names())
def test_every_key_is_one_the_forwarder_reads_with_its_type(name: str) -> None:
    conf = pktfwd.global_conf(load_board(name), EUI, 1700)
    seen = dict(_walk(conf))
    for path, value in seen.items():
        assert path in READS, f"{name}: the forwarder does not read {path}"
        assert _json_type(value) == READS[path], f"{name}: {path} is a {_json_type(value)}, not {READS[path]}"
    for path in REQUIRED:
        assert path in seen, f"{name}: {path} is missing"


@pytest.mark.parametrize("name", board_names())
def test_board_specific_values(name: str) -> None:
    board = load_board(name)
    sx = pktfwd.global_conf(board, EUI, 1799)["SX130x_conf"]
    gw = pktfwd.global_conf(board, EUI, 1799)["gateway_conf"]
    assert sx["com_type"] == board.interface.upper()
    assert (
        sx["com_path"] == board.com_path == ("/dev/ttyACM0" if board.interface == "usb" else "/dev/spidev0.0")
    )
    assert ("sx1261_conf" in sx) == bool(board.sx1261_spi_path)
    assert sx["lorawan_public"] is True  # sync word 0x34 of public LoRaWAN networks
    assert gw["gateway_ID"] == "B827EBFFFE6C1D2A"
    assert gw["server_address"] == "127.0.0.1" and gw["serv_port_up"] == gw["serv_port_down"] == 1799
    # PULL_DATA keeps the downlink path open and the daemon's silence alarm quiet
    assert gw["keepalive_interval"] < UdpConfig().silent_after_s
    # the forwarder sends only frames with a valid CRC: anything else is noise to the network server
    assert (gw["forward_crc_valid"], gw["forward_crc_error"], gw["forward_crc_disabled"]) == (
        True,
        False,
        False,
    )


@pytest.mark.parametrize("name", board_names())
def test_channels_are_havels_eu868_plan_within_each_radios_band(name: str) -> None:
    sx = pktfwd.global_conf(load_board(name), EUI, 1700)["SX130x_conf"]
    limit = radio_calibration("SX1250")["if_limit_hz"]
    heard = []
    for i in range(8):
        ch = sx[f"chan_multiSF_{i}"]
        if ch["enable"]:
            radio = sx[f"radio_{ch['radio']}"]
            assert radio["enable"] is True
            assert abs(ch["if"]) + 125_000 // 2 <= limit, f"channel {i} is outside radio {ch['radio']}'s band"
            heard.append(radio["freq"] + ch["if"])
    assert sorted(heard) == sorted(set(eu868.DEFAULT_CHANNELS_HZ) | set(CFLIST_HZ))
    assert sx["chan_multiSF_All"]["spreading_factor_enable"] == [7, 8, 9, 10, 11, 12]  # DR0..DR5
    assert sx["chan_Lora_std"]["enable"] is False and sx["chan_FSK"]["enable"] is False
    tx = [sx[f"radio_{i}"] for i in range(2) if sx[f"radio_{i}"]["tx_enable"]]
    assert len(tx) == 1  # downlinks: RX1 on the uplink channel, RX2 on 869.525 MHz
    assert tx[0]["tx_freq_min"] <= min(heard) and tx[0]["tx_freq_max"] >= eu868.RX2_FREQ_HZ
    assert max(e["rf_power"] for e in tx[0]["tx_gain_lut"]) >= 16  # EU868 MaxEIRP with a 0 dBi antenna


def test_plan_follows_the_network_servers_cflist(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan is derived, not copied: with another CFList the forwarder listens elsewhere."""
    monkeypatch.setattr(joins, "CFLIST_HZ", [867_100_000, 867_300_000])
    sx = pktfwd.global_conf(load_board("rak2287_pihat"), EUI, 1700)["SX130x_conf"]
    heard = sorted(
        sx[f"radio_{c['radio']}"]["freq"] + c["if"]
        for c in (sx[f"chan_multiSF_{i}"] for i in range(8))
        if c["enable"]
    )
    assert heard == [867_100_000, 867_300_000, 868_100_000, 868_300_000, 868_500_000]
    assert [sx[f"chan_multiSF_{i}"]["enable"] for i in range(8)].count(False) == 3


def test_a_plan_wider_than_two_radios_is_refused() -> None:
    from havel.errors import ConfigError

    with pytest.raises(ConfigError):
        pktfwd.radio_plan([863_100_000, 866_000_000, 869_900_000], 800_000)
