"""Sensor drivers. Each driver gets its bus, pins and clock passed in; none imports `machine`."""
