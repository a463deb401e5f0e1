"""Time on air of a LoRa packet (Semtech AN1200.13, "LoRa Modem Designer's Guide", section 4).

T_sym = 2^SF / BW; T_preamble = (n_preamble + 4.25) T_sym;
n_payload = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) (CR + 4), 0).
Computed in exact fractions and rounded to whole microseconds, so check values match to the microsecond.
"""

from __future__ import annotations

from fractions import Fraction

from havel.errors import InputError

LORAWAN_OVERHEAD = 13  # MHDR 1 + FHDR 7 (no FOpts) + FPort 1 + MIC 4 around the application payload
# The lowest SNR at which the modem still demodulates, per spreading factor (SX1276 datasheet table 13):
# the floor that link margins (LinkCheckAns, ADR) are measured from.
DEMOD_SNR_DB: dict[int, float] = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}


def ldro_needed(sf: int, bw_khz: int) -> bool:
    """Low-data-rate optimisation as LoRaMac-node sets it: on when a symbol lasts 16 ms or more.

    That is SF11 and SF12 at 125 kHz (and SF12 at 250 kHz); 2^SF / BW >= 16 ms <=> 2^SF >= 16 * BW_kHz.
    """
    return (1 << sf) >= 16 * bw_khz


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
    """Time on air in microseconds of a PHY payload of ``phy_len`` bytes.

    ``cr`` is the coding rate index (1 = 4/5 .. 4 = 4/8); ``ldro`` None means automatic (SF11/12 at 125 kHz).
    LoRaWAN uplinks use crc=True, downlinks crc=False.
    """
    if not 7 <= sf <= 12:
        raise InputError(f"spreading factor {sf} is outside 7..12")
    if bw_khz not in (125, 250, 500):
        raise InputError(f"bandwidth {bw_khz} kHz is not one of 125, 250, 500")
    if not 1 <= cr <= 4:
        raise InputError(f"coding rate index {cr} is outside 1..4 (4/5..4/8)")
    if not 0 <= phy_len <= 255:
        raise InputError(f"PHY payload of {phy_len} bytes is outside 0..255")
    if not 6 <= preamble <= 65535:
        raise InputError(f"preamble of {preamble} symbols is outside 6..65535")
    de = ldro_needed(sf, bw_khz) if ldro is None else ldro
    t_sym_us = Fraction((1 << sf) * 1000, bw_khz)
    num = 8 * phy_len - 4 * sf + 28 + (16 if crc else 0) - (0 if explicit_header else 20)
    den = 4 * (sf - (2 if de else 0))
    n_payload = 8 + max(-(-num // den) * (cr + 4), 0)
    total = (Fraction(preamble) + Fraction(17, 4) + n_payload) * t_sym_us
    return round(total)


def pause_s(airtime_us_: int, duty: float) -> float:
    """Minimum silence after a frame under a duty-cycle limit: airtime x (1/duty - 1), in seconds."""
    if not 0 < duty <= 1:
        raise InputError(f"duty cycle {duty} is outside (0, 1]")
    return airtime_us_ / 1e6 * (1 / duty - 1)
