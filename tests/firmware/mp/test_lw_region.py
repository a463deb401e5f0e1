"""lw.region (EU868 data, time on air) and lw.dutycycle (ETSI sub-bands, DutyCycleReq, join back-off)."""

from lw import dutycycle, region, startup

from mptest import raises


def test_airtime_check_values():
    # brocaar/lorawan and Semtech AN1200.13 calculator values (shared/vectors/lorawan-public.json)
    assert region.airtime_us(13, 12, 125, ldro=False) == 1155072
    assert region.airtime_us(13, 9, 125) == 164864
    # 51-byte application payload at SF12 (LDRO on by rule) and 10 bytes at SF7
    assert region.airtime_us(51 + 13, 12) == 2793472
    assert region.airtime_us(10 + 13, 7) == 61696


def test_airtime_grows_with_payload_and_sf():
    assert region.airtime_us(30, 12) > region.airtime_us(30, 11) > region.airtime_us(30, 7)
    assert region.airtime_us(31, 7) >= region.airtime_us(30, 7)
    assert region.airtime_us(30, 7, 250) < region.airtime_us(30, 7, 125)
    assert region.airtime_us(30, 7, crc=False) < region.airtime_us(30, 7)


def test_subbands_of_channels():
    for f in region.DEFAULT_CHANNELS_HZ:
        assert region.SB_DIV[region.subband(f)] == 100
    assert region.SB_DIV[region.subband(region.RX2_FREQ_HZ)] == 10
    assert region.SB_DIV[region.subband(868900000)] == 1000
    assert region.subband(869300000) == -1  # gap between sub-bands
    assert region.subband(915000000) == -1


def test_subband_tables_match_rp002():
    # every edge of the EU868 sub-bands (RP002 / ETSI EN 300 220): (low, high, divisor); the high
    # edge belongs to the band only for the last one (870 MHz)
    bands = (
        (863000000, 865000000, 1000),
        (865000000, 868000000, 100),
        (868000000, 868600000, 100),
        (868700000, 869200000, 1000),
        (869400000, 869650000, 10),
        (869700000, 870000000, 100),
    )
    assert len(region.SB_DIV) == len(bands)
    for i in range(len(bands)):
        lo, hi, div = bands[i]
        assert region.SB_DIV[i] == div
        assert region.subband(lo) == i and region.subband(hi - 1) == i
        assert region.subband(lo - 1) == (i - 1 if i and bands[i - 1][1] == lo else -1)
    assert region.subband(870000000) == 5 and region.subband(870000001) == -1
    # data rates: (SF, bandwidth kHz) per DR0..DR6 and the payload limits
    drs = ((12, 125), (11, 125), (10, 125), (9, 125), (8, 125), (7, 125), (7, 250))
    assert [(region.DR_SF[d], region.DR_BW[d]) for d in range(7)] == list(drs)
    assert list(region.MAX_MAC_PAYLOAD) == [59, 59, 59, 123, 230, 230, 230]
    assert list(region.MAX_APP_PAYLOAD) == [51, 51, 51, 115, 222, 222, 222]


def test_max_payload_and_rx1_dr():
    assert region.MAX_APP_PAYLOAD[0] == 51 and region.MAX_APP_PAYLOAD[3] == 115
    assert region.MAX_APP_PAYLOAD[5] == 222
    assert region.rx1_dr(5, 0) == 5 and region.rx1_dr(5, 2) == 3 and region.rx1_dr(1, 3) == 0
    assert region.tx_power_dbm(0) == 16 and region.tx_power_dbm(7) == 2


def test_duty_cycle_blocks_band_for_99x_airtime():
    dc = dutycycle.DutyCycle()
    assert dc.wait_ms(868100000, 0) == 0
    dc.record(868100000, 1000, 2793)  # SF12, 51 bytes
    # the whole 868.0-868.6 sub-band is blocked until start + 100 x airtime
    assert dc.wait_ms(868500000, 1000 + 2793) == 279300 - 2793
    assert dc.wait_ms(868300000, 1000 + 279300) == 0
    # RX2's 10 % band and the 0.1 % band are separate budgets
    assert dc.wait_ms(869525000, 2000) == 0
    dc.record(868900000, 0, 100)
    assert dc.wait_ms(868900000, 99999) == 1


def test_duty_cycle_aggregated_limit_and_bad_freq():
    dc = dutycycle.DutyCycle()
    dc.max_dcycle = 10  # 1/1024 of the time on all bands together
    dc.record(869525000, 0, 100)
    assert dc.wait_ms(868100000, 100) == 102400 - 100
    assert dc.wait_ms(915000000, 0) == -1
    raises(ValueError, dc.record, 915000000, 0, 100)
    dc2 = dutycycle.DutyCycle()
    dc2.max_dcycle = dc.max_dcycle  # (the MAC keeps it with the session)
    assert startup.dc_unpack(dc2, dc.pack(100), 100, True)
    assert dc2.wait_ms(868100000, 100) == 102400 - 100
    assert not startup.dc_unpack(dc2, b"\x00" * 5, 100) and not startup.dc_unpack(dc2, dc.pack(100)[:-1], 100)


HOUR = 3600000


def max_hour_airtime(frames):
    """Largest airtime (ms) inside any one-hour window, frames as (start, end) ms; the worst
    window ends at some frame's end."""
    worst = 0
    for _, e in frames:
        lo = e - HOUR
        tot = 0
        for s2, e2 in frames:
            a = s2 if s2 > lo else lo
            b = e2 if e2 < e else e
            if b > a:
                tot += b - a
        if tot > worst:
            worst = tot
    return worst


def _saturate(freq, toa, hours=3):
    """Send frames of toa ms back to back as fast as the DutyCycle allows."""
    dc = dutycycle.DutyCycle()
    t = 0
    frames = []
    while t < hours * HOUR:
        w = dc.wait_ms(freq, t, toa)
        assert w >= 0
        t += w
        dc.record(freq, t, toa)
        frames.append((t, t + toa))
        t += toa
    return frames


def test_rolling_hour_never_exceeds_the_band_limit():
    # 1 %: 13 SF12 frames (2793 ms, 100 x airtime apart) fit into one hour = 1.009 %; 32 one-byte
    # frames at SF12 (1155 ms) = 1.028 %; also short SF7 frames and the 0.1 % and 10 % bands
    for freq, toa, limit in (
        (868100000, 2793, 36000),
        (868300000, 1155, 36000),
        (868500000, 62, 36000),
        (868900000, 1155, 3600),
        (869525000, 2793, 360000),
    ):
        frames = _saturate(freq, toa)
        worst = max_hour_airtime(frames)
        assert worst <= limit, (freq, toa, worst, limit)
        # and the limit is used, not wasted: at least 80 % of it in the busiest hour
        assert worst >= limit * 8 // 10 - toa, (freq, toa, worst)


def test_ledger_merges_old_frames_conservatively_when_full():
    dc = dutycycle.DutyCycle()
    f = 868100000
    for i in range(40):  # many short frames: the ledger stays at its fixed size
        dc.record(f, i * 100000, 50)
    b = region.subband(f)
    assert len(dc.ledger[b]) <= 8
    assert sum(e[1] for e in dc.ledger[b]) == 40 * 50


def test_ledger_pack_unpack_across_a_reset():
    f = 868100000
    dc = dutycycle.DutyCycle()
    assert dc.needs_save(f, 2793)
    dc.reserve(f, 2793)  # 1/8 of the band's hour: 4500 ms
    saved = dc.pack(500000)
    dc.record(f, 500000, 2793)
    assert not dc.needs_save(f, 1000) and dc.needs_save(f, 2000)  # 1707 ms of reserve left
    # reset, clock restarted at 1000: the save counts as "just now", the whole reserve as sent
    dc2 = dutycycle.DutyCycle()
    assert startup.dc_unpack(dc2, saved, 1000)
    b = region.subband(f)
    assert sum(e[1] for e in dc2.ledger[b]) == 4500 and dc2.reserve_ms[b] == 0
    # a clock that kept running (RTC): stored times stay where they were
    dc3 = dutycycle.DutyCycle()
    dc3.record(f, 1000000, 2793)
    dc4 = dutycycle.DutyCycle()
    assert startup.dc_unpack(dc4, dc3.pack(1100000), 2000000, True)
    assert dc4.ledger[b] == [[1002793, 2793]] and dc4.band_free_ms[b] == dc3.band_free_ms[b]
    startup.dc_assume_full(dc4, 2000000)
    assert dc4.wait_ms(f, 2000000, 100) >= HOUR - 200


def test_join_backoff_36s_per_hour_then_36s_per_10h_then_8700ms_per_day():
    jb = dutycycle.JoinBackoff()
    t = 0
    sent = 0
    # SF12 join-requests (23 bytes, ~1.48 s): count how many fit in the first hour
    toa = region.airtime_us(23, 12) // 1000
    while jb.wait_ms(toa, t) == 0 and sent < 1000:  # bounded: a broken limit must fail, not hang
        jb.record(toa, t)
        sent += 1
        t += 1000
    assert sent == 36000 // toa
    assert jb.used_ms <= 36000
    w = jb.wait_ms(toa, t)
    assert t + w == 3600000  # next allowed at the start of the second window
    t = 3600000
    used = 0
    while jb.wait_ms(toa, t) == 0 and used < 10**6:
        jb.record(toa, t)
        used += toa
        t += 1000
    assert used <= 36000 and used + toa > 36000
    assert t + jb.wait_ms(toa, t) == 11 * 3600000
    t = 11 * 3600000
    used = 0
    while jb.wait_ms(toa, t) == 0 and used < 10**6:
        jb.record(toa, t)
        used += toa
        t += 1000
    assert used <= 8700 and used + toa > 8700
    assert t + jb.wait_ms(toa, t) == 35 * 3600000
