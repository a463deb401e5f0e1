"""Gateway backends: how receptions come in from concentrators and downlinks go out to them.

Each backend speaks one protocol (:mod:`.semtech_udp`: the Semtech UDP packet forwarder's GWMP) and meets
the :class:`~havel.gateway.backends.base.Backend` interface the daemon's intake uses; the network server
behind it sees only protocol-free receptions.
"""
