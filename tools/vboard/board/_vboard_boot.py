# ruff: noqa: B904, UP  (MicroPython code: no contextlib, no exception chaining)
# Runs first on every (soft) boot of the virtual board, inside the real MicroPython interpreter.
# It makes the WebAssembly port look like a microcontroller port to the code the host sends:
# files live under /flash (the board's root), sys.path is a board's, and OSError numbers are the
# standard ones (Emscripten's differ: ENOENT is 44 there) so mpremote can read them.
import builtins
import os
import sys

_EMSCRIPTEN_TO_STD = {63: 1, 44: 2, 29: 5, 8: 9, 2: 13, 20: 17, 54: 20, 31: 21, 28: 22, 51: 28, 55: 39}


def _std(fn):
    def wrapped(*args):
        try:
            return fn(*args)
        except OSError as e:
            n = e.args[0] if e.args else 0
            if isinstance(n, int) and n in _EMSCRIPTEN_TO_STD:
                raise OSError(_EMSCRIPTEN_TO_STD[n])
            raise

    return wrapped


builtins.open = _std(open)
for _name in ("stat", "listdir", "ilistdir", "mkdir", "rmdir", "remove", "rename", "chdir", "statvfs"):
    if hasattr(os, _name):
        setattr(os, _name, _std(getattr(os, _name)))
os.chdir("/flash")
sys.path[:] = ["", ".frozen", "/_vboard", "/flash/lib"]
# The parts' own state (/_vboard/state.json) exists from power-up, as the README says.
import _vboard_state  # noqa: E402  (needs the board's sys.path set just above)

_vboard_state.state()
del _vboard_state
del _name
