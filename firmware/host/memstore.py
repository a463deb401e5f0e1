"""In-memory Store for tests and the gateway simulator, with brown-out injection.

`cut_after(n)` arms a power cut: the next write stops after n bytes (the slot then holds the new
bytes up to n followed by what was there before, as a half-programmed flash page would) and raises
PowerCut. Nothing else is lost: a "reboot" is a new MAC on the same MemStore.
"""


class PowerCut(Exception):
    """The simulated supply dropped during a write."""


class MemStore:
    def __init__(self):
        self.data = {}
        self.writes = 0
        self._cut = None

    def read(self, name):
        v = self.data.get(name)
        return None if v is None else bytes(v)

    def write(self, name, data):
        self.writes += 1
        if self._cut is not None:
            n = self._cut
            self._cut = None
            old = self.data.get(name, b"")
            self.data[name] = bytes(data[:n]) + old[n:]
            raise PowerCut("power cut after %d of %d bytes of %s" % (n, len(data), name))
        self.data[name] = bytes(data)

    def cut_after(self, n):
        """Arm a brown-out: the next write is torn after n bytes."""
        self._cut = n
