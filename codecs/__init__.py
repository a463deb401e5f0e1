"""LoRaWAN payload codecs and the LoRaWAN 1.0.x frame layer (bytes <-> meaning)."""
