"""What every app shares: the hooks the node loop calls, with do-nothing defaults."""

from sensors.battery import Battery


def make_battery(io, clock):
    """The battery driver for the board's divider, or None (mains, or measured by a PMU)."""
    b = io.battery()
    if b is None:
        return None
    adc, divider, vref_mv, enable, enable_level = b
    return Battery(adc, clock, divider=divider, vref_mv=vref_mv, enable=enable, enable_level=enable_level)


class App:
    """Base of the node apps (see apps/node.py for the hooks)."""

    name = "app"

    def __init__(self, clock, battery=None):
        self.clock = clock
        self.battery = battery
        self.urgent = False
        self.confirmed = False
        self.errors = []  # sensor errors of the last report, for the serial console

    def _note(self, sensor):
        if sensor.error:
            self.errors.append(sensor.error)

    def poll(self, now_ms):
        pass

    def poll_ms(self, now_ms):
        return None

    def interval_s(self, base_s):
        return base_s

    def sent(self, result):
        self.urgent = False
        self.confirmed = False

    def downlink(self, fport, payload, now_ms):
        return False

    def battery_mv(self):
        if self.battery is None:
            return None
        v = self.battery.read()
        if v is None:
            self._note(self.battery)
        return v

    def save(self):
        pass

    def shutdown(self):
        pass

    def retained(self):
        return None

    def restore_retained(self, state):
        pass
