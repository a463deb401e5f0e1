"""The loop every node runs: read sensors, encode, send through the MAC, handle downlinks, sleep.

    node = Node(app, mac, clock, cfg, store=store)
    node.step() -> ms until the next step is due
    node.run(sleeper, watchdog)     # the board's main loop (never returns on a board)

An app (apps/air.py, water.py, temperature.py, cooling.py) provides:
    app.poll(now_ms)        work at every wake-up (measure, control); may set app.urgent
    app.poll_ms(now_ms)     longest sleep the app allows from now (None: only the report interval)
    app.report(now_ms)      the data dict of the FPort 1 uplink (reads sensors as needed)
    app.encode(data)        its bytes
    app.confirmed           send the next report as a confirmed uplink (alarms)
    app.urgent              send a report at once (alarm crossing)
    app.interval_s(base)    reporting interval in force (e.g. shorter during an alarm)
    app.sent(result)        after a report went out (or failed)
    app.downlink(fport, payload, now_ms) -> True when it was one of the app's own ports
    app.battery_mv()        for the status uplink (None: mains or no divider)
    app.save() / app.shutdown()   persist state / fail safe (valve closed) before a reset
"""

from lw import mac as lwmac
from lw.store import Record
from micropython import const
from payload import common
from payload.fields import PayloadError

FIRMWARE_VERSION = "0.1.0"
_FPORT_DATA = const(1)
_JOIN_RETRY_MS = const(60000)  # between join attempts when the MAC gives no wait (join back-off applies too)
_DUTY_RETRY_MS = const(5000)


class Node:
    """A node: an app plus the MAC, driven step by step (deterministic on a fake clock)."""

    # set by apps/startup.py init() (annotations only: MicroPython compiles no code for them)
    _boots: "Record | None"
    boot_ms: int
    downlinks: list
    firmware: str
    interval_s: int
    reboot_at_ms: "int | None"
    rebooted: bool
    reset_cause: str

    def __init__(
        self,
        app,
        mac,
        clock,
        cfg,
        store=None,
        console=None,
        reset_cause="power_on",
        firmware=FIRMWARE_VERSION,
        on_reboot=None,
        retain=None,
    ):
        self.app = app
        self.mac = mac
        self.clock = clock
        self.console = console
        self.retain = retain  # RAM that survives deep sleep (ESP32 RTC memory): read() / write(b)
        self.on_reboot = on_reboot  # board: machine.reset; host: a callback (None: just flag it)
        # boot-only code (the other attributes, the interval a downlink set, the boot-loop guard's count,
        # retained state): apps/startup.py, released after
        from apps import startup

        try:
            startup.init(self, cfg, store, reset_cause, firmware)
            startup.restore_interval(self)
            startup.count_boot(self, reset_cause)
            if retain is not None and reset_cause == "deep_sleep":
                startup.restore_retained(self)
        finally:
            del startup
            lwmac.release("apps.startup")

    def _check_stable(self, now):
        if self._stable_at is not None and now >= self._stable_at and self._boots is not None:
            self._stable_at = None
            self._boots.save(b"\x00")

    # -- deep sleep ------------------------------------------------------------------------------------
    def retain_state(self, sleep_ms):
        """Keep what the next wake-up needs (report due time, app state) in retained RAM. Its code
        (apps/retain.py) is loaded for the call, once before each deep sleep, and released after."""
        if self.retain is None:
            return
        from apps import retain

        try:
            retain.write(self, sleep_ms)
        finally:
            del retain
            lwmac.release("apps.retain")

    # -- helpers -------------------------------------------------------------------------------------
    def _log(self, msg):
        if self.console is not None:
            self.console("havel: " + msg)

    def status_data(self, now_ms):
        """The data dict of the FPort 2 status uplink."""
        return {
            "firmware": self.firmware,
            "reset_cause": self.reset_cause,
            "uptime": (now_ms - self.boot_ms) // 1000,
            "battery": self.app.battery_mv(),
            "interval": self.interval_s,
        }

    # -- downlinks -----------------------------------------------------------------------------------
    def handle_downlink(self, fport, payload, now_ms):
        """Act on one downlink; bad ones are logged and ignored (never acted on half-way). The app's
        own ports first (an app loads what its ports need); the common ports and the refusal in
        apps/nodedown.py, loaded for them and released after, so an app's downlink (a cooling
        node's settings) does not hold that code too."""
        if len(self.downlinks) >= 8:
            self.downlinks.pop(0)
        self.downlinks.append((fport, bytes(payload)))
        err = None
        try:
            if self.app.downlink(fport, payload, now_ms):
                return True
        except PayloadError as e:
            err = e
        from apps import nodedown

        try:
            return nodedown.handle(self, fport, payload, now_ms, err)
        finally:
            del nodedown
            lwmac.release("apps.nodedown")

    def _log_errors(self):
        for e in self.app.errors:
            self._log(e)

    def _send(self, fport, payload, confirmed):
        r = self.mac.send(fport, payload, confirmed)
        self.last_result = r
        if r.tx_count:
            self.uplinks += 1
        if r.downlink is not None:
            self.handle_downlink(r.downlink[0], r.downlink[1], self.clock.now_ms())
        return r

    # -- one wake-up ---------------------------------------------------------------------------------
    def step(self):
        """Do what is due now; returns ms until the next step is due."""
        app = self.app
        now = self.clock.now_ms()
        if self.reboot_at_ms is not None and now >= self.reboot_at_ms:
            # the reboot a downlink asked for: its code is with the downlink code (apps/nodedown.py)
            from apps import nodedown

            nodedown.reboot(self)
            del nodedown
            lwmac.release("apps.nodedown")
            return 0
        app.poll(now)
        self._check_stable(now)
        mac = self.mac
        if not mac.joined and now >= self._join_at:
            r = mac.join()
            self.last_result = r
            now = self.clock.now_ms()
            if not r.ok:
                self._join_at = now + max(r.wait_ms, _JOIN_RETRY_MS)
                self._log("join: %s, next try in %d s" % (r.status, (self._join_at - now) // 1000))
        if mac.joined and now >= self._hold_ms:
            if self.status_due:
                r = self._send(common.FPORT_STATUS, common.encode_status(self.status_data(now)), False)
                now = self.clock.now_ms()
                if r.status == lwmac.DUTY_CYCLE:
                    self._hold_ms = now + max(r.wait_ms, _DUTY_RETRY_MS)
                else:
                    self.status_due = False
            due = self._pending is not None or app.urgent or now >= self.next_report_ms
            if now >= self._hold_ms and due:
                p = self._pending
                if p is None or (app.urgent and not p[1]):
                    # measure once; a report the duty cycle held back goes out later as measured
                    data = app.report(now)
                    self._log_errors()
                    p = self._pending = (app.encode(data), app.confirmed, now)
                r = self._send(_FPORT_DATA, p[0], p[1])
                now = self.clock.now_ms()
                if r.status == lwmac.DUTY_CYCLE:
                    self._hold_ms = now + max(r.wait_ms, _DUTY_RETRY_MS)
                else:
                    self._pending = None
                    app.sent(r)
                    # the interval counts from the measurement: slow sensors (SDS011 warm-up) add no drift
                    self.next_report_ms = p[2] + app.interval_s(self.interval_s) * 1000
        elif not mac.joined and now >= self.next_report_ms:
            app.report(now)  # keep measuring while there is no network (errors still on the console)
            self._log_errors()
            self.next_report_ms = now + app.interval_s(self.interval_s) * 1000
        return self.sleep_ms(now)

    def sleep_ms(self, now):
        """How long the node may sleep from `now`."""
        wake = self.next_report_ms
        if self.mac.joined:
            if self.status_due or self.app.urgent or self._pending is not None:
                wake = now
            if wake < self._hold_ms:
                wake = self._hold_ms  # the duty cycle decides when the next uplink may go
        elif self._join_at < wake:
            wake = self._join_at
        if self.reboot_at_ms is not None and self.reboot_at_ms < wake:
            wake = self.reboot_at_ms
        if self._stable_at is not None and self._stable_at < wake:
            wake = self._stable_at  # to clear the early-reset count
        p = self.app.poll_ms(now)
        if p is not None and now + p < wake:
            wake = now + p
        return max(0, wake - now)

    def run(self, sleeper, watchdog=None, steps=None, chunk_ms=10000, deep=False):
        """The main loop: step, then sleep; the watchdog is fed only here.

        sleeper(ms): light sleep, in chunks of chunk_ms with a watchdog feed between them; with
        deep=True the whole time at once after retain_state() (machine.deepsleep does not return).
        Any exception makes the app fail safe (valve closed) before it propagates."""
        n = 0
        try:
            while steps is None or n < steps:
                ms = self.step()
                n += 1
                if self.rebooted:
                    return
                if watchdog is not None:
                    watchdog.feed()
                if deep and ms > 0:
                    self.app.save()
                    self.retain_state(ms)
                    sleeper(ms)
                    continue
                while ms > 0:
                    part = ms if ms < chunk_ms else chunk_ms
                    sleeper(part)
                    ms -= part
                    if watchdog is not None:
                        watchdog.feed()
        except BaseException:
            self.app.shutdown()
            raise


def build(
    cfg,
    io,
    radio,
    clock,
    store,
    console=None,
    reset_cause="power_on",
    retain=None,
    on_reboot=None,
    battery_byte=None,
):
    """A Node for config `cfg` (checked by config.py) on board I/O `io` (apps/boardboot.py BoardIO, or
    host/simnode.py SimIO for the simulator) with a Radio, Clock and Store."""
    from apps import app_module

    app = app_module(cfg["app"]).build(cfg, io, clock, store)
    mac = lwmac.Mac(radio, clock, store, cfg["lorawan"], battery=battery_byte)
    return Node(
        app,
        mac,
        clock,
        cfg,
        store=store,
        console=console,
        reset_cause=reset_cause,
        retain=retain,
        on_reboot=on_reboot,
    )
