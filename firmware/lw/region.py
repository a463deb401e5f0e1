"""EU868 regional parameters (LoRaWAN Regional Parameters RP002-1.0.x, section "EU863-870").

Data, not logic: data rates, default channels, RX2, maximum payloads, TX power steps, sub-bands
with their ETSI EN 300 220 duty-cycle limits, and the time on air of a LoRa frame (AN1200.13).
"""
from micropython import const

# DR -> (spreading factor, bandwidth kHz); DR7 is FSK 50 kbit/s, which our radios do not use.
DATA_RATES = ((12, 125), (11, 125), (10, 125), (9, 125), (8, 125), (7, 125), (7, 250))
DR_MAX = const(6)
# Maximum MACPayload size M per DR ("repeater compatible" column: N + 8 bytes of FHDR/FPort)
MAX_MAC_PAYLOAD = (59, 59, 59, 123, 230, 230, 230)
# Maximum application payload N without FOpts
MAX_APP_PAYLOAD = (51, 51, 51, 115, 222, 222, 222)

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

# (low Hz, high Hz, duty-cycle divisor: max airtime share = 1/divisor), ETSI EN 300 220 / RP002
SUBBANDS = (
    (863000000, 865000000, 1000),  # 0.1 %
    (865000000, 868000000, 100),  # 1 %
    (868000000, 868600000, 100),  # 1 %: the three default channels
    (868700000, 869200000, 1000),  # 0.1 %
    (869400000, 869650000, 10),  # 10 %: RX2 869.525 MHz
    (869700000, 870000000, 100),  # 1 %
)


def subband(freq_hz):
    """Index into SUBBANDS of the sub-band holding freq_hz, or -1 when none may be used."""
    for i in range(len(SUBBANDS)):
        b = SUBBANDS[i]
        if b[0] <= freq_hz < b[1] or (freq_hz == b[1] and i == len(SUBBANDS) - 1):
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
