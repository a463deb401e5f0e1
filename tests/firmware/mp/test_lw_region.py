"""lw.region (EU868 data, time on air) and lw.dutycycle (ETSI sub-bands, DutyCycleReq, join back-off)."""

from lw import dutycycle, region

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
        assert region.SUBBANDS[region.subband(f)][2] == 100
    assert region.SUBBANDS[region.subband(region.RX2_FREQ_HZ)][2] == 10
    assert region.SUBBANDS[region.subband(868900000)][2] == 1000
    assert region.subband(869300000) == -1  # gap between sub-bands
    assert region.subband(915000000) == -1


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
    dc2.load(dc.dump())
    assert dc2.wait_ms(868100000, 100) == 102400 - 100


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
    while jb.wait_ms(toa, t) == 0 and used < 10 ** 6:
        jb.record(toa, t)
        used += toa
        t += 1000
    assert used <= 36000 and used + toa > 36000
    assert t + jb.wait_ms(toa, t) == 11 * 3600000
    t = 11 * 3600000
    used = 0
    while jb.wait_ms(toa, t) == 0 and used < 10 ** 6:
        jb.record(toa, t)
        used += toa
        t += 1000
    assert used <= 8700 and used + toa > 8700
    assert t + jb.wait_ms(toa, t) == 35 * 3600000
