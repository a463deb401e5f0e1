"""What every radio driver provides to the MAC, and what they share.

    transmit(buf, freq_hz, sf, bw_khz, power_dbm) -> TX-done time (clock ms)
    receive(freq_hz, sf, bw_khz, timeout_ms) -> bytes or None   (inverted IQ: LoRaWAN downlink)
    sleep()
    rssi, snr   (of the last frame received)

LoRaWAN settings are fixed here: CR 4/5, 8-symbol preamble, explicit header, public sync word,
CRC on uplinks; downlinks are received with inverted IQ and without requiring a CRC.
"""

from micropython import const

PREAMBLE_SYMS = const(8)
POLL_MS = const(1)  # busy-wait step while waiting for a DIO line


class RadioError(Exception):
    """The chip did not answer or did not finish in time (wiring, power, TCXO, or a dead chip)."""


def ldro(sf, bw_khz):
    """Low-data-rate optimisation: required when a symbol lasts 16 ms or more."""
    return (1 << sf) * 1000 // bw_khz >= 16000


def wait_pin(pin, level, clock, timeout_ms, what):
    """Wait until pin reads level, sleeping POLL_MS steps on the clock; RadioError on timeout.
    Returns the clock time at which the level was seen."""
    deadline = clock.now_ms() + timeout_ms
    while pin.value() != level:
        if clock.now_ms() >= deadline:
            raise RadioError(what)
        clock.sleep_ms(POLL_MS)
    return clock.now_ms()
