"""lw.store.Record (two CRC-checked slots) and the MAC's counters across resets and brown-outs."""

from lw.store import Record
from memstore import MemStore, PowerCut

from lwsim import Rig, abp_cfg, otaa_cfg
from mptest import raises


def test_record_roundtrip_and_alternating_slots():
    st = MemStore()
    rec = Record(st, "r")
    assert rec.load() is None
    rec.save(b"one")
    rec.save(b"two")
    assert sorted(st.data) == ["r.a", "r.b"]
    assert Record(st, "r").load() == b"two"
    rec.save(b"three")
    r2 = Record(st, "r")
    assert r2.load() == b"three" and r2.seq == 3


def test_record_torn_write_at_every_byte_keeps_old_or_new():
    for cut in range(0, 30):
        st = MemStore()
        rec = Record(st, "r")
        rec.save(b"old-value-1234")
        rec.save(b"old-value-5678")
        st.cut_after(cut)
        raises(PowerCut, rec.save, b"new-value-9999")
        got = Record(st, "r").load()
        assert got in (b"old-value-5678", b"new-value-9999"), (cut, got)
        # the next save after the reboot still works and wins
        r2 = Record(st, "r")
        r2.load()
        r2.save(b"after")
        assert Record(st, "r").load() == b"after"


def test_record_rejects_corrupt_slots():
    st = MemStore()
    rec = Record(st, "r")
    rec.save(b"good")
    rec.save(b"newer")
    bad = bytearray(st.data["r.b"])
    bad[7] ^= 0xFF
    st.data["r.b"] = bytes(bad)
    assert Record(st, "r").load() == b"good"
    st.data["r.a"] = b"\x00\x01"
    assert Record(st, "r").load() is None


def _seq(store, name):
    r = Record(store, name)
    r.load()
    return r.seq


def test_fcnt_persisted_in_blocks_not_every_frame():
    rig = Rig(abp_cfg(fcnt_persist_every=16))
    before = rig.store.writes
    seq = Record(rig.store, "lwstate")
    seq.load()
    s0 = seq.seq
    for _ in range(32):
        rig.send()
    # 32 frames reserve 2 blocks of 16: 2 writes, not 32 (plus the airtime ledger's reserve:
    # 1/8 of the band's hour covers many short frames)
    seq.load()
    assert seq.seq - s0 == 2
    assert rig.store.writes - before <= 2 + 2


def test_brownout_during_counter_write_never_lowers_fcnt():
    """Cut the power at every byte of the reservation write; after each reboot the next FCntUp is
    above every counter already on air."""
    length = None
    cut = 0
    while length is None or cut <= length + 8:
        rig = Rig(abp_cfg(fcnt_persist_every=4), seed=cut)
        for _ in range(4):
            rig.send()
        sent = [u.fcnt32 for u in rig.net.data_uplinks()]
        if length is None:
            length = len(rig.store.data["lwstate.a"])
        rig.store.cut_after(cut)
        raises(PowerCut, rig.send)
        assert [u.fcnt32 for u in rig.net.data_uplinks()] == sent  # nothing sent past a failed write
        rig.reboot()
        rig.send()
        assert rig.net.data_uplinks()[-1].fcnt32 > max(sent), cut
        assert rig.net.data_uplinks()[-1].mic_ok
        cut += 7


def test_brownout_during_join_persist_keeps_devnonce_unique():
    rig = Rig(otaa_cfg())
    rig.net.answer_joins = False
    rig.mac.join(max_wait_ms=10**8)
    rig.store.cut_after(20)
    raises(PowerCut, rig.mac.join, 10**8)  # DevNonce write torn: the request was not sent
    rig.reboot()
    rig.net.answer_joins = True
    assert rig.mac.join(max_wait_ms=10**8).ok
    # the torn slot may have been a newer copy: the DevNonce skips one, never repeats
    assert rig.net.dev_nonces in ([0, 1], [0, 2])


def test_otaa_session_survives_reset_with_settings():
    rig = Rig(otaa_cfg(fcnt_persist_every=8))
    rig.net.cflist_hz = [867100000, 867300000]
    rig.joined()
    for _ in range(3):
        rig.send()
    mac = rig.reboot()
    assert mac.joined and mac.dev_addr == rig.net.dev_addr
    assert [c[1] for c in mac.enabled_channels()][3:] == [867100000, 867300000]
    rig.send(5, b"after reset")
    up = rig.net.data_uplinks()[-1]
    assert up.mic_ok and up.payload == b"after reset" and up.fcnt32 == 8


def test_reprovisioned_identity_starts_fresh():
    rig = Rig(otaa_cfg()).joined()
    rig.send()
    mac = rig.reboot(otaa_cfg(dev_eui=0x70B3D57ED0000099))
    assert not mac.joined and mac.dev_nonce_next == 0


def test_deep_sleep_retained_state_keeps_exact_fcnt_and_duty_cycle():
    rig = Rig(otaa_cfg(fcnt_persist_every=16, dr=0, adr=False)).joined()
    rig.send(1, bytes(40))
    blob = rig.mac.retained()
    writes = rig.store.writes
    seq_before = _seq(rig.store, "lwstate")
    sent_end = rig.radio.uplinks[-1][5]
    # deep sleep on ESP32 is a reset: a new Mac, with the RTC-memory blob handed back
    mac = rig.reboot()
    assert mac.fcnt_up == 16  # without the blob: skip ahead to the reserved limit
    assert mac.restore_retained(blob)
    assert mac.fcnt_up == 1
    # the 1 % sub-band is still blocked: the restored timers refuse a frame too soon
    r = mac.send(1, bytes(40), max_wait_ms=0)
    assert r.status == "duty_cycle" and r.wait_ms > 0
    rig.clock.sleep_ms(r.wait_ms)
    assert mac.send(1, bytes(40), max_wait_ms=0).status == "sent"
    assert rig.net.data_uplinks()[-1].fcnt32 == 1
    # no counter written for the wake-up (the airtime ledger may reserve a new chunk for the
    # frame: 40 bytes at SF12 is more than half of a chunk)
    assert rig.store.writes - writes <= 1 and _seq(rig.store, "lwstate") == seq_before
    assert rig.radio.uplinks[-1][4] >= sent_end


def test_retained_state_rejected_when_torn_or_stale():
    rig = Rig(abp_cfg(fcnt_persist_every=4))
    rig.send()
    blob = rig.mac.retained()
    torn = bytearray(blob)
    torn[9] ^= 1
    mac = rig.reboot()
    assert not mac.restore_retained(bytes(torn))
    assert not mac.restore_retained(b"")
    assert mac.fcnt_up == 4
    # a blob from before newer flash state (counters went on without it) is refused
    for _ in range(4):
        rig.send()
    mac = rig.reboot()
    assert not mac.restore_retained(blob)
    rig.send()
    fc = [u.fcnt32 for u in rig.net.data_uplinks()]
    assert fc[-1] > max(fc[:-1])


def test_retained_after_clock_restart_is_cautious():
    rig = Rig(abp_cfg(dr=0, adr=False), start_ms=10**7)
    rig.send(1, bytes(40))
    blob = rig.mac.retained()
    rig.clock.t = 1000  # the board's clock restarted from zero
    mac = rig.reboot()
    assert mac.restore_retained(blob)
    r = mac.send(1, bytes(40), max_wait_ms=0)
    assert r.status == "duty_cycle" and r.wait_ms > 100000


def test_join_backoff_survives_resets_no_join_storm():
    """A node that resets over and over (brown-outs, watchdog) keeps its join airtime budget."""
    for clock_restarts in (False, True):
        rig = Rig(otaa_cfg(join_dr=0))
        rig.net.answer_joins = False
        airtime = 0
        for _ in range(80):
            r = rig.mac.join(max_wait_ms=0)
            if r.status == "join_backoff":
                rig.clock.sleep_ms(min(r.wait_ms, 30000))
            else:
                airtime += r.toa_ms
            if clock_restarts:
                rig.clock.t = 1000 + rig.clock.t % 7  # the board's clock starts again from zero
            rig.reboot()
            if not clock_restarts and rig.clock.now_ms() > 3600000:
                break
        assert 0 < airtime <= 36000, (clock_restarts, airtime)


def _newest_slot(store, name):
    a, b = store.data.get(name + ".a"), store.data.get(name + ".b")
    seq_a = int.from_bytes(a[:4], "little") if a else -1
    seq_b = int.from_bytes(b[:4], "little") if b else -1
    return name + (".a" if seq_a > seq_b else ".b")


def test_bit_flip_in_newest_counter_slot_skips_a_block_never_repeats():
    for flip_at in (0, 9, 30):
        rig = Rig(abp_cfg(fcnt_persist_every=4))
        for _ in range(6):  # counters 0..5: blocks reserved up to 4 and then up to 8
            rig.send()
        sent = [u.fcnt32 for u in rig.net.data_uplinks()]
        slot = _newest_slot(rig.store, "lwstate")
        bad = bytearray(rig.store.data[slot])
        bad[flip_at] ^= 0x10  # one bit, after the write had completed
        rig.store.data[slot] = bytes(bad)
        mac = rig.reboot()
        assert mac.joined
        rig.send()
        up = rig.net.data_uplinks()[-1]
        assert up.mic_ok and up.fcnt32 > max(sent), (flip_at, up.fcnt32, sent)
        assert up.fcnt32 == 8  # a full block beyond the older copy's limit (4)


def test_bit_flip_in_newest_join_slot_never_reuses_a_devnonce():
    rig = Rig(otaa_cfg())
    rig.net.answer_joins = False
    rig.mac.join(max_wait_ms=10**8)
    rig.mac.join(max_wait_ms=10**8)  # DevNonces 0 and 1 on air
    slot = _newest_slot(rig.store, "lwstate")
    bad = bytearray(rig.store.data[slot])
    bad[12] ^= 0x01
    rig.store.data[slot] = bytes(bad)
    rig.reboot()
    rig.net.answer_joins = True
    assert rig.mac.join(max_wait_ms=10**8).ok
    nonces = rig.net.dev_nonces
    assert len(set(nonces)) == len(nonces) == 3, nonces
