"""The disaster relay: outage detection, priority shaping and relays over mesh and amateur radio.

Pure codecs and rules (``kiss``, ``ax25``, ``aprs``, ``signing``, ``record``, ``lines``, ``events``,
``envelope``, ``strictjson``, ``priority``, ``budget``, ``outage``, ``aprs_config``, ``aprs_telemetry``) are
apart from the I/O (``tnc``, ``aprs_relay``, ``mqtt_relay``, ``reticulum_relay``, ``receive``,
``manager``). The message formats are documented in ``docs/relay.md``.
"""
