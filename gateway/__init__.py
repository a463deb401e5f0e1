"""The gateway daemon: packet-forwarder input, edge network server, durable outbox, northbound sinks."""
