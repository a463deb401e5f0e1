"""One error hierarchy for the whole project.

Every error a person can meet derives from :class:`HavelError`. The CLI entry point turns these into one
clear line (what went wrong, and what to do) and a non-zero exit status; anything else is a bug and shows
a traceback only with ``--verbose``.
"""

from __future__ import annotations


class HavelError(Exception):
    """Base of every expected error. ``hint`` says what the user can do about it."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class InputError(HavelError):
    """Malformed input given by a person or a file: bad hex, bad base64, wrong key length, bad JSON."""


class FrameError(HavelError):
    """A LoRaWAN frame that cannot be read: truncated, wrong length, unknown major version."""


class MICError(FrameError):
    """A message integrity code that does not verify."""


class ReplayError(FrameError):
    """A frame counter or nonce that was already used."""


class CodecError(HavelError):
    """A payload that does not fit its codec, or values that cannot be encoded."""


class ConfigError(HavelError):
    """A configuration file or value that is missing or invalid; the message names the key."""


class TransportError(HavelError):
    """A board, serial port, socket or broker that does not answer as expected."""


class StorageError(HavelError):
    """The durable store cannot take or give data (disk full, database locked, quota reached)."""


class SecurityError(HavelError):
    """A signature, certificate, passphrase or key that does not check out."""


class LegalError(HavelError):
    """An action that the rules forbid, e.g. transmitting on amateur radio without callsign or emergency."""
