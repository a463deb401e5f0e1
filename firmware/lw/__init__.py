"""Havel's LoRaWAN 1.0.x class-A MAC for MicroPython (EU868)."""
