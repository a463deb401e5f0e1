"""The edge network server's parts: what a reception is, deduplication, the data and join paths, the
messages they build and their priority (see docs/gateway.md, "Architecture")."""
