"""tests/firmware/mp/ holds MicroPython test modules: pytest must not import them itself; they run
inside MicroPython and CPython subprocesses through test_mp_suites.py."""

collect_ignore_glob = ["mp/*"]
