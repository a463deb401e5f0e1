"""A clock for tests and simulations: time only moves when someone sleeps or advances it."""


class FakeClock:
    """Clock interface (see firmware/README.md): now_ms() and sleep_ms(ms)."""

    def __init__(self, start_ms=0):
        self.t = start_ms

    def now_ms(self):
        return self.t

    def sleep_ms(self, ms):
        if ms > 0:
            self.t += ms

    def advance(self, ms):
        self.t += ms
