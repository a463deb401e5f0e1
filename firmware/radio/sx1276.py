"""Semtech SX1276/77/78/79 driver (datasheet rev 7, May 2020), LoRa mode only.

The SX127x is register driven: SPI address byte with bit 7 set writes, clear reads; bursts
auto-increment (except on RegFifo). LongRangeMode may only change in SLEEP. DIO0 signals RxDone
or TxDone as mapped in RegDioMapping1; the RX timeout is read from RegIrqFlags. TTGO LoRa32 and
T-Beam route the RF output to PA_BOOST. Pins and bus are passed in.
"""

from micropython import const

from radio.base import PREAMBLE_SYMS, RadioError, ldro, wait_pin

_REG_FIFO = const(0x00)
_REG_OP_MODE = const(0x01)
_REG_FRF_MSB = const(0x06)  # Frf = freq * 2^19 / 32 MHz, 3 bytes MSB first
_REG_PA_CONFIG = const(0x09)
_REG_OCP = const(0x0B)
_REG_LNA = const(0x0C)
_REG_FIFO_ADDR_PTR = const(0x0D)
_REG_FIFO_TX_BASE = const(0x0E)
_REG_FIFO_RX_BASE = const(0x0F)
_REG_FIFO_RX_CURRENT = const(0x10)
_REG_IRQ_FLAGS = const(0x12)
_REG_RX_NB_BYTES = const(0x13)
_REG_PKT_SNR = const(0x19)
_REG_PKT_RSSI = const(0x1A)
_REG_MODEM_CONFIG1 = const(0x1D)  # BW 7..4, CodingRate 3..1, ImplicitHeader 0
_REG_MODEM_CONFIG2 = const(0x1E)  # SF 7..4, TxContinuous 3, RxPayloadCrcOn 2, SymbTimeout 9..8
_REG_SYMB_TIMEOUT_LSB = const(0x1F)
_REG_PREAMBLE_MSB = const(0x20)
_REG_PAYLOAD_LENGTH = const(0x22)
_REG_MODEM_CONFIG3 = const(0x26)  # LowDataRateOptimize 3, AgcAutoOn 2
_REG_DETECT_OPTIMIZE = const(0x31)
_REG_INVERT_IQ = const(0x33)  # AN1200.24: 0x27 normal, 0x67 RX inverted
_REG_DETECT_THRESHOLD = const(0x37)
_REG_SYNC_WORD = const(0x39)
_REG_INVERT_IQ2 = const(0x3B)  # 0x1D normal, 0x19 inverted
_REG_DIO_MAPPING1 = const(0x40)
_REG_VERSION = const(0x42)
_REG_PA_DAC = const(0x4D)

_MODE_LORA = const(0x80)
_MODE_SLEEP = const(0x00)
_MODE_STDBY = const(0x01)
_MODE_TX = const(0x03)
_MODE_RX_SINGLE = const(0x06)
_IRQ_RX_TIMEOUT = const(0x80)
_IRQ_RX_DONE = const(0x40)
_IRQ_CRC_ERR = const(0x20)
_IRQ_TX_DONE = const(0x08)
_DIO0_RX_DONE = const(0x00)
_DIO0_TX_DONE = const(0x40)
_BW_CODE = {125: 0x70, 250: 0x80, 500: 0x90}


class SX1276:
    """Radio interface on an SX1276 with the RF output on PA_BOOST (2..17 dBm conducted)."""

    def __init__(self, spi, nss, reset, dio0, clock, antenna_gain_dbi=2):
        self.spi = spi
        self.nss = nss
        self.reset_pin = reset
        self.dio0 = dio0
        self.clock = clock
        self.antenna_gain_dbi = antenna_gain_dbi
        self.rssi = 0
        self.snr = 0
        self._b2 = bytearray(2)
        self.nss.value(1)
        self.init()

    def write(self, reg, value):
        b = self._b2
        b[0] = reg | 0x80
        b[1] = value
        self.nss.value(0)
        self.spi.write(b)
        self.nss.value(1)

    def read(self, reg):
        b = self._b2
        b[0] = reg & 0x7F
        b[1] = 0
        self.nss.value(0)
        self.spi.write_readinto(b, b)
        self.nss.value(1)
        return b[1]

    def _burst_write(self, reg, data):
        self.nss.value(0)
        self.spi.write(bytes((reg | 0x80,)))
        self.spi.write(data)
        self.nss.value(1)

    def _burst_read(self, reg, n):
        out = bytearray(n)
        self.nss.value(0)
        self.spi.write(bytes((reg & 0x7F,)))
        self.spi.readinto(out)
        self.nss.value(1)
        return bytes(out)

    def _mode(self, mode):
        self.write(_REG_OP_MODE, _MODE_LORA | mode)

    def init(self):
        """Reset (datasheet 7.2: NRESET low >= 100 us, then 5 ms), check the chip, LoRa set-up."""
        self.reset_pin.value(0)
        self.clock.sleep_ms(1)
        self.reset_pin.value(1)
        self.clock.sleep_ms(6)
        v = self.read(_REG_VERSION)
        if v != 0x12:
            raise RadioError("SX1276 not found (RegVersion 0x%02x, expected 0x12): check SPI and NSS" % v)
        self.write(_REG_OP_MODE, _MODE_SLEEP)  # LongRangeMode can only be set in sleep
        self._mode(_MODE_SLEEP)
        if self.read(_REG_OP_MODE) & 0x80 == 0:
            raise RadioError("SX1276 did not enter LoRa mode")
        self._mode(_MODE_STDBY)
        self.write(_REG_FIFO_TX_BASE, 0x00)
        self.write(_REG_FIFO_RX_BASE, 0x00)
        self.write(_REG_SYNC_WORD, 0x34)  # LoRaWAN public network
        self.write(_REG_LNA, 0x23)  # max gain, LNA boost on HF port
        self.write(_REG_OCP, 0x2B)  # over-current trip 100 mA
        self.write(_REG_DETECT_OPTIMIZE, 0xC3)  # SF7..12
        self.write(_REG_DETECT_THRESHOLD, 0x0A)

    def _configure(self, freq_hz, sf, bw_khz, crc, invert_iq):
        if bw_khz not in _BW_CODE or not 6 <= sf <= 12:
            raise ValueError("unsupported LoRa modulation")
        self._mode(_MODE_STDBY)
        frf = (freq_hz << 19) // 32000000
        self._burst_write(_REG_FRF_MSB, bytes(((frf >> 16) & 0xFF, (frf >> 8) & 0xFF, frf & 0xFF)))
        self.write(_REG_MODEM_CONFIG1, _BW_CODE[bw_khz] | 0x02)  # CR 4/5, explicit header
        self.write(_REG_MODEM_CONFIG2, (sf << 4) | (0x04 if crc else 0))
        self.write(_REG_MODEM_CONFIG3, (0x08 if ldro(sf, bw_khz) else 0) | 0x04)  # AGC auto
        self.write(_REG_PREAMBLE_MSB, 0)
        self.write(_REG_PREAMBLE_MSB + 1, PREAMBLE_SYMS)
        self.write(_REG_INVERT_IQ, 0x67 if invert_iq else 0x27)
        self.write(_REG_INVERT_IQ2, 0x19 if invert_iq else 0x1D)
        self.write(_REG_IRQ_FLAGS, 0xFF)  # clear all

    def transmit(self, buf, freq_hz, sf, bw_khz, power_dbm):
        self._configure(freq_hz, sf, bw_khz, True, False)
        p = power_dbm - self.antenna_gain_dbi
        p = 2 if p < 2 else (17 if p > 17 else p)
        # PA_BOOST: Pout = 17 - (15 - OutputPower) dBm; MaxPower 7
        self.write(_REG_PA_DAC, 0x84)
        self.write(_REG_PA_CONFIG, 0x80 | 0x70 | (p - 2))
        self.write(_REG_FIFO_ADDR_PTR, 0x00)
        self._burst_write(_REG_FIFO, buf)
        self.write(_REG_PAYLOAD_LENGTH, len(buf))
        self.write(_REG_DIO_MAPPING1, _DIO0_TX_DONE)
        self._mode(_MODE_TX)
        done = wait_pin(self.dio0, 1, self.clock, 11000, "SX1276 TX did not finish (DIO0)")
        flags = self.read(_REG_IRQ_FLAGS)
        self.write(_REG_IRQ_FLAGS, 0xFF)
        if not flags & _IRQ_TX_DONE:
            raise RadioError("SX1276 DIO0 rose without TxDone")
        return done

    def receive(self, freq_hz, sf, bw_khz, timeout_ms):
        self._configure(freq_hz, sf, bw_khz, False, True)
        sym_us = (1 << sf) * 1000 // bw_khz
        syms = (timeout_ms * 1000 + sym_us - 1) // sym_us
        syms = 4 if syms < 4 else (1023 if syms > 1023 else syms)
        self.write(_REG_MODEM_CONFIG2, (sf << 4) | (syms >> 8))
        self.write(_REG_SYMB_TIMEOUT_LSB, syms & 0xFF)
        self.write(_REG_DIO_MAPPING1, _DIO0_RX_DONE)
        self.write(_REG_FIFO_ADDR_PTR, 0x00)
        self._mode(_MODE_RX_SINGLE)
        deadline = self.clock.now_ms() + timeout_ms + 10000
        while True:
            if self.dio0.value():
                break
            flags = self.read(_REG_IRQ_FLAGS)
            if flags & _IRQ_RX_TIMEOUT:
                self.write(_REG_IRQ_FLAGS, 0xFF)
                return None
            if self.clock.now_ms() >= deadline:
                raise RadioError("SX1276 RX did not end")
            self.clock.sleep_ms(1)
        flags = self.read(_REG_IRQ_FLAGS)
        self.write(_REG_IRQ_FLAGS, 0xFF)
        if flags & _IRQ_CRC_ERR:
            return None
        n = self.read(_REG_RX_NB_BYTES)
        self.write(_REG_FIFO_ADDR_PTR, self.read(_REG_FIFO_RX_CURRENT))
        data = self._burst_read(_REG_FIFO, n)
        snr = self.read(_REG_PKT_SNR)
        self.snr = (snr - 256 if snr > 127 else snr) // 4
        self.rssi = -157 + self.read(_REG_PKT_RSSI)  # HF port (datasheet 5.5.5)
        return data

    def sleep(self):
        self._mode(_MODE_SLEEP)
