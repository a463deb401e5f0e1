"""``havel gateway setup``: the rooftop concentrator, its packet forwarder and the systemd units.

- :mod:`.boards`: the supported concentrator boards and roof kits, read from ``hw/gateways/``.
- :mod:`.pktfwd`: the packet forwarder's EU868 ``global_conf.json`` (channel plan from the region data).
- :mod:`.files`: the reset script (libgpiod), the systemd units and ``/etc/havel/gateway.toml``.
- :mod:`.install`: the plan of files and folders, applied under ``--root`` or printed by ``--dry-run``.
- :mod:`.watchdog`: the daemon component that restarts a silent forwarder with a concentrator reset.
"""
