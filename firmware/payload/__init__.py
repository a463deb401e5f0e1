"""Payload encoders (uplinks) and decoders (downlinks) of the node, byte for byte the layouts of
docs/payloads.md / codecs/payload (tested against codecs/vectors/*.json).

Every codec module offers `encode(data, fport=1) -> bytes` for its uplinks and
`decode_down(fport, payload) -> dict` for the downlinks the node understands, with the same `data`
dicts as the host codec (`None` = reading absent or faulty).
"""
