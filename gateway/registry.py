"""The gateway's device registry: the devices an operator adds, lists, removes and imports (``havel device
...``), on top of the session and counter store the network server uses
(:class:`~havel.gateway.session_store.SqliteSessionStore`), in the gateway's one SQLite database.

Devices (name, DevEUI, JoinEUI, codec, activation, keys), their session (DevAddr, session keys, frame
counters), the DevNonces they used and their RX settings live in tables next to the outbox, so that a new
frame counter and the outbox record are written in one unit of work. Files in and out:
:mod:`havel.gateway.registry_io`; the rows themselves: :mod:`havel.gateway.device_rows`.
"""

from __future__ import annotations

import logging

from havel.codecs.lorawan.ids import eui_hex, parse_id_hex
from havel.errors import InputError
from havel.gateway.device_rows import delete_device, insert_device, validate
from havel.gateway.network.sessions import Device
from havel.gateway.session_store import SqliteSessionStore

log = logging.getLogger("havel.gateway.registry")


class Registry(SqliteSessionStore):
    """The SQLite session store and device registry (see the module docstring)."""

    def devices(self) -> list[Device]:
        """Every device, by name."""
        return sorted(self._devices.values(), key=lambda d: d.name)

    def count(self) -> int:
        """How many devices are registered (without sorting them: /status asks often)."""
        return len(self._devices)

    def find(self, ident: str) -> Device:
        """A device by name or DevEUI hex; InputError if none."""
        for d in self._devices.values():
            if d.name == ident:
                return d
        try:
            eui = parse_id_hex(ident, what="DevEUI", size=8)
        except InputError:
            eui = None
        if eui is not None and eui in self._devices:
            return self._devices[eui]
        raise InputError(f"no device named or with DevEUI {ident!r}", hint="see 'havel device list'")

    def add(self, dev: Device) -> None:
        """Register a device (InputError when the name, DevEUI or ABP DevAddr+keys clash or are invalid)."""
        self.import_devices([dev])

    def import_devices(self, devices: list[Device], *, replace: bool = False) -> tuple[int, int]:
        """Register many devices in one transaction (all or none); returns (added, replaced).

        Every device is checked first (InputError naming the first problem). A DevEUI already registered
        is an error unless ``replace``: then that device is removed (as :meth:`remove` does) and the new one
        added. One commit and one cache rebuild for the whole list: 10,000 devices take a second or two,
        where one transaction each (an fsync and an index rebuild per device) took most of a minute."""
        for dev in devices:
            validate(dev)
        new_euis: set[int] = set()
        for dev in devices:
            if dev.dev_eui in new_euis:
                raise InputError(f"DevEUI {dev.eui_hex} appears twice", hint="list each device once")
            new_euis.add(dev.dev_eui)
        clash = [d for d in devices if d.dev_eui in self._devices]
        if clash and not replace:
            dev = clash[0]
            raise InputError(
                f"DevEUI {dev.eui_hex} is already registered (as {self._devices[dev.dev_eui].name!r})",
                hint="remove it first or pick another DevEUI",
            )
        names = {d.name for eui, d in self._devices.items() if eui not in new_euis}
        for dev in devices:
            if dev.name in names:
                raise InputError(f"a device named {dev.name!r} already exists", hint="names must be unique")
            names.add(dev.name)
        added: list[Device] = []
        with self.transaction():
            for dev in clash:
                delete_device(self.conn, dev.dev_eui)
            for dev in devices:
                added.append(insert_device(self.conn, dev))
            self._bump_version()

            def apply() -> None:
                for dev in added:
                    self._devices[dev.dev_eui] = dev
                self._reindex()

            self._later(apply)
        return len(devices) - len(clash), len(clash)

    def remove(self, dev_eui: int) -> None:
        """Forget a device and its session. Its session epoch is kept (see add()) and so are the DevNonces
        it used: a recorded join-request must not open a session again after the device is added back
        (ChirpStack and The Things Stack keep them too); :meth:`forget_dev_nonces` clears them."""
        with self.transaction():
            delete_device(self.conn, dev_eui)
            self._bump_version()

            def apply() -> None:
                self._devices.pop(dev_eui, None)
                self._reindex()

            self._later(apply)

    def dev_nonce_count(self, dev_eui: int) -> int:
        """How many DevNonces are recorded as used for this DevEUI (registered or not)."""
        row = self.conn.execute("SELECT count(*) FROM dev_nonces WHERE dev_eui = ?", (eui_hex(dev_eui),))
        return int(row.fetchone()[0])

    def forget_dev_nonces(self, dev_eui: int) -> int:
        """Clear the used-DevNonce history of a DevEUI (registered or removed); returns how many were
        cleared. Afterwards any recorded join-request of the device is accepted again, so this is only for
        a device whose AppKey was replaced (old recordings no longer verify) or that was reflashed with a
        DevNonce counter starting at 0. Logged as a warning."""
        with self.transaction():
            n = self.conn.execute("DELETE FROM dev_nonces WHERE dev_eui = ?", (eui_hex(dev_eui),)).rowcount
        log.warning(
            "cleared %d used DevNonce(s) of %s: its earlier join-requests would be accepted again",
            n,
            eui_hex(dev_eui),
        )
        return int(n)

    def _bump_version(self) -> None:
        self.conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'registry_version'")
