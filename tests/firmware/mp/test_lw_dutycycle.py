"""The MAC's sub-band duty cycle over any one hour, through resets and crash loops."""

from lw import region
from memstore import MemStore

from lwsim import Rig, abp_cfg
from test_lw_region import HOUR, max_hour_airtime


def _by_band(frames):
    """{sub-band: [(start, end)]} from (freq_hz, start, end)."""
    out = {}
    for f, s, e in frames:
        out.setdefault(region.subband(f), []).append((s, e))
    return out


def _check_legal(frames):
    for b, fr in _by_band(frames).items():
        limit = HOUR // region.SB_DIV[b]
        worst = max_hour_airtime(fr)
        assert worst <= limit, (b, worst, limit, len(fr))


def test_mac_keeps_every_rolling_hour_within_the_band_limit():
    for dr, size, hours in ((0, 1, 2), (0, 51, 2), (3, 1, 1)):
        rig = Rig(abp_cfg(dr=dr, adr=False))
        while rig.clock.now_ms() < hours * HOUR + 30 * 60000:
            r = rig.send(1, bytes(size))
            assert r.tx_count == 1, r.status
        _check_legal([(u[1], u[4], u[5]) for u in rig.radio.uplinks])


def test_crash_loop_with_an_uplink_at_each_boot_stays_legal():
    """Reset every 10 s, each boot sending an SF12 frame as soon as the MAC allows; the board's
    clock restarts at every reset (no RTC), or keeps running (RTC). Real time is kept aside."""
    for clock_restarts in (True, False):
        store = MemStore()
        rig = Rig(abp_cfg(dr=0, adr=False), store=store)
        real = 0
        frames = []
        while real < 2 * HOUR:
            if clock_restarts:
                rig.clock.t = 1000
            rig.reboot()
            t0 = rig.clock.now_ms()
            r = rig.mac.send(2, bytes(11), max_wait_ms=0)  # the status uplink at boot
            if r.tx_count:
                u = rig.radio.uplinks[-1]
                frames.append((u[1], real + u[4] - t0, real + u[5] - t0))
            rig.clock.sleep_ms(10000)
            real += rig.clock.now_ms() - t0
        assert frames
        _check_legal(frames)


def test_unreadable_ledger_counts_the_band_as_full():
    rig = Rig(abp_cfg(dr=0, adr=False))
    rig.send(1, bytes(10))
    for name in ("lwdc.a", "lwdc.b"):
        if name in rig.store.data:
            bad = bytearray(rig.store.data[name])
            bad[3] ^= 0x40
            rig.store.data[name] = bytes(bad)
    mac = rig.reboot()
    r = mac.send(1, bytes(10), max_wait_ms=0)
    assert r.status == "duty_cycle" and r.wait_ms > HOUR - 60000
