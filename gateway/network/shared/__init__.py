"""State shared by the network servers of several roofs (one logical network server per session) on Redis.

:class:`.state.SharedState` keeps sessions, counters, DevNonces, the uplink locks and collect lists, the
command queues and the downlink hand-offs in Redis (:mod:`.connection`, :mod:`.scripts`, :mod:`.devices`,
:mod:`.frames`, :mod:`.queue`); :mod:`.sessionstore` is the network server's session store on it; :mod:`.roof`
makes one roof's network server take part (lock, collect, process once, hand the downlink to the roof with
the best gateway) and :mod:`.answers` builds what goes down after an uplink (ACK, MAC answers and ADR from
:mod:`.mac`, queued commands and their results from :mod:`.results`); :mod:`.daemon` is the gateway daemon's
network server on it, :mod:`.roofd` a small roof process speaking GWMP over UDP. See docs/multiroof.md."""
