"""A behavioural simulator of the SX1276 on its SPI bus and pins, for testing the driver (host only).

After the datasheet (rev 7): 128 registers with their reset values, SPI access (bit 7 = write,
bursts auto-increment except on RegFifo, which walks RegFifoAddrPtr through the 256-byte FIFO),
LongRangeMode changeable only in SLEEP, the FIFO cleared in SLEEP, TX sending RegPayloadLength
bytes from RegFifoTxBaseAddr for the real time on air, RX single with a timeout in symbols, IRQ
flags cleared by writing ones, DIO0 following RegDioMapping1. A receiver hears only frames with
its frequency, SF, bandwidth, IQ polarity (RegInvertIQ/RegInvertIQ2) and sync word. Rules broken
go to `violations`.
"""

from fake_sx1262 import SimPin, SpiBus
from lw import region

_RESET = {
    0x01: 0x09,
    0x06: 0x6C,
    0x07: 0x80,
    0x08: 0x00,
    0x09: 0x4F,
    0x0B: 0x2B,
    0x0C: 0x20,
    0x0E: 0x80,
    0x0F: 0x00,
    0x1D: 0x72,
    0x1E: 0x70,
    0x1F: 0x64,
    0x21: 0x08,
    0x22: 0x01,
    0x26: 0x00,
    0x31: 0xC3,
    0x33: 0x27,
    0x37: 0x0A,
    0x39: 0x12,
    0x3B: 0x1D,
    0x42: 0x12,
    0x4D: 0x84,
}
_BW = {0x7: 125, 0x8: 250, 0x9: 500}


class FakeSX1276:
    """The chip plus its board. `spi`, `nss`, `reset`, `dio0` go to the driver; frames that reach
    the antenna go to on_uplink(frame, freq_hz, sf, bw_khz, start_ms, end_ms); schedule() adds
    downlinks (the SimRadio shape, so SimNetwork works with it)."""

    def __init__(self, clock, on_uplink=None, present=True):
        self.clock = clock
        self.on_uplink = on_uplink
        self.present = present
        self.violations = []
        self.sent = []  # (frame, freq_hz, sf, bw_khz, pa_config, start_ms, end_ms)
        self.pending = []
        self.pkt_snr_raw = 28
        self.pkt_rssi_raw = 77  # -80 dBm on the HF port
        self.spi = SpiBus(self)
        self.nss = SimPin(on_write=self._nss_edge, level=1)
        self.reset = SimPin(on_write=self._reset_edge, level=1)
        self.dio0 = SimPin(read=self._dio0_level)
        self._power_on()

    def _power_on(self):
        self.regs = bytearray(128)
        for k, v in _RESET.items():
            self.regs[k] = v
        self.fifo = bytearray(256)
        self._addr = None
        self._write = False
        self._end = None
        self._frame = None
        self._start = 0
        self._rx_got = None

    def _reset_edge(self, level):
        if level == 0:
            self._power_on()

    def _nss_edge(self, level):
        self._advance()
        self._addr = None  # a new transaction starts with an address byte

    @property
    def lora(self):
        return bool(self.regs[0x01] & 0x80)

    @property
    def mode(self):
        return self.regs[0x01] & 0x07

    def freq_hz(self):
        frf = self.regs[0x06] << 16 | self.regs[0x07] << 8 | self.regs[0x08]
        return (frf * 32000000 + (1 << 18)) >> 19

    def sf_bw(self):
        return self.regs[0x1E] >> 4, _BW.get(self.regs[0x1D] >> 4, 0)

    def inverted_iq(self):
        rx_inv = bool(self.regs[0x33] & 0x40)
        if rx_inv != (self.regs[0x3B] == 0x19):
            self.violations.append("RegInvertIQ and RegInvertIQ2 disagree")
        return rx_inv

    def _dio0_level(self):
        self._advance()
        m = self.regs[0x40] >> 6
        f = self.regs[0x12]
        return 1 if (m == 0 and f & 0x40) or (m == 1 and f & 0x08) else 0

    # ---- SPI -------------------------------------------------------------------------------------

    def _transfer(self, mosi, miso):
        if self.nss.level != 0:
            self.violations.append("SPI transfer with NSS high")
            return
        if not self.present:
            if miso is not None:
                for i in range(len(mosi)):
                    miso[i] = 0x00
            return
        for i in range(len(mosi)):
            b = mosi[i]
            out = 0
            if self._addr is None:
                self._write = bool(b & 0x80)
                self._addr = b & 0x7F
            elif self._write:
                self._reg_write(self._addr, b)
                if self._addr != 0x00:
                    self._addr = (self._addr + 1) & 0x7F
            else:
                out = self._reg_read(self._addr)
                if self._addr != 0x00:
                    self._addr = (self._addr + 1) & 0x7F
            if miso is not None:
                miso[i] = out

    def _reg_read(self, a):
        self._advance()
        if a == 0x00:
            v = self.fifo[self.regs[0x0D]]
            self.regs[0x0D] = (self.regs[0x0D] + 1) & 0xFF
            return v
        return self.regs[a]

    def _reg_write(self, a, v):
        self._advance()
        if a == 0x00:
            if self.mode == 0:
                self.violations.append("FIFO written in SLEEP (not accessible)")
                return
            self.fifo[self.regs[0x0D]] = v
            self.regs[0x0D] = (self.regs[0x0D] + 1) & 0xFF
        elif a == 0x01:
            self._op_mode(v)
        elif a == 0x12:
            self.regs[0x12] &= ~v  # write 1 to clear
        elif a in (0x42, 0x10, 0x13, 0x19, 0x1A):
            self.violations.append("write to read-only register 0x%02x" % a)
        else:
            self.regs[a] = v

    def _op_mode(self, v):
        old = self.regs[0x01]
        if (v ^ old) & 0x80 and old & 0x07 != 0:
            self.violations.append("LongRangeMode changed outside SLEEP: ignored")
            v = (v & 0x7F) | (old & 0x80)
        self.regs[0x01] = v
        mode = v & 0x07
        if mode == 0:
            for i in range(256):
                self.fifo[i] = 0
            self._end = None
        elif mode == 3:
            self._start_tx()
        elif mode == 6:
            self._start_rx()
        elif mode in (1, 2):
            self._end = None

    def _toa(self, n, crc):
        sf, bw = self.sf_bw()
        pre = self.regs[0x20] << 8 | self.regs[0x21]
        ld = bool(self.regs[0x26] & 0x08)
        return (region.airtime_us(n, sf, bw, crc=crc, preamble=pre, ldro=ld) + 999) // 1000

    def _start_tx(self):
        if not self.lora:
            self.violations.append("TX in FSK mode")
            return
        n = self.regs[0x22]
        base = self.regs[0x0E]
        self._frame = bytes(self.fifo[(base + i) & 0xFF] for i in range(n))
        if self.inverted_iq():
            self.violations.append("uplink sent with inverted IQ")
        self._start = self.clock.now_ms()
        self._end = self._start + self._toa(n, bool(self.regs[0x1E] & 0x04))

    def _start_rx(self):
        if not self.lora:
            self.violations.append("RX in FSK mode")
            return
        sf, bw = self.sf_bw()
        syms = (self.regs[0x1E] & 0x03) << 8 | self.regs[0x1F]
        now = self.clock.now_ms()
        window_end = now + (syms * (1 << sf) * 1000 // bw + 999) // 1000
        freq = self.freq_hz()
        inv = self.inverted_iq()
        got = None
        for d in self.pending:
            _frame, f, dsf, dbw, start, dinv = d
            if (
                abs(f - freq) < 100
                and (dsf, dbw) == (sf, bw)
                and now <= start <= window_end
                and dinv == inv
                and self.regs[0x39] == 0x34
            ):
                got = d
                break
        self.pending = [d for d in self.pending if d is not got and d[4] > window_end]
        self._start = now
        if got is None:
            self._end = window_end
            self._rx_got = None
        else:
            self._end = got[4] + self._toa(len(got[0]), False)
            self._rx_got = got[0]

    def _advance(self):
        if self._end is None or self.clock.now_ms() < self._end:
            return
        mode = self.mode
        if mode == 3:
            self.sent.append(
                (
                    self._frame,
                    self.freq_hz(),
                    self.sf_bw()[0],
                    self.sf_bw()[1],
                    self.regs[0x09],
                    self._start,
                    self._end,
                )
            )
            if self.on_uplink is not None:
                sf, bw = self.sf_bw()
                self.on_uplink(self._frame, self.freq_hz(), sf, bw, self._start, self._end)
            self.regs[0x12] |= 0x08
        elif mode == 6:
            if self._rx_got is None:
                self.regs[0x12] |= 0x80
            else:
                data = self._rx_got
                base = self.regs[0x0F]
                for i in range(len(data)):
                    self.fifo[(base + i) & 0xFF] = data[i]
                self.regs[0x10] = base
                self.regs[0x13] = len(data)
                self.regs[0x19] = self.pkt_snr_raw & 0xFF
                self.regs[0x1A] = self.pkt_rssi_raw
                self.regs[0x12] |= 0x40 | 0x10
        self.regs[0x01] = (self.regs[0x01] & 0xF8) | 0x01  # back to standby
        self._end = None

    def schedule(self, frame, freq_hz, sf, bw_khz, start_ms, inverted_iq=True):
        self.pending.append((bytes(frame), freq_hz, sf, bw_khz, start_ms, inverted_iq))
