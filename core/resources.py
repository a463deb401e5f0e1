"""Where the data the commands read lives: hardware data (``hw/``) and firmware sources (``firmware/``).

Both ship inside the wheel as ``havel/hw`` and ``havel/firmware`` (package data, read through
:mod:`importlib.resources`), so an installed Havel needs no checkout. In a development checkout (an editable
install) they are the checkout's own ``hw/`` and ``firmware/`` folders.

One override, for working on a checkout with another installed Havel: ``HAVEL_SOURCE_DIR=/path/to/checkout``
makes every command read ``hw/`` and ``firmware/`` from that folder.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from havel.errors import ConfigError

SOURCE_ENV = "HAVEL_SOURCE_DIR"


def _installed(name: str) -> Path | None:
    """``havel/<name>`` inside the installed package, when the wheel carries it."""
    try:
        candidate = Path(str(resources.files("havel") / name))
    except (ModuleNotFoundError, TypeError):
        return None
    return candidate if candidate.is_dir() else None


def _checkout(name: str) -> Path | None:
    """``<checkout>/<name>`` when ``havel`` is imported from a checkout's ``core/`` folder."""
    import havel

    candidate = Path(havel.__file__).resolve().parent.parent / name
    return candidate if candidate.is_dir() else None


def data_dir(name: str) -> Path:
    """The folder ``name`` (``"hw"`` or ``"firmware"``): override, installed package data, or checkout."""
    override = os.environ.get(SOURCE_ENV)
    if override:
        path = Path(override) / name
        if not path.is_dir():
            raise ConfigError(
                f"{SOURCE_ENV}={override} has no {name}/ folder",
                hint=f"point {SOURCE_ENV} at a Havel checkout, or unset it",
            )
        return path
    for found in (_installed(name), _checkout(name)):
        if found is not None:
            return found
    raise ConfigError(
        f"this Havel installation has no {name}/ data",
        hint=f"reinstall Havel from its wheel, or set {SOURCE_ENV} to a Havel checkout",
    )


def hw_dir() -> Path:
    """``hw/``: boards, kits and gateway hardware as data files."""
    return data_dir("hw")


def firmware_dir() -> Path:
    """``firmware/``: the node firmware sources (MicroPython)."""
    return data_dir("firmware")
