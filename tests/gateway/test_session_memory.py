"""The registry keeps every registered device's Device and Session in memory (10,000 in a district): their
size per device is held to a bound (tracemalloc, deterministic), and updating them keeps every field."""

from __future__ import annotations

import tracemalloc

from havel.gateway.device_rows import replaced
from havel.gateway.network.sessions import Device, Session

# measured 540 bytes with slotted classes (keys, name and hex DevEUI included); 771 with instance dicts
BOUND = 620


def device(i: int) -> Device:
    s = Session(dev_addr=i, nwk_s_key=bytes(16), app_s_key=bytes(16), fcnt_up=5, epoch=1)
    d = Device(
        name=f"dev{i}", dev_eui=i, codec="air", activation="otaa", join_eui=1, app_key=bytes(16), session=s
    )
    # as the registry does after an uplink
    return replaced(d, {"session": replaced(s, {"fcnt_up": 6}), "last_seen": 1.0})


def test_a_cached_device_with_its_session_stays_small() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        devices = [device(i) for i in range(2000)]
        per_device = (tracemalloc.get_traced_memory()[0] - before) / len(devices)
    finally:
        tracemalloc.stop()
    assert per_device <= BOUND, per_device


def test_replaced_copies_every_field_and_changes_only_the_given_ones() -> None:
    d = device(0x70B3D57ED0000001)
    assert d.eui_hex == "70B3D57ED0000001" and d.session is not None
    assert d.session.fcnt_up == 6 and d.last_seen == 1.0
    e = replaced(d, {"battery": 200})
    assert e.battery == 200 and d.battery is None
    assert (e.name, e.dev_eui, e.eui_hex, e.session, e.app_key) == (
        d.name,
        d.dev_eui,
        d.eui_hex,
        d.session,
        d.app_key,
    )
    assert e == replaced(d, {"battery": 200}) and e != d
