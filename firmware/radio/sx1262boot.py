"""SX1262 set-up after a reset (datasheet section 14.2/14.3): boot code that radio/sx1262.py's
init() loads for the call and releases after, so that it takes no heap while the node runs."""

import struct

from micropython import const

from radio.base import RadioError
from radio.sx1262 import TCXO_MV

_CMD_SET_STANDBY = const(0x80)  # as in radio/sx1262.py (const names are not importable)
_STDBY_RC = const(0x00)
_CMD_CALIBRATE = const(0x89)
_CMD_CALIBRATE_IMAGE = const(0x98)
_CMD_SET_BUFFER_BASE = const(0x8F)
_CMD_SET_DIO2_AS_RF_SWITCH = const(0x9D)
_CMD_SET_DIO3_AS_TCXO = const(0x97)
_CMD_SET_DIO_IRQ_PARAMS = const(0x08)
_CMD_SET_PACKET_TYPE = const(0x8A)
_CMD_SET_PA_CONFIG = const(0x95)
_CMD_SET_REGULATOR_MODE = const(0x96)
_IRQ_USED = const(0x0263)  # TxDone | RxDone | HeaderErr | CrcErr | Timeout, all on DIO1
_PACKET_TYPE_LORA = const(0x01)
_REG_LORA_SYNC_WORD = const(0x0740)  # 2 bytes; 0x3444 public (LoRaWAN), 0x1424 private
_REG_TX_CLAMP = const(0x08D8)  # errata 15.2: bits 4..1 = 1111 against PA over-voltage on mismatch


def init(r):
    """Hardware reset and the configuration LoRaWAN needs, on the SX1262 driver `r`."""
    r.reset_pin.value(0)
    r.clock.sleep_ms(2)  # NRESET low >= 100 us
    r.reset_pin.value(1)
    r.clock.sleep_ms(5)
    r._asleep = False
    r._wait_busy()
    r.command(_CMD_SET_STANDBY, bytes((_STDBY_RC,)))
    if r.tcxo_mv:
        # TCXO supply on DIO3 with a 5 ms start-up (320 steps of 15.625 us = 5 ms), then a full
        # calibration: calibration needs the 32 MHz clock, which the TCXO now provides
        r.command(_CMD_SET_DIO3_AS_TCXO, bytes((TCXO_MV.index(r.tcxo_mv),)) + b"\x00\x01\x40")
        r.command(_CMD_CALIBRATE, b"\x7f")
        r.clock.sleep_ms(4)  # calibration takes 3.5 ms (BUSY high meanwhile)
    r.command(_CMD_SET_REGULATOR_MODE, b"\x01")  # DC-DC
    if r.rf_switch_dio2:
        r.command(_CMD_SET_DIO2_AS_RF_SWITCH, b"\x01")
    r.command(_CMD_SET_PACKET_TYPE, bytes((_PACKET_TYPE_LORA,)))
    r.command(_CMD_CALIBRATE_IMAGE, b"\xd7\xdb")  # 863-870 MHz band (table 9-2)
    r.command(_CMD_SET_BUFFER_BASE, b"\x00\x00")
    r.write_register(_REG_LORA_SYNC_WORD, b"\x34\x44")
    # PA for up to +22 dBm conducted on the SX1262 (table 13-21: duty 4, hpMax 7, SX1262, lut 1)
    r.command(_CMD_SET_PA_CONFIG, b"\x04\x07\x00\x01")
    clamp = r.read_register(_REG_TX_CLAMP)[0]
    r.write_register(_REG_TX_CLAMP, bytes((clamp | 0x1E,)))
    irq = struct.pack(">HHHH", _IRQ_USED, _IRQ_USED, 0, 0)
    r.command(_CMD_SET_DIO_IRQ_PARAMS, irq)
    if r.device_errors() & 0x0020:
        raise RadioError("SX1262 XOSC start error: check the TCXO setting of the board")
