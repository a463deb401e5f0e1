"""LoRa radio drivers behind one small interface (see firmware/README.md, "Radio")."""
