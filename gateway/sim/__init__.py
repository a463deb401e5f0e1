"""The simulator behind ``havel sim`` and ``havel demo``: simulated concentrators speaking GWMP to the real
gateway, and simulated nodes running the firmware's real MAC, encoders and valve controller under CPython.

- :mod:`.concentrator`: a packet forwarder over UDP (PUSH_DATA, PULL_DATA keepalives, stat, TX_ACK).
- :mod:`.world`: the weather and the river (a day's temperature curve, a heat wave, a flood).
- :mod:`.nodes`: nodes built from ``firmware/`` (found relative to the repository).
- :mod:`.runner`: the simulation clock (time acceleration) and the node threads.
"""
