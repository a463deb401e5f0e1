"""A behavioural simulator of the SX1262 on its SPI bus and pins, for testing the driver (host only).

It models what the driver depends on, after the datasheet (SX1261/2 rev 2.1): the command set with
its parameter layouts, BUSY (high while a command is processed, during calibration, in sleep until
NSS wakes the chip, and after reset), the operating modes, the 256-byte data buffer, registers, IRQ
flags routed to DIO1 by SetDioIrqParams, TX taking the real time on air, single RX with a timeout.
And it is strict where the chip is: a command sent while BUSY is high is lost; modulation or packet
parameters sent before SetPacketType(LoRa) are ignored; on a board with a TCXO nothing that needs
the 32 MHz clock works unless DIO3 powers it (XOSC_START_ERR); with the RF switch on DIO2 not
enabled nothing reaches the antenna; a receiver hears only frames with its frequency, SF, bandwidth,
IQ polarity and sync word. Every rule broken is appended to `violations`.
"""

import struct

from lw import region

_STATUS_CMDS = (0x12, 0x13, 0x14, 0x17, 0xC0, 0x15)
_STDBY_RC, _STDBY_XOSC, _FS, _TX, _RX, _SLEEP = 2, 3, 4, 6, 5, 0
_BW = {0x04: 125, 0x05: 250, 0x06: 500}
_PARAM_LEN = {
    0x84: 1,
    0x80: 1,
    0x83: 3,
    0x82: 3,
    0x9F: 1,
    0x96: 1,
    0x89: 1,
    0x98: 2,
    0x95: 4,
    0x08: 8,
    0x02: 2,
    0x9D: 1,
    0x97: 4,
    0x86: 4,
    0x8A: 1,
    0x8E: 2,
    0x8B: 4,
    0x8C: 6,
    0x8F: 2,
}


class SimPin:
    """A GPIO as the driver sees it: value() reads, value(v) drives. Inputs are computed by the chip."""

    def __init__(self, read=None, on_write=None, level=0):
        self._read = read
        self._on_write = on_write
        self.level = level

    def value(self, v=None):
        if v is None:
            return self._read() if self._read is not None else self.level
        self.level = 1 if v else 0
        if self._on_write is not None:
            self._on_write(self.level)
        return None

    def __call__(self, v=None):
        return self.value(v)


class FakeSX1262:
    """The chip plus its board. `spi`, `nss`, `reset`, `busy`, `dio1` go to the driver.
    Like SimRadio, frames that reach the antenna go to `on_uplink(frame, freq_hz, sf, bw_khz,
    start_ms, end_ms)` and `schedule()` puts downlinks on the air, so SimNetwork works with it."""

    def __init__(self, clock, tcxo=True, rf_switch=True, on_uplink=None):
        self.clock = clock
        self.board_tcxo = tcxo
        self.board_rf_switch = rf_switch
        self.on_uplink = on_uplink
        self.violations = []
        self.sent = []  # (frame, freq_hz, sf, bw_khz, power_dbm, start_ms, end_ms, radiated)
        self.pending = []  # downlinks on the air: (frame, freq_hz, sf, bw_khz, start_ms, inverted_iq)
        self.spi = SpiBus(self)
        self.nss = SimPin(on_write=self._nss_edge, level=1)
        self.reset = SimPin(on_write=self._reset_edge, level=1)
        self.busy = SimPin(read=self._busy_level)
        self.dio1 = SimPin(read=self._dio1_level)
        self.rx_rssi_raw = 160  # -80 dBm
        self.rx_snr_raw = 28  # 7 dB
        self.commands = []  # opcodes in the order they were executed
        self._power_on()

    # ---- state -----------------------------------------------------------------------------------

    def _power_on(self):
        self.mode = _STDBY_RC
        self.asleep = False
        self.regs = bytearray(0x1000)
        self.regs[0x0740:0x0742] = b"\x14\x24"  # private sync word after reset
        self.regs[0x0736] = 0x0D
        self.regs[0x08D8] = 0xC8
        self.buffer = bytearray(256)
        self.packet_type = None  # GFSK (0) after reset; None = not set by the host yet
        self.freq_hz = 0
        self.mod = None  # (sf, bw_khz, cr, ldro)
        self.pkt = None  # (preamble, implicit, length, crc, invert_iq)
        self.tx_base = self.rx_base = 0
        self.irq = 0
        self.irq_mask = self.dio1_mask = 0
        self.errors = 0
        self.tcxo_on = False
        self.tcxo_mv = 0
        self.dio2_switch = False
        self.regulator_dcdc = False
        self.pa = None
        self.power_dbm = None
        self.stop_on_preamble = False
        self.rx_len = 0
        self.rx_start = 0
        self._busy_polls = 1
        self._busy_until = self.clock.now_ms() + 1
        self._tx_end = None
        self._tx_frame = None
        self._rx_end = None
        self._rx_got = None
        self._txn = None

    def _busy_level(self):
        self._advance()
        if self.asleep or self.reset.level == 0 or self.clock.now_ms() < self._busy_until:
            return 1
        if self._busy_polls > 0:
            self._busy_polls -= 1  # a command takes some microseconds: seen high once
            return 1
        return 0

    def _is_busy(self):
        return (
            self.asleep
            or self.reset.level == 0
            or self.clock.now_ms() < self._busy_until
            or self._busy_polls > 0
        )

    def _dio1_level(self):
        self._advance()
        return 1 if self.irq & self.dio1_mask else 0

    def _xosc_ok(self):
        if self.board_tcxo and not self.tcxo_on:
            self.errors |= 0x20  # XOSC_START_ERR: no 32 MHz clock without the TCXO supply
            return False
        return True

    def _reset_edge(self, level):
        if level == 0:
            self._power_on()
        else:
            self._busy_until = self.clock.now_ms() + 3  # boot time after NRESET released

    def _nss_edge(self, level):
        if level == 0:
            if self.asleep:
                self.asleep = False  # NSS falling edge wakes the chip (warm start: config kept)
                self.mode = _STDBY_RC
                self._busy_until = self.clock.now_ms() + 1
                self._txn = None
                return
            self._txn = bytearray() if not self._is_busy() else None
            if self._txn is None:
                self.violations.append("command started while BUSY was high: lost")
        else:
            txn = self._txn
            self._txn = None
            if txn:
                self._execute(bytes(txn))

    # ---- SPI -------------------------------------------------------------------------------------

    def _transfer(self, mosi, miso):
        if self.nss.level != 0:
            self.violations.append("SPI transfer with NSS high")
            return
        txn = self._txn
        for b in mosi:
            if txn is not None:
                txn.append(b)
        if miso is not None:
            for i in range(len(mosi)):
                miso[i] = self._miso(txn, len(txn) - len(mosi) + i) if txn is not None else 0xFF

    def _status(self):
        return (self.mode & 0x07) << 4

    def _miso(self, txn, i):
        op = txn[0]
        if i == 0:
            return self._status()
        if op == 0x1D and i >= 4:
            addr = txn[1] << 8 | txn[2]
            return self.regs[(addr + i - 4) & 0xFFF]
        if op == 0x1E and i >= 3:
            return self.buffer[(txn[1] + i - 3) & 0xFF]
        if op in _STATUS_CMDS:
            if i == 1:
                return self._status()
            resp = self._response(op)
            return resp[i - 2] if i - 2 < len(resp) else 0
        return self._status()

    def _response(self, op):
        self._advance()
        if op == 0x12:
            return struct.pack(">H", self.irq & self.irq_mask)
        if op == 0x13:
            return bytes((self.rx_len, self.rx_start))
        if op == 0x14:
            return bytes((self.rx_rssi_raw, self.rx_snr_raw & 0xFF, self.rx_rssi_raw))
        if op == 0x17:
            return struct.pack(">H", self.errors)
        return b""

    # ---- commands --------------------------------------------------------------------------------

    def _execute(self, txn):
        op = txn[0]
        p = txn[1:]
        need = _PARAM_LEN.get(op)
        if need is not None and len(p) != need:
            self.violations.append("opcode 0x%02x with %d parameter bytes, needs %d" % (op, len(p), need))
            return
        self.commands.append(op)
        self._busy_polls = 1
        if op == 0x80:  # SetStandby
            if p[0] == 1 and not self._xosc_ok():
                return
            self.mode = _STDBY_XOSC if p[0] else _STDBY_RC
            self._tx_end = self._rx_end = None
        elif op == 0x84:  # SetSleep
            if self.mode in (_TX, _RX):
                self.violations.append("SetSleep while in TX/RX")
            self.asleep = True
            self.mode = _SLEEP
            if not p[0] & 0x04:  # cold start: configuration lost
                self._power_on()
                self.asleep = True
                self.mode = _SLEEP
        elif op == 0x97:  # SetDIO3AsTCXOCtrl
            self.tcxo_on = True
            self.tcxo_mv = (1600, 1700, 1800, 2200, 2400, 2700, 3000, 3300)[p[0] & 0x07]
            self.errors &= ~0x20
        elif op == 0x89:  # Calibrate: 3.5 ms with BUSY high; needs the XOSC
            self._busy_until = self.clock.now_ms() + 4
            if p[0] & 0x7F and self._xosc_ok():
                self.errors &= ~0x1F
        elif op == 0x98:  # CalibrateImage
            self._busy_until = self.clock.now_ms() + 1
            self._xosc_ok()
        elif op == 0x96:
            self.regulator_dcdc = p[0] == 1
        elif op == 0x9D:
            self.dio2_switch = p[0] == 1
        elif op == 0x8A:
            self.packet_type = p[0]
        elif op == 0x8B:  # SetModulationParams
            if self.packet_type != 1:
                self.violations.append("SetModulationParams before SetPacketType(LoRa): ignored")
                return
            if p[1] not in _BW or not 5 <= p[0] <= 12:
                self.violations.append("bad modulation params %r" % p)
                return
            self.mod = (p[0], _BW[p[1]], p[2], p[3])
        elif op == 0x8C:  # SetPacketParams
            if self.packet_type != 1:
                self.violations.append("SetPacketParams before SetPacketType(LoRa): ignored")
                return
            self.pkt = (p[0] << 8 | p[1], p[2], p[3], p[4], p[5])
        elif op == 0x86:
            reg = struct.unpack(">I", p)[0]
            self.freq_hz = (reg * 32000000 + (1 << 24)) >> 25
        elif op == 0x8F:
            self.tx_base, self.rx_base = p[0], p[1]
        elif op == 0x95:
            self.pa = tuple(p)
        elif op == 0x8E:
            pw = p[0] - 256 if p[0] > 127 else p[0]
            if not -9 <= pw <= 22:
                self.violations.append("TX power %d dBm outside -9..22" % pw)
                return
            self.power_dbm = pw
        elif op == 0x08:
            self.irq_mask, self.dio1_mask = struct.unpack(">HH", p[:4])
        elif op == 0x02:
            self.irq &= ~(p[0] << 8 | p[1])
        elif op == 0x0D:
            addr = p[0] << 8 | p[1]
            self.regs[addr : addr + len(p) - 2] = p[2:]
        elif op == 0x0E:
            for i in range(len(p) - 1):
                self.buffer[(p[0] + i) & 0xFF] = p[1 + i]
        elif op == 0x9F:
            self.stop_on_preamble = p[0] == 1
        elif op == 0x83:
            self._start_tx(p)
        elif op == 0x82:
            self._start_rx(p)

    def _ready_for_radio(self, what):
        if self.mode not in (_STDBY_RC, _STDBY_XOSC, _FS):
            self.violations.append("%s from mode %d" % (what, self.mode))
            return False
        if self.packet_type != 1 or self.mod is None or self.pkt is None or not self.freq_hz:
            self.violations.append("%s before packet type, frequency, modulation and packet params" % what)
            return False
        return self._xosc_ok()

    def _toa_ms(self, n, crc):
        sf, bw = self.mod[0], self.mod[1]
        us = region.airtime_us(n, sf, bw, crc=crc, preamble=self.pkt[0], ldro=bool(self.mod[3]))
        return (us + 999) // 1000

    def _start_tx(self, p):
        if not self._ready_for_radio("SetTx"):
            return
        if self.power_dbm is None or self.pa is None:
            self.violations.append("SetTx before SetPaConfig/SetTxParams")
            return
        n = self.pkt[2]
        frame = bytes(self.buffer[self.tx_base + i & 0xFF] for i in range(n))
        if self.pkt[4]:
            self.violations.append("uplink sent with inverted IQ")
        self.mode = _TX
        self._tx_start = self.clock.now_ms()
        self._tx_end = self._tx_start + self._toa_ms(n, bool(self.pkt[3]))
        self._tx_frame = frame

    def _start_rx(self, p):
        if not self._ready_for_radio("SetRx"):
            return
        steps = p[0] << 16 | p[1] << 8 | p[2]
        now = self.clock.now_ms()
        self.mode = _RX
        window_end = now + (steps + 63) // 64 if steps not in (0, 0xFFFFFF) else now + 10**9
        got = None
        sync_ok = self.regs[0x0740] == 0x34 and self.regs[0x0741] == 0x44
        for d in self.pending:
            _frame, f, sf, bw, start, inv = d
            if (
                abs(f - self.freq_hz) < 100
                and (sf, bw) == self.mod[:2]
                and now <= start <= window_end
                and bool(inv) == bool(self.pkt[4])
                and sync_ok
                and (self.dio2_switch or not self.board_rf_switch)
            ):
                got = d
                break
        self.pending = [d for d in self.pending if d is not got and d[4] > window_end]
        if got is None:
            self._rx_end = window_end
            self._rx_got = None
        else:
            self._rx_end = got[4] + self._toa_ms(len(got[0]), False)
            self._rx_got = got[0]

    def _advance(self):
        now = self.clock.now_ms()
        if self.mode == _TX and self._tx_end is not None and now >= self._tx_end:
            radiated = self.dio2_switch or not self.board_rf_switch
            self.sent.append(
                (
                    self._tx_frame,
                    self.freq_hz,
                    self.mod[0],
                    self.mod[1],
                    self.power_dbm,
                    self._tx_start,
                    self._tx_end,
                    radiated,
                )
            )
            if radiated and self.on_uplink is not None:
                self.on_uplink(
                    self._tx_frame, self.freq_hz, self.mod[0], self.mod[1], self._tx_start, self._tx_end
                )
            self.irq |= 0x0001
            self.mode = _STDBY_RC
            self._tx_end = None
        if self.mode == _RX and self._rx_end is not None and now >= self._rx_end:
            if self._rx_got is None:
                self.irq |= 0x0200  # Timeout
            else:
                data = self._rx_got
                self.rx_start = self.rx_base
                self.rx_len = len(data)
                for i in range(len(data)):
                    self.buffer[(self.rx_base + i) & 0xFF] = data[i]
                self.irq |= 0x0002 | 0x0010  # RxDone, HeaderValid
            self.mode = _STDBY_RC
            self._rx_end = None

    def schedule(self, frame, freq_hz, sf, bw_khz, start_ms, inverted_iq=True):
        """Put a frame on the air (a gateway downlink: inverted IQ) starting at start_ms."""
        self.pending.append((bytes(frame), freq_hz, sf, bw_khz, start_ms, inverted_iq))


class SpiBus:
    """machine.SPI stand-in wired to a fake chip's ``_transfer`` (MSB first, mode 0); both fakes use it."""

    def __init__(self, chip):
        self.chip = chip

    def write(self, buf):
        self.chip._transfer(bytes(buf), None)

    def write_readinto(self, wbuf, rbuf):
        self.chip._transfer(bytes(wbuf), rbuf)

    def readinto(self, rbuf, write=0):
        self.chip._transfer(bytes((write,)) * len(rbuf), rbuf)
