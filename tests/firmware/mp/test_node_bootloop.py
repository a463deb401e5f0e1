"""The boot-loop guard: a node that keeps resetting early holds its uplinks back, reports the loop
once when allowed, and behaves normally again once it has run long enough."""

from nodetest import LORAWAN, World
from test_lw_dutycycle import _check_legal

SF12 = dict(LORAWAN)
SF12.update({"dr": 0, "adr": False, "join_dr": 0})
BOOT_LOOP = 6  # reset cause code in the status uplink


def _causes(w):
    return [u.payload[0] & 0x0F for u in w.uplinks(2)]


def _crash_loop(w, seconds, clock_restarts):
    """Reset every 10 s; returns the frames sent meanwhile as (freq, start, end) in real time."""
    frames = []
    real = 0
    n = len(w.radio.uplinks)
    for _ in range(seconds // 10):
        if clock_restarts:
            w.clock.t = 1000
        w.reset("watchdog")
        t0 = w.clock.now_ms()
        w.run_for(10000)
        for u in w.radio.uplinks[n:]:
            frames.append((u[1], real + u[4] - t0, real + u[5] - t0))
        n = len(w.radio.uplinks)
        real += w.clock.now_ms() - t0
    return frames


def test_crash_loop_backs_off_and_reports_the_loop_once():
    for clock_restarts in (False, True):
        w = World("temperature", {"lorawan": SF12, "interval_s": 900})
        w.run_for(600000)  # joined, status and a report sent; ran 10 min: a stable boot
        assert w.node.mac.joined and _causes(w) == [0]
        before = len(w.uplinks(2))
        frames = _crash_loop(w, 3600, clock_restarts)
        sent_in_loop = len(w.uplinks(2)) - before
        # the first early resets still send their status; then the guard holds uplinks back
        assert sent_in_loop <= 3, (clock_restarts, sent_in_loop)
        _check_legal(frames)
        assert w.node.early_resets >= 200
        # the loop ends: after the hold (6 h at most) one status says "boot_loop"
        w.run_for(6 * 3600000 + 60000)
        causes = _causes(w)[before + sent_in_loop :]
        assert causes == [BOOT_LOOP], (clock_restarts, causes)
        assert any("boot loop" in line for line in w.log)


def test_stable_run_clears_the_count_and_deep_sleep_is_no_early_reset():
    w = World("temperature", {"lorawan": SF12, "interval_s": 900})
    w.run_for(600000)  # a stable first boot (SF12: the duty cycle spaces the frames minutes apart)
    for _ in range(2):  # two early resets: not a loop yet
        w.reset("watchdog")
        w.run_for(300000)
    assert _causes(w) == [0, 1, 1]
    w.run_for(600000)  # this boot ran more than 10 min: stable, the count starts again
    for _ in range(2):
        w.reset("brownout")
        w.run_for(300000)
    assert _causes(w)[-2:] == [2, 2] and w.node.early_resets == 1  # sent at boot: no hold
    w.run_for(600000)
    # deep-sleep wake-ups are the normal life of a sleeping node, never early resets
    for _ in range(5):
        w.reset("deep_sleep")
        w.run_for(30000)
    w.reset("watchdog")
    assert w.node.early_resets == 0 and w.node.sleep_ms(w.clock.now_ms()) < 900000  # no hold
    n = len(w.uplinks(2))
    # (each boot counts the airtime reserved on flash as just spent: the status may wait for it)
    w.run_for(3600000)
    assert _causes(w)[n:] == [1]


def test_hold_doubles_with_every_further_early_reset():
    w = World("temperature", {"lorawan": SF12, "interval_s": 900})
    w.run_for(5000)
    holds = []
    for _ in range(9):
        w.reset("watchdog")
        holds.append(w.node.sleep_ms(w.clock.now_ms()))  # how long before anything is sent
        w.run_for(5000)
    # the first boot and two resets ended early: from the third early reset on, a hold
    assert holds[2:] == [900000, 1800000, 3600000, 7200000, 14400000, 21600000, 21600000], holds
    assert max(holds[:2]) < 900000
