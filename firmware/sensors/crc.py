"""CRC-8 variants used by the sensors (no tables: a few bytes per reading, RAM matters more)."""


def crc8_sensirion(buf, start=0, end=None):
    """Sensirion CRC-8 (SHT3x datasheet 4.12, SCD4x 3.11): poly 0x31, init 0xFF, no reflection.

    Check value: 0xBEEF -> 0x92.
    """
    if end is None:
        end = len(buf)
    crc = 0xFF
    for i in range(start, end):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x31) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def crc8_maxim(buf, start=0, end=None):
    """Dallas/Maxim 1-Wire CRC-8 (DS18B20 datasheet, "CRC generation"): x^8+x^5+x^4+1, LSB first.

    The CRC over the data plus its CRC byte is 0; note that all-zero data also has CRC 0.
    """
    if end is None:
        end = len(buf)
    crc = 0
    for i in range(start, end):
        b = buf[i]
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc
