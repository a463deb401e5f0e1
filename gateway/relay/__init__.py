"""The disaster relay: outage detection, priority shaping and relays over mesh and amateur radio.

Pure codecs and rules (``kiss``, ``ax25``, ``aprs``, ``signing``, ``envelope``, ``priority``, ``budget``,
``outage``) are apart from the I/O (``aprs_relay``, ``mqtt_relay``, ``reticulum_relay``, ``receiver``,
``manager``). The message formats are documented in ``docs/relay.md``.
"""
