"""The Semtech UDP packet-forwarder backend (GWMP v1/v2).

:mod:`.gwmp` is the datagram codec, :mod:`.rxpk` reads the uplink JSON (``rxpk``, ``stat``), :mod:`.txpk`
builds the downlink JSON, :mod:`.forwarders` keeps what is known of each packet forwarder and whom the
port serves, and :mod:`.server` is the UDP listener that ties them together.
"""
