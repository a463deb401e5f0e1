"""What a Node does only when it starts: take back the interval a downlink set, count the boot for
the boot-loop guard, and take back the state kept in RTC memory across deep sleep. Node imports this
module for that and releases it afterwards, so its code is not in RAM while the node runs."""

import binascii
import json

from lw.store import Record
from micropython import const
from payload import common

# boot-loop guard: a boot that did not run this long (after its hold) ended early
_STABLE_MS = const(600000)
_LOOP_RESETS = const(3)  # this many early resets in a row make a boot loop
_LOOP_HOLD_MS = const(900000)  # then no uplink (nor join) for this long; doubles per further one
_LOOP_HOLD_MAX_MS = const(21600000)


def init(node, cfg, store, reset_cause, firmware):
    """Node.__init__()'s attributes."""
    clock = node.clock
    node.firmware = firmware
    node.reset_cause = reset_cause
    node.interval_s = cfg["interval_s"]
    node._rec = Record(store, "node") if store is not None else None
    node.boot_ms = clock.now_ms()
    node.next_report_ms = node.boot_ms
    node.status_due = reset_cause != "deep_sleep"  # a status after every real boot
    node.reboot_at_ms = None
    node.rebooted = False
    node._join_at = node.boot_ms
    node._hold_ms = node.boot_ms  # no uplink before this (duty cycle or boot-loop guard)
    node.early_resets = 0
    node._stable_at = None  # when this boot counts as stable (the early-reset count is cleared)
    node._boots = Record(store, "boots") if store is not None else None
    node._pending = None  # (payload, confirmed, measured_ms) of a report not sent yet
    node.uplinks = 0
    node.last_result = None
    node.downlinks = []  # (fport, payload) received, newest last (a few, for the simulator)


def restore_interval(node):
    """The report interval a set_interval downlink stored (it outlives resets)."""
    if node._rec is None:
        return
    saved = node._rec.load()
    if saved is not None and len(saved) == 2:
        s = (saved[0] << 8) | saved[1]
        if common.INTERVAL_MIN_S <= s <= common.INTERVAL_MAX_S:
            node.interval_s = s


def count_boot(node, reset_cause):
    """Count this boot as early until it has run _STABLE_MS; after _LOOP_RESETS early resets in
    a row, hold uplinks and joins back (15 min, doubling up to 6 h) and then send one status
    with reset cause "boot_loop". The control loop (valve) runs as usual meanwhile."""
    rec = node._boots
    if rec is None:
        return
    raw = rec.load()
    early = raw[0] if raw is not None and len(raw) == 1 else 0
    if rec.damaged and raw is None:
        early = _LOOP_RESETS  # the count is unreadable: assume the worst
    if reset_cause == "deep_sleep":
        if early:
            rec.save(b"\x00")  # the run before went to sleep as planned: no loop
        return
    node.early_resets = early
    rec.save(bytes((min(early + 1, 255),)))  # until proven stable, this boot counts as early
    hold = 0
    if early >= _LOOP_RESETS:
        hold = _LOOP_HOLD_MS
        for _ in range(early - _LOOP_RESETS):
            hold *= 2
            if hold >= _LOOP_HOLD_MAX_MS:
                hold = _LOOP_HOLD_MAX_MS
                break
        node._hold_ms = node._join_at = node.next_report_ms = node.boot_ms + hold
        node.reset_cause = "boot_loop"  # what the one status after the hold reports
        node._log("boot loop: %d early resets, no uplink for %d s" % (early, hold // 1000))
    node._stable_at = node.boot_ms + hold + _STABLE_MS


def restore_retained(node):
    """Take back what Node.retain_state() kept before deep sleep."""
    try:
        st = json.loads(node.retain.read())
        node.next_report_ms = node.boot_ms + max(0, int(st["due"]))
        node.status_due = bool(st["st"])
        node.app.restore_retained(st["app"])
        # the MAC's exact counters and duty-cycle timers: no flash write per wake-up
        node.mac.restore_retained(binascii.unhexlify(st["mac"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        node._log("retained state unreadable: starting fresh")
