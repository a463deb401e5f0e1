"""LoRaWAN 1.0.x frame layer (host side): frames, crypto, frame counters, MAC commands, EU868, airtime.

Modules: :mod:`ids` (identifiers, keys, hex/base64), :mod:`phy` (parse/build PHYPayloads), :mod:`crypto`,
:mod:`fcnt`, :mod:`maccmds`, :mod:`eu868`, :mod:`airtime`, :mod:`decode` (the CLI's JSON), :mod:`cli`.
DevAddr, EUIs and NetID are ``int`` (big-endian value), keys 16-byte ``bytes``, counters ``int``.
"""
