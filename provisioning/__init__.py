"""Provisioning: find boards, flash the firmware bundle, keys and registry, kits for volunteers."""
