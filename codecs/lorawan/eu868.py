"""EU863-870 regional parameters for LoRaWAN 1.0.x, as data (RP002-1.0.3 section 2.4; ETSI EN 300 220).

Only region constants live here; per-device channel state (CFList, NewChannelReq) belongs to its owner.
"""

from __future__ import annotations

import re

from havel.codecs.lorawan import airtime
from havel.errors import InputError

DEFAULT_CHANNELS_HZ: tuple[int, ...] = (868_100_000, 868_300_000, 868_500_000)  # RP002 2.4.2
RX2_FREQ_HZ = 869_525_000  # RP002 2.4.7 (RX2 at DR0; The Things Network uses DR3)
RX2_DR = 0
JOIN_DRS = range(0, 6)
RECEIVE_DELAY1_S, RECEIVE_DELAY2_S = 1, 2
JOIN_ACCEPT_DELAY1_S, JOIN_ACCEPT_DELAY2_S = 5, 6
ADR_ACK_LIMIT, ADR_ACK_DELAY = 64, 32
MAX_EIRP_DBM = 16  # TXPower 0; each index below takes 2 dB off (RP002 2.4.3)

# dr -> (sf, bw_khz) for the LoRa data rates (RP002 table 2.4.3). DR7 is FSK 50 kbit/s: no SF.
DATA_RATES: dict[int, tuple[int, int]] = {
    0: (12, 125),
    1: (11, 125),
    2: (10, 125),
    3: (9, 125),
    4: (8, 125),
    5: (7, 125),
    6: (7, 250),
}
FSK_DR = 7
FSK_BITRATE = 50_000

# Max MACPayload M and application payload N per DR, repeater compatible (RP002 table 2.4.6).
MAX_MAC_PAYLOAD: dict[int, int] = {0: 59, 1: 59, 2: 59, 3: 123, 4: 230, 5: 230, 6: 230, 7: 230}
MAX_APP_PAYLOAD: dict[int, int] = {0: 51, 1: 51, 2: 51, 3: 115, 4: 222, 5: 222, 6: 222, 7: 222}

# Duty-cycle sub-bands over one hour (ETSI EN 300 220, as LoRaMac-node's EU868 bands): (lo, hi, duty).
SUBBANDS: tuple[tuple[int, int, float], ...] = (
    (863_000_000, 865_000_000, 0.001),
    (865_000_000, 868_000_000, 0.01),
    (868_000_000, 868_600_000, 0.01),  # the three default channels
    (868_700_000, 869_200_000, 0.001),
    (869_400_000, 869_650_000, 0.10),  # RX2
    (869_700_000, 870_000_000, 0.01),
)
DUTY_CYCLES: tuple[float, ...] = (0.001, 0.01, 0.10)

_DATR = re.compile(r"^SF(\d{1,2})BW(\d{3})$")


def _check_dr(dr: int) -> None:
    if dr not in MAX_APP_PAYLOAD:
        raise InputError(f"EU868 has data rates 0..7, not {dr}")


_DR_OF_DATR: dict[str | int, int] = {}


def dr_from_datr(datr: str | int) -> int:
    """DR index from a packet forwarder's ``datr`` ("SF7BW125"; FSK as the number 50000)."""
    known = _DR_OF_DATR.get(datr)  # the few texts a network uses, looked up on every uplink
    if known is not None:
        return known
    if isinstance(datr, int) or str(datr).isdigit():
        if int(datr) == FSK_BITRATE:
            return FSK_DR
        raise InputError(f"datr {datr!r}: EU868 has FSK only at 50000 bit/s")
    match = _DATR.match(str(datr).strip().upper())
    if match:
        sf_bw = (int(match.group(1)), int(match.group(2)))
        for dr, value in DATA_RATES.items():
            if value == sf_bw:
                if len(_DR_OF_DATR) < 64:
                    _DR_OF_DATR[datr] = dr
                return dr
    raise InputError(f"datr {datr!r} is not an EU868 data rate", hint="e.g. SF7BW125 .. SF12BW125, SF7BW250")


def datr(dr: int) -> str:
    """The packet forwarder's ``datr`` text of a LoRa DR ("SF12BW125"); FSK (DR7) uses FSK_BITRATE."""
    _check_dr(dr)
    if dr == FSK_DR:
        raise InputError("DR7 is FSK: its datr is the number 50000, see FSK_BITRATE")
    sf, bw = DATA_RATES[dr]
    return f"SF{sf}BW{bw}"


def max_app_payload(dr: int) -> int:
    """Largest FRMPayload N at a DR without FOpts (repeater compatible)."""
    _check_dr(dr)
    return MAX_APP_PAYLOAD[dr]


def rx1_dr(uplink_dr: int, rx1_dr_offset: int) -> int:
    """Downlink DR of RX1 for an uplink DR and RX1DROffset 0..5 (RP002 2.4.7: max(DR - offset, 0))."""
    _check_dr(uplink_dr)
    if not 0 <= rx1_dr_offset <= 5:
        raise InputError(f"RX1DROffset {rx1_dr_offset} is outside 0..5")
    return max(uplink_dr - rx1_dr_offset, 0)


def tx_power_dbm(index: int) -> int:
    """EIRP of a LinkADRReq TXPower index 0..7 (MaxEIRP - 2 dB per step)."""
    if not 0 <= index <= 7:
        raise InputError(f"TXPower index {index} is outside 0..7")
    return MAX_EIRP_DBM - 2 * index


def subband(freq_hz: int) -> tuple[str, float]:
    """(name, duty cycle) of the sub-band a frequency lies in; InputError outside 863-870 MHz sub-bands."""
    for lo, hi, duty in SUBBANDS:
        if lo <= freq_hz <= hi:
            return f"{lo / 1e6:g}-{hi / 1e6:g} MHz", duty
    raise InputError(
        f"{freq_hz} Hz is not in an EU868 duty-cycle sub-band",
        hint="EU868 uses 863-870 MHz, default channels 868.1/868.3/868.5 MHz",
    )


def airtime_us(
    phy_len: int,
    sf: int,
    bw_khz: int = 125,
    *,
    cr: int = 1,
    preamble: int = 8,
    crc: bool = True,
    explicit_header: bool = True,
    ldro: bool | None = None,
) -> int:
    """Time on air in microseconds (see :func:`havel.codecs.lorawan.airtime.airtime_us`)."""
    return airtime.airtime_us(
        phy_len, sf, bw_khz, cr=cr, preamble=preamble, crc=crc, explicit_header=explicit_header, ldro=ldro
    )
