"""A simulated LoRa radio implementing the Radio interface (firmware/README.md) on a fake clock.

Uplinks are handed to `on_uplink(frame, freq_hz, sf, bw_khz, start_ms, end_ms)` (the host side:
a test or the gateway's simulator). Downlinks are scheduled with `schedule(frame, freq_hz, sf,
bw_khz, start_ms)` and are received only by a receive() that is open at the frame's start, on
the same frequency and data rate: a MAC that opens its RX window late, early by more than its
timeout, or on the wrong channel misses the frame, as a real radio would.
"""

from lw import region


class RadioError(Exception):
    pass


class SimRadio:
    def __init__(self, clock, on_uplink=None):
        self.clock = clock
        self.on_uplink = on_uplink
        self.uplinks = []  # (frame, freq_hz, sf, bw_khz, start_ms, end_ms, power_dbm)
        self.pending = []  # scheduled downlinks: [frame, freq_hz, sf, bw_khz, start_ms]
        self.rx_log = []  # (freq_hz, sf, bw_khz, open_ms, close_ms, got) of every receive()
        self.rssi = 0
        self.snr = 0
        self.asleep = True
        self.down_rssi = -80
        self.down_snr = 7

    def transmit(self, buf, freq_hz, sf, bw_khz, power_dbm):
        """Send buf; blocks (advances the clock) for the time on air; returns TX-done time ms."""
        if region.subband(freq_hz) < 0:
            raise RadioError("TX frequency outside EU868: %d" % freq_hz)
        if not 7 <= sf <= 12 or bw_khz not in (125, 250):
            raise RadioError("unsupported modulation SF%d/%d kHz" % (sf, bw_khz))
        if power_dbm > 16:
            raise RadioError("TX power above EU868 MaxEIRP")
        frame = bytes(buf)
        self.asleep = False
        start = self.clock.now_ms()
        toa = (region.airtime_us(len(frame), sf, bw_khz) + 999) // 1000
        self.clock.sleep_ms(toa)
        end = self.clock.now_ms()
        self.uplinks.append((frame, freq_hz, sf, bw_khz, start, end, power_dbm))
        if self.on_uplink is not None:
            self.on_uplink(frame, freq_hz, sf, bw_khz, start, end)
        return end

    def schedule(self, frame, freq_hz, sf, bw_khz, start_ms):
        """Put a downlink on the air at start_ms (clock time)."""
        self.pending.append([bytes(frame), freq_hz, sf, bw_khz, start_ms])

    def receive(self, freq_hz, sf, bw_khz, timeout_ms):
        """Listen (inverted IQ, downlink) from now for a preamble up to timeout_ms. Returns the
        frame (clock then at its end) or None (clock at now + timeout)."""
        self.asleep = False
        t_open = self.clock.now_ms()
        t_close = t_open + timeout_ms
        got = None
        for d in self.pending:
            if d[1] == freq_hz and d[2] == sf and d[3] == bw_khz and t_open <= d[4] <= t_close:
                got = d
                break
        # downlinks whose time has passed are gone, heard or not
        self.pending = [d for d in self.pending if d is not got and d[4] > t_close]
        if got is None:
            self.clock.sleep_ms(t_close - t_open)
            self.rx_log.append((freq_hz, sf, bw_khz, t_open, t_close, False))
            return None
        toa = (region.airtime_us(len(got[0]), sf, bw_khz, crc=False) + 999) // 1000
        self.clock.sleep_ms(got[4] + toa - t_open)
        self.rssi, self.snr = self.down_rssi, self.down_snr
        self.rx_log.append((freq_hz, sf, bw_khz, t_open, t_close, True))
        return got[0]

    def sleep(self):
        self.asleep = True
