"""Power-management chips that gate the radio's supply (LILYGO T-Beam v1.x), over I2C at 0x34.

The T-Beam's SX1262/SX1276 is powered from a PMU rail that is off until firmware enables it:
  AXP192 (T-Beam v1.0/v1.1): LoRa on LDO2. Reg 0x12 "power output control" bit 2 = LDO2 on;
    reg 0x28 bits 7-4 = LDO2 voltage, 1.8..3.3 V in 100 mV steps.
  AXP2101 (T-Beam v1.2): LoRa on ALDO2. Reg 0x90 "LDO on/off control 0" bit 1 = ALDO2 on;
    reg 0x93 = ALDO2 voltage, 0.5..3.5 V in 100 mV steps (bits 4-0).
The chip is told apart by reg 0x03 (IC type): 0x03 AXP192, 0x4A AXP2101. Registers after the
X-Powers datasheets (AXP192 v1.1, AXP2101 v1.0) and LILYGO's board support; confirm per revision.
Read-modify-write, so other rails (GPS, OLED, the ESP32 itself on DC-DC) keep their state.
"""

from micropython import const

ADDR = const(0x34)
_REG_IC_TYPE = const(0x03)
_AXP192 = const(0x03)
_AXP2101 = const(0x4A)
_AXP192_POWER_OUT = const(0x12)
_AXP192_LDO23_V = const(0x28)
_AXP2101_LDO_ON0 = const(0x90)
_AXP2101_ALDO2_V = const(0x93)


def enable_lora_rail(i2c, mv=3300):
    """Switch the radio's 3.3 V rail on. Returns the chip name; OSError when no PMU answers,
    ValueError for an unknown chip."""
    ic = i2c.readfrom_mem(ADDR, _REG_IC_TYPE, 1)[0]
    b = bytearray(1)
    if ic == _AXP192:
        v = i2c.readfrom_mem(ADDR, _AXP192_LDO23_V, 1)[0]
        b[0] = (v & 0x0F) | (((mv - 1800) // 100) << 4)
        i2c.writeto_mem(ADDR, _AXP192_LDO23_V, b)
        b[0] = i2c.readfrom_mem(ADDR, _AXP192_POWER_OUT, 1)[0] | 0x04
        i2c.writeto_mem(ADDR, _AXP192_POWER_OUT, b)
        return "axp192"
    if ic == _AXP2101:
        v = i2c.readfrom_mem(ADDR, _AXP2101_ALDO2_V, 1)[0]
        b[0] = (v & 0xE0) | ((mv - 500) // 100)
        i2c.writeto_mem(ADDR, _AXP2101_ALDO2_V, b)
        b[0] = i2c.readfrom_mem(ADDR, _AXP2101_LDO_ON0, 1)[0] | 0x02
        i2c.writeto_mem(ADDR, _AXP2101_LDO_ON0, b)
        return "axp2101"
    raise ValueError("unknown PMU (IC type 0x%02x at 0x34)" % ic)
