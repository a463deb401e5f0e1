"""What a node keeps in retained RAM (ESP32 RTC memory) across deep sleep, written before it:
Node.retain_state() loads this module for the call and releases it after (apps/startup.py takes
the state back after the wake-up)."""

import binascii
import json


def write(node, sleep_ms):
    """The report due time, the app's and the MAC's state, as JSON into node.retain."""
    now = node.clock.now_ms()
    st = {
        "due": node.next_report_ms - now - sleep_ms,
        "app": node.app.retained(),
        "st": node.status_due,
        "mac": binascii.hexlify(node.mac.retained()).decode(),
    }
    node.retain.write(json.dumps(st).encode())
