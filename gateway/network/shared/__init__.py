"""State shared by the network servers of several roofs (one logical network server per session) on Redis.

:mod:`.store` keeps sessions, counters, DevNonces, the uplink locks and collect lists and the downlink
hand-offs in Redis; :mod:`.roof` makes one roof's network server take part (lock, collect, process once,
hand the downlink to the roof with the best gateway); :mod:`.roofd` is a small roof process speaking GWMP
over UDP. See docs/multiroof.md."""
