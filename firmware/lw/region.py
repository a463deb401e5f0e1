"""EU868 regional parameters (LoRaWAN Regional Parameters RP002-1.0.x, section "EU863-870").

Data, not logic: data rates, default channels, RX2, maximum payloads, TX power steps, sub-bands
with their ETSI EN 300 220 duty-cycle limits, and the time on air of a LoRa frame (AN1200.13).
"""

from micropython import const

# Tables are bytes (one object, no per-item heap objects): index them by DR or sub-band.
# DR -> spreading factor and bandwidth kHz; DR7 is FSK 50 kbit/s, which our radios do not use.
DR_SF = b"\x0c\x0b\x0a\x09\x08\x07\x07"
DR_BW = b"\x7d\x7d\x7d\x7d\x7d\x7d\xfa"
DR_MAX = const(6)
# Maximum MACPayload size M per DR ("repeater compatible" column: N + 8 bytes of FHDR/FPort)
MAX_MAC_PAYLOAD = b"\x3b\x3b\x3b\x7b\xe6\xe6\xe6"  # 59 59 59 123 230 230 230
# Maximum application payload N without FOpts
MAX_APP_PAYLOAD = b"\x33\x33\x33\x73\xde\xde\xde"  # 51 51 51 115 222 222 222

DEFAULT_CHANNELS_HZ = (868100000, 868300000, 868500000)
RX2_FREQ_HZ = const(869525000)
RX2_DR = const(0)
FREQ_MIN_HZ = const(863000000)
FREQ_MAX_HZ = const(870000000)
MAX_CHANNELS = const(16)
MAX_EIRP_DBM = const(16)  # TXPower 0 = MaxEIRP; TXPower n = MaxEIRP - 2n dB, n = 0..7
TX_POWER_MAX_INDEX = const(7)
MAX_RX1_DR_OFFSET = const(5)

RECEIVE_DELAY1_MS = const(1000)
JOIN_ACCEPT_DELAY1_MS = const(5000)
ADR_ACK_LIMIT = const(64)
ADR_ACK_DELAY = const(32)
ACK_TIMEOUT_MS = const(2000)  # +-1000 ms random, LoRaWAN 1.0.x

# Sub-bands with their ETSI EN 300 220 / RP002 duty-cycle limits (max airtime share = 1/divisor):
# 863-865 MHz 0.1 %, 865-868 1 %, 868-868.6 1 % (the three default channels), 868.7-869.2 0.1 %,
# 869.4-869.65 10 % (RX2 869.525 MHz), 869.7-870 1 %. Edges: low, high per band in 50 kHz steps
# above 863 MHz (multiplied out when used: small ints, no allocation).
_SB_BASE_HZ = const(863000000)
_SB_STEP_HZ = const(50000)
_SB_EDGES = b"\x00\x28\x28\x64\x64\x70\x72\x7c\x80\x85\x86\x8c"
SB_DIV = (1000, 100, 100, 1000, 10, 100)  # duty-cycle divisor per sub-band


def subband(freq_hz):
    """Index of the sub-band (into SB_DIV) holding freq_hz, or -1 when none may be used."""
    n = len(SB_DIV)
    for i in range(n):
        lo = _SB_BASE_HZ + _SB_STEP_HZ * _SB_EDGES[2 * i]
        hi = _SB_BASE_HZ + _SB_STEP_HZ * _SB_EDGES[2 * i + 1]
        if lo <= freq_hz < hi or (freq_hz == hi and i == n - 1):
            return i
    return -1


def tx_power_dbm(index):
    """EIRP in dBm of TXPower index 0..7."""
    return MAX_EIRP_DBM - 2 * index


def rx1_dr(up_dr, offset):
    """RX1 data rate for an uplink at up_dr with RX1DROffset (EU868: DR - offset, at least DR0)."""
    d = up_dr - offset
    return d if d > 0 else 0


def airtime_us(phy_len, sf, bw_khz=125, crc=True, preamble=8, cr=1, explicit_header=True, ldro=None):
    """Time on air of a LoRa frame in microseconds (Semtech AN1200.13), integer arithmetic only.

    LoRaWAN: CR 4/5 (cr=1), CRC on uplinks and off on downlinks, explicit header, 8 preamble
    symbols; low-data-rate optimisation on when the symbol time is >= 16 ms (SF11/SF12 at 125 kHz).
    """
    t_sym_ns = (1 << sf) * 1000000 // bw_khz  # symbol time in ns (exact for 125/250/500 kHz)
    if ldro is None:
        ldro = t_sym_ns >= 16000000
    de = 1 if ldro else 0
    ih = 0 if explicit_header else 1
    num = 8 * phy_len - 4 * sf + 28 + (16 if crc else 0) - 20 * ih
    den = 4 * (sf - 2 * de)
    n = (num + den - 1) // den if num > 0 else 0
    n_payload = 8 + n * (cr + 4)
    # preamble is (n + 4.25) symbols: count quarter symbols to stay in integers
    quarter_syms = (preamble * 4 + 17) + n_payload * 4
    return quarter_syms * t_sym_ns // 4000
