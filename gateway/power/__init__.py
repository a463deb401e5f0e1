"""Power on the roof: the UPS state through Network UPS Tools, and the sizing of battery and solar.

- :mod:`.nut`: a client of NUT's network protocol (upsd, TCP 3493).
- :mod:`.state`: what a UPS reading means for the gateway (mains, on battery, low), as pure functions.
- :mod:`.component`: the daemon component (``[power]``): events, status, metrics, the clean shutdown.
- :mod:`.sizing`: ``havel gateway power``, expected runtime and solar balance from documented draws.
"""
