"""lw.mac end to end on a simulated radio and network: join, uplinks, downlinks, and faults."""

from lw import mac as lwmac
from lw import region
from simnet import build_data_down, build_join_accept

from lwsim import APP_KEY, DAY_MS, Rig, abp_cfg, otaa_cfg
from mptest import raises


def test_otaa_join_then_uplink_decodes_at_network():
    rig = Rig()
    assert not rig.mac.joined
    r = rig.mac.join()
    assert r.status == lwmac.JOINED and rig.mac.joined
    assert rig.mac.dev_addr == rig.net.dev_addr
    res = rig.send(7, b"hello")
    assert res.status == lwmac.SENT and res.fcnt == 0
    up = rig.net.data_uplinks()[-1]
    assert up.mic_ok and up.fport == 7 and up.payload == b"hello" and up.fcnt32 == 0
    assert up.fctrl & 0x80  # ADR bit


def test_join_accept_opens_rx1_5s_after_tx_done_and_rx2_6s():
    rig = Rig()
    rig.net.answer_joins = False
    r = rig.mac.join()
    assert r.status == lwmac.JOIN_FAILED
    end = rig.radio.uplinks[-1][5]
    opens = [(e[0], e[3], e[4]) for e in rig.radio.rx_log]
    assert len(opens) == 2
    f1, o1, c1 = opens[0]
    assert f1 == rig.radio.uplinks[-1][1] and o1 <= end + 5000 <= c1
    f2, o2, c2 = opens[1]
    assert f2 == region.RX2_FREQ_HZ and o2 <= end + 6000 <= c2


def test_join_accept_in_rx2_is_accepted():
    rig = Rig()
    rig.net.use_rx2 = True
    assert rig.mac.join().status == lwmac.JOINED


def test_devnonce_increments_and_is_never_reused_across_resets():
    rig = Rig()
    rig.net.answer_joins = False
    for _ in range(3):
        rig.mac.join(max_wait_ms=DAY_MS)
    rig.reboot()
    rig.mac.join(max_wait_ms=DAY_MS)
    rig.net.answer_joins = True
    rig.reboot()
    assert rig.mac.join(max_wait_ms=DAY_MS).status == lwmac.JOINED
    assert rig.net.dev_nonces == [0, 1, 2, 3, 4]


def test_replayed_join_accept_cannot_reset_session():
    rig = Rig().joined()
    old_accept = rig.net.last_join_accept
    for _ in range(3):
        rig.send()
    keys = (rig.mac.dev_addr, rig.mac.fcnt_up)
    # an attacker replays the old join-accept in the windows of a new join-request
    rig.net.answer_joins = False
    real_on_uplink = rig.radio.on_uplink

    def replay(frame, freq, sf, bw, start, end):
        real_on_uplink(frame, freq, sf, bw, start, end)
        rig.radio.schedule(old_accept, freq, sf, bw, end + 5000)

    rig.radio.on_uplink = replay
    r = rig.mac.join(max_wait_ms=DAY_MS)
    assert r.status == lwmac.JOIN_FAILED
    assert (rig.mac.dev_addr, rig.mac.fcnt_up) == keys
    # and after a reset the persisted JoinNonce still refuses it
    rig.reboot()
    assert rig.mac.join(max_wait_ms=DAY_MS).status == lwmac.JOIN_FAILED


def test_join_accept_with_bad_mic_or_wrong_key_is_ignored():
    rig = Rig()
    rig.net.answer_joins = False
    good = build_join_accept(APP_KEY, 5, 0x13, 0x26000001)
    bad = bytearray(good)
    bad[-1] ^= 1
    wrong_key = build_join_accept(bytes(16), 6, 0x13, 0x26000002)
    for frame in (bytes(bad), wrong_key, b"\x20\x01\x02"):
        real = rig.radio.on_uplink

        def deliver(f, freq, sf, bw, start, end, frame=frame, real=real):
            rig.radio.schedule(frame, freq, sf, bw, end + 5000)

        rig.radio.on_uplink = deliver
        assert rig.mac.join(max_wait_ms=DAY_MS).status == lwmac.JOIN_FAILED
        rig.radio.on_uplink = real
    assert not rig.mac.joined


def test_join_accept_for_another_devnonce_yields_no_working_session():
    """LoRaWAN 1.0.x join-accepts do not name the DevNonce: one answering an older join-request
    carries that exchange's JoinNonce, so the JoinNonce rule refuses it; one with a fresh
    JoinNonce derives other keys, and its first downlink then fails the MIC."""
    rig = Rig().joined()
    first_nonce = rig.net.join_nonce
    rig.net.answer_joins = False
    stale = build_join_accept(APP_KEY, first_nonce, 0x13, 0x26AAAAAA)
    real = rig.radio.on_uplink

    def deliver(f, freq, sf, bw, start, end):
        real(f, freq, sf, bw, start, end)
        rig.radio.schedule(stale, freq, sf, bw, end + 5000)

    rig.radio.on_uplink = deliver
    assert rig.mac.join(max_wait_ms=DAY_MS).status == lwmac.JOIN_FAILED
    assert rig.mac.dev_addr == rig.net.dev_addr


def test_cflist_channels_are_used():
    rig = Rig()
    extra = [867100000, 867300000, 867500000, 867700000, 867900000]
    rig.net.cflist_hz = extra
    rig.joined()
    chans = [c[1] for c in rig.mac.enabled_channels()]
    assert chans == list(region.DEFAULT_CHANNELS_HZ) + extra
    used = set()
    for _ in range(100):
        rig.send()
        used.add(rig.radio.uplinks[-1][1])
    assert used == set(chans)


def test_uplink_fcnt_beyond_65535_verifies_at_network():
    rig = Rig(abp_cfg())
    rig.mac.fcnt_up = 65534
    rig.net.fcnt_up_last = 65530
    for want in (65534, 65535, 65536, 65537):
        rig.send(2, b"\xaa\xbb")
        up = rig.net.data_uplinks()[-1]
        assert up.fcnt32 == want and up.mic_ok and up.payload == b"\xaa\xbb"


def test_downlink_in_rx1_delivered_with_fpending():
    rig = Rig().joined()
    rig.net.queue.append({"fport": 10, "payload": b"\x01\x02", "fpending": True})
    res = rig.send()
    assert res.downlink == (10, b"\x01\x02") and res.fpending
    assert rig.mac.fcnt_down_next == 1


def test_rx1_dr_offset_and_rx_delay_from_join_accept():
    rig = Rig(otaa_cfg(dr=5))
    rig.net.join_dl_settings = 0x20 | 3  # RX1DROffset 2, RX2 DR3
    rig.net.join_rx_delay = 3
    rig.joined()
    assert rig.mac.rx1_dr_offset == 2 and rig.mac.rx2_dr == 3 and rig.mac.rx_delay_ms == 3000
    rig.net.queue.append({"fport": 3, "payload": b"z"})
    res = rig.send()
    assert res.downlink == (3, b"z")
    rx = [e for e in rig.radio.rx_log if e[5]][-1]
    assert (rx[1], rx[2]) == (region.DR_SF[3], region.DR_BW[3])  # DR5 - 2


def test_confirmed_uplink_retries_until_ack_same_fcnt():
    rig = Rig().joined()
    rig.net.ack_confirmed = False
    res = rig.send(1, b"alarm", confirmed=True)
    assert res.status == lwmac.NO_ACK and res.tx_count == 4
    ups = rig.net.data_uplinks()
    assert [u.fcnt32 for u in ups[-4:]] == [0, 0, 0, 0] and all(u.confirmed for u in ups[-4:])
    rig.net.ack_confirmed = True
    res = rig.send(1, b"alarm", confirmed=True)
    assert res.status == lwmac.ACKED and res.tx_count == 1 and res.fcnt == 1


def test_confirmed_downlink_is_acked_in_next_uplink():
    rig = Rig().joined()
    rig.net.queue.append({"fport": 4, "payload": b"on", "confirmed": True})
    rig.send()
    rig.send()
    assert rig.net.data_uplinks()[-1].fctrl & 0x20


def test_corrupt_and_foreign_downlinks_are_dropped():
    rig = Rig().joined()
    net = rig.net
    good = build_data_down(net.nwk_s_key, net.app_s_key, net.dev_addr, 0, fport=1, payload=b"ok")
    flipped = bytearray(good)
    flipped[10] ^= 0x40
    other = build_data_down(net.nwk_s_key, net.app_s_key, net.dev_addr + 1, 0, fport=1, payload=b"ok")
    for frame in (bytes(flipped), other, good[:7], b"", b"\xff" * 20, good[:-1]):
        real = rig.radio.on_uplink

        def deliver(f, freq, sf, bw, start, end, frame=frame):
            rig.radio.schedule(frame, freq, sf, bw, end + 1000)

        rig.radio.on_uplink = deliver
        res = rig.send()
        rig.radio.on_uplink = real
        assert res.status == lwmac.SENT and res.downlink is None
    assert rig.mac.fcnt_down_next == 0


def test_downlink_fcnt_that_jumps_back_is_refused():
    rig = Rig().joined()
    rig.net.queue.append({"fport": 1, "payload": b"a", "fcnt": 10})
    assert rig.send().downlink == (1, b"a")
    for f in (10, 5, 0):  # replay, and counters that jump back
        rig.net.queue.append({"fport": 1, "payload": b"b", "fcnt": f})
        assert rig.send().downlink is None
    rig.net.queue.append({"fport": 1, "payload": b"c", "fcnt": 11})
    assert rig.send().downlink == (1, b"c")
    # a counter more than MAX_FCNT_GAP (16384) ahead is refused too, even with a valid MIC
    rig.net.queue.append({"fport": 1, "payload": b"far", "fcnt": 12 + 16384})
    assert rig.send().downlink is None
    assert rig.mac.fcnt_down_next == 12
    # FCntDown survives a reset
    rig.reboot()
    assert rig.mac.fcnt_down_next == 12


def test_payload_too_long_for_dr_is_refused_not_sent():
    rig = Rig(otaa_cfg(dr=0, adr=False)).joined()
    n = len(rig.radio.uplinks)
    assert rig.mac.max_payload() == 51
    assert rig.send(1, bytes(52)).status == lwmac.TOO_LONG
    assert len(rig.radio.uplinks) == n
    assert rig.send(1, bytes(51)).status == lwmac.SENT


def test_full_duty_cycle_budget_refuses_and_never_transmits():
    rig = Rig(otaa_cfg(dr=0, adr=False)).joined()
    rig.clock.advance(3600000)
    r1 = rig.mac.send(1, bytes(51), max_wait_ms=0)
    assert r1.status == lwmac.SENT
    n = len(rig.radio.uplinks)
    r2 = rig.mac.send(1, bytes(51), max_wait_ms=0)
    assert r2.status == lwmac.DUTY_CYCLE and r2.wait_ms > 200000
    assert len(rig.radio.uplinks) == n
    # every frame on the 868.0-868.6 band keeps the 1 % rule: start gap >= 100 x airtime
    for _ in range(3):
        assert rig.send(1, bytes(51)).status == lwmac.SENT
    ups = [u for u in rig.radio.uplinks if 868000000 <= u[1] < 868600000]
    for a, b in zip(ups, ups[1:]):
        assert b[4] - a[4] >= (a[5] - a[4]) * 100 - 1


def test_join_backoff_refuses_join_storm():
    rig = Rig(otaa_cfg(join_dr=0))
    rig.net.answer_joins = False
    airtime = 0
    refused = None
    for _ in range(60):
        r = rig.mac.join(max_wait_ms=0)
        if r.status == lwmac.JOIN_BACKOFF:
            refused = r
            rig.clock.sleep_ms(min(r.wait_ms, 60000))
            if rig.clock.now_ms() > 3600000:
                break
            continue
        airtime += r.toa_ms
    assert refused is not None
    assert airtime <= 36000


def test_abp_session_and_counters_survive_reset():
    rig = Rig(abp_cfg(fcnt_persist_every=4))
    for _ in range(6):
        rig.send()
    rig.reboot()
    rig.send()
    fc = [u.fcnt32 for u in rig.net.data_uplinks()]
    assert fc[:6] == [0, 1, 2, 3, 4, 5]
    assert fc[6] > 5  # skipped ahead to the reserved block's end
    assert fc[6] == 8


def test_send_before_join_and_bad_arguments():
    rig = Rig()
    assert rig.mac.send(1, b"x").status == lwmac.NOT_JOINED
    raises(ValueError, rig.mac.send, 0, b"x")
    raises(ValueError, rig.mac.send, 224, b"x")
    raises(lwmac.ConfigError, Rig, {"activation": "otaa", "dev_eui": 1, "join_eui": 2, "app_key": "00"})
    raises(lwmac.ConfigError, Rig, {"activation": "psk"})
    raises(lwmac.ConfigError, Rig, otaa_cfg(dr=9))
    e = raises(lwmac.ConfigError, Rig, abp_cfg(nwk_s_key="zz"))
    assert "nwk_s_key" in str(e)
    raises(lwmac.ConfigError, Rig(abp_cfg()).mac.join)


def test_config_accepts_hex_strings():
    cfg = {
        "activation": "otaa",
        "dev_eui": "70B3D57ED0000001",
        "join_eui": "70B3D57ED00000AA",
        "app_key": "0102030405060708090a0b0c0d0e0f10",
    }
    rig = Rig(cfg).joined()
    assert rig.mac.dev_eui == 0x70B3D57ED0000001


def test_radio_failure_never_reuses_an_fcnt():
    rig = Rig(abp_cfg())
    rig.send(1, b"a")

    class Broken(Exception):
        pass

    real = rig.radio.transmit

    def fail(*a):
        raise Broken()

    rig.radio.transmit = fail
    raises(Broken, rig.send, 1, b"b")
    rig.radio.transmit = real
    rig.send(1, b"c")
    assert [u.fcnt32 for u in rig.net.data_uplinks()] == [0, 2]
