"""Test support: real services (Mosquitto, MicroPython, direwolf) started by the tests."""
