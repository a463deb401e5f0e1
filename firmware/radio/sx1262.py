"""Semtech SX1262 driver (datasheet SX1261/2 rev 2.1, DS.SX1261-2.W.APP, 2021), LoRa only.

The SX126x is command driven: each SPI transaction is an opcode plus parameters, and BUSY must be
low before a command starts (it goes high while the chip processes one, and stays high in sleep
until NSS wakes it). Interrupts are routed to DIO1. Board options: a TCXO powered from DIO3
(Heltec V3: 1.8 V), the RF switch driven by DIO2 (most modules). Pins and bus are passed in.
"""

import struct

from micropython import const

from radio.base import PREAMBLE_SYMS, RadioError, ldro, wait_pin

# Commands (datasheet section 13; the set-up ones are in radio/sx1262boot.py)
_CMD_SET_SLEEP = const(0x84)
_CMD_SET_STANDBY = const(0x80)
_CMD_SET_TX = const(0x83)
_CMD_SET_RX = const(0x82)
_CMD_STOP_TIMER_ON_PREAMBLE = const(0x9F)
_CMD_GET_IRQ_STATUS = const(0x12)
_CMD_CLEAR_IRQ_STATUS = const(0x02)
_CMD_SET_RF_FREQUENCY = const(0x86)
_CMD_SET_TX_PARAMS = const(0x8E)
_CMD_SET_MODULATION_PARAMS = const(0x8B)
_CMD_SET_PACKET_PARAMS = const(0x8C)
_CMD_WRITE_REGISTER = const(0x0D)
_CMD_READ_REGISTER = const(0x1D)
_CMD_WRITE_BUFFER = const(0x0E)
_CMD_READ_BUFFER = const(0x1E)
_CMD_GET_RX_BUFFER_STATUS = const(0x13)
_CMD_GET_PACKET_STATUS = const(0x14)
_CMD_GET_DEVICE_ERRORS = const(0x17)

# Registers (section 12)
_REG_IQ_POLARITY = const(0x0736)  # errata 15.4: bit 2 set for normal IQ, clear for inverted IQ

_STDBY_RC = const(0x00)
_IRQ_TX_DONE = const(0x0001)
_IRQ_RX_DONE = const(0x0002)
_IRQ_HEADER_ERR = const(0x0020)
_IRQ_CRC_ERR = const(0x0040)
_IRQ_TIMEOUT = const(0x0200)
_BUSY_TIMEOUT_MS = const(100)

# SetDIO3AsTCXOCtrl voltages in millivolts; the index is the code (table 13-35)
TCXO_MV = (1600, 1700, 1800, 2200, 2400, 2700, 3000, 3300)


class SX1262:
    """Radio interface on an SX1262. `antenna_gain_dbi` turns the MAC's EIRP into conducted power."""

    def __init__(
        self, spi, nss, reset, busy, dio1, clock, tcxo_mv=0, rf_switch_dio2=True, antenna_gain_dbi=2
    ):
        self.spi = spi
        self.nss = nss
        self.reset_pin = reset
        self.busy = busy
        self.dio1 = dio1
        self.clock = clock
        if tcxo_mv and tcxo_mv not in TCXO_MV:
            raise ValueError("tcxo_mv must be one of %r" % (TCXO_MV,))
        self.tcxo_mv = tcxo_mv
        self.rf_switch_dio2 = rf_switch_dio2
        self.antenna_gain_dbi = antenna_gain_dbi
        self.rssi = 0
        self.snr = 0
        self._asleep = False
        self._cmd = bytearray(10)
        self._rd = bytearray(10)
        self.nss.value(1)
        self.init()

    # ---- SPI primitives ------------------------------------------------------------------------

    def _wait_busy(self):
        wait_pin(self.busy, 0, self.clock, _BUSY_TIMEOUT_MS, "SX1262 BUSY stuck high")

    def _wake(self):
        # a falling NSS edge wakes the chip from sleep; BUSY falls once it is ready (warm start)
        self.nss.value(0)
        self._wait_busy()
        self.nss.value(1)
        self._asleep = False

    def command(self, op, params=b""):
        """Send one command with its parameter bytes."""
        if self._asleep:
            self._wake()
        self._wait_busy()
        n = 1 + len(params)
        buf = self._cmd if n <= len(self._cmd) else bytearray(n)
        buf[0] = op
        buf[1:n] = params
        self.nss.value(0)
        self.spi.write(memoryview(buf)[:n])
        self.nss.value(1)

    def _write_buffer(self, buf):
        """WriteBuffer at offset 0, the frame streamed straight from the caller's buffer (no copy)."""
        if self._asleep:
            self._wake()
        self._wait_busy()
        hdr = self._cmd
        hdr[0] = _CMD_WRITE_BUFFER
        hdr[1] = 0
        self.nss.value(0)
        self.spi.write(memoryview(hdr)[:2])
        self.spi.write(buf)
        self.nss.value(1)

    def _read(self, op, prefix, n):
        """A command that returns n bytes after the opcode, prefix bytes and one status/NOP byte."""
        if self._asleep:
            self._wake()
        self._wait_busy()
        total = 1 + len(prefix) + 1 + n
        w = bytearray(total)
        w[0] = op
        w[1 : 1 + len(prefix)] = prefix
        r = bytearray(total)
        self.nss.value(0)
        self.spi.write_readinto(w, r)
        self.nss.value(1)
        return r[total - n :]

    def write_register(self, addr, data):
        self.command(_CMD_WRITE_REGISTER, struct.pack(">H", addr) + bytes(data))

    def read_register(self, addr, n=1):
        return self._read(_CMD_READ_REGISTER, struct.pack(">H", addr), n)

    def irq_status(self):
        r = self._read(_CMD_GET_IRQ_STATUS, b"", 2)
        return r[0] << 8 | r[1]

    def device_errors(self):
        r = self._read(_CMD_GET_DEVICE_ERRORS, b"", 2)
        return r[0] << 8 | r[1]

    # ---- set-up --------------------------------------------------------------------------------

    def init(self):
        """Hardware reset and the configuration LoRaWAN needs (datasheet section 14.2/14.3): boot
        code in radio/sx1262boot.py, loaded for the call and released after."""
        from lw.mac import release

        from radio import sx1262boot

        try:
            sx1262boot.init(self)
        finally:
            del sx1262boot
            release("radio.sx1262boot")

    def _configure(self, freq_hz, sf, bw_khz, length, crc, invert_iq):
        if bw_khz not in (125, 250, 500) or not 5 <= sf <= 12:
            raise ValueError("unsupported LoRa modulation")
        self.command(_CMD_SET_STANDBY, bytes((_STDBY_RC,)))
        self.command(_CMD_SET_RF_FREQUENCY, struct.pack(">I", (freq_hz << 25) // 32000000))
        # SF, BW, CR 4/5, low-data-rate optimisation
        bw = 4 if bw_khz == 125 else (5 if bw_khz == 250 else 6)  # 125, 250, 500 kHz
        mod = bytes((sf, bw, 0x01, 1 if ldro(sf, bw_khz) else 0))
        self.command(_CMD_SET_MODULATION_PARAMS, mod)
        self.command(
            _CMD_SET_PACKET_PARAMS,
            struct.pack(">HBBBB", PREAMBLE_SYMS, 0x00, length, 1 if crc else 0, 1 if invert_iq else 0),
        )
        iq = self.read_register(_REG_IQ_POLARITY)[0]
        self.write_register(_REG_IQ_POLARITY, bytes(((iq & ~0x04) if invert_iq else (iq | 0x04),)))

    # ---- Radio interface -----------------------------------------------------------------------

    def transmit(self, buf, freq_hz, sf, bw_khz, power_dbm):
        n = len(buf)
        self._configure(freq_hz, sf, bw_khz, n, True, False)
        conducted = power_dbm - self.antenna_gain_dbi
        conducted = -9 if conducted < -9 else (22 if conducted > 22 else conducted)
        self.command(_CMD_SET_TX_PARAMS, bytes((conducted & 0xFF, 0x04)))  # ramp 200 us
        self._write_buffer(buf)
        self.command(_CMD_CLEAR_IRQ_STATUS, b"\xff\xff")
        # chip-side TX timeout 10 s (640000 steps of 15.625 us): longer than a 255-byte SF12 frame
        self.command(_CMD_SET_TX, b"\x09\xc4\x00")
        done = wait_pin(self.dio1, 1, self.clock, 11000, "SX1262 TX did not finish")
        irq = self.irq_status()
        self.command(_CMD_CLEAR_IRQ_STATUS, b"\xff\xff")
        if not irq & _IRQ_TX_DONE:
            raise RadioError("SX1262 TX ended without TxDone (irq 0x%04x)" % irq)
        return done

    def receive(self, freq_hz, sf, bw_khz, timeout_ms):
        self._configure(freq_hz, sf, bw_khz, 255, False, True)
        self.command(_CMD_STOP_TIMER_ON_PREAMBLE, b"\x01")  # a late frame is not cut by the timer
        self.command(_CMD_CLEAR_IRQ_STATUS, b"\xff\xff")
        steps = timeout_ms * 64  # 15.625 us per step
        self.command(_CMD_SET_RX, bytes(((steps >> 16) & 0xFF, (steps >> 8) & 0xFF, steps & 0xFF)))
        # wait for the window plus the longest frame that may have started in it
        wait_pin(self.dio1, 1, self.clock, timeout_ms + 10000, "SX1262 RX did not end")
        irq = self.irq_status()
        self.command(_CMD_CLEAR_IRQ_STATUS, b"\xff\xff")
        if not irq & _IRQ_RX_DONE or irq & (_IRQ_CRC_ERR | _IRQ_HEADER_ERR):
            return None
        st = self._read(_CMD_GET_RX_BUFFER_STATUS, b"", 2)
        n, start = st[0], st[1]
        data = bytes(self._read(_CMD_READ_BUFFER, bytes((start,)), n))
        ps = self._read(_CMD_GET_PACKET_STATUS, b"", 3)
        self.rssi = -ps[0] // 2
        snr = ps[1] - 256 if ps[1] > 127 else ps[1]
        self.snr = snr // 4
        return data

    def sleep(self):
        """Warm-start sleep: configuration kept, about 1 uA; the next command wakes the chip."""
        if not self._asleep:
            self.command(_CMD_SET_SLEEP, b"\x04")
            self._asleep = True
