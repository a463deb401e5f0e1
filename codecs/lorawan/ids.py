"""Identifiers, keys and the text forms people type them in.

Byte order is part of every name here: ``*_wire`` is the little-endian order of the air interface,
``*_hex`` the big-endian text that consoles print (DevAddr ``26012E43``, EUIs ``70B3D57ED00000DC``).
In the API, DevAddr, EUIs and NetID are plain ``int`` (their big-endian value) and keys are 16-byte ``bytes``.
"""

from __future__ import annotations

import base64
import binascii
import string

from havel.errors import InputError

KEY_LEN = 16
_HEX_DIGITS = frozenset(string.hexdigits)


def parse_hex(text: str, *, what: str = "hex") -> bytes:
    """Bytes from hex text (either case, spaces allowed, optional ``0x``); InputError if not hex."""
    cleaned = "".join(text.split())
    if cleaned[:2] in ("0x", "0X"):
        cleaned = cleaned[2:]
    if len(cleaned) % 2:
        raise InputError(
            f"{what}: odd-length hex ({len(cleaned)} digits)", hint="every byte needs two hex digits"
        )
    bad = next((ch for ch in cleaned if ch not in _HEX_DIGITS), None)
    if bad is not None:
        raise InputError(f"{what}: {bad!r} is not a hex digit", hint="use 0-9 and a-f only")
    return bytes.fromhex(cleaned)


def parse_base64(text: str, *, what: str = "base64") -> bytes:
    """Bytes from standard base64 (padding optional, as packet forwarders send it); InputError if invalid."""
    cleaned = "".join(text.split())
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(
            f"{what}: invalid base64 ({exc})", hint="check for truncated or mangled text"
        ) from None


def check_key(key: bytes, what: str = "key") -> bytes:
    """Return ``key`` if it is an AES-128 key (16 bytes), else raise InputError naming it."""
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_LEN:
        size = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
        raise InputError(
            f"{what}: an AES-128 key has 16 bytes (32 hex digits), got {size}",
            hint="copy the whole key from the console",
        )
    return bytes(key)


def parse_key(text: str, what: str = "key") -> bytes:
    """A 16-byte key from hex text; InputError on bad hex or wrong length."""
    return check_key(parse_hex(text, what=what), what)


def parse_int(value: str | int, *, what: str, bits: int) -> int:
    """An unsigned integer of at most ``bits`` bits, from an int, decimal text or ``0x`` hex text."""
    if isinstance(value, bool):
        raise InputError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value).strip(), 0)
        except ValueError:
            raise InputError(
                f"{what}: {value!r} is not an integer", hint="give decimal digits, or hex with a 0x prefix"
            ) from None
    if not 0 <= number < (1 << bits):
        raise InputError(f"{what}: {number} is outside 0..{(1 << bits) - 1}")
    return number


def parse_id_hex(text: str | int, *, what: str, size: int) -> int:
    """A DevAddr/EUI/NetID of ``size`` bytes from big-endian hex text (as consoles print it), as int."""
    if isinstance(text, int) and not isinstance(text, bool):
        return parse_int(text, what=what, bits=8 * size)
    raw = parse_hex(str(text), what=what)
    if len(raw) != size:
        raise InputError(f"{what}: expected {size} bytes ({2 * size} hex digits), got {len(raw)}")
    return int.from_bytes(raw, "big")


def id_hex(value: int, size: int) -> str:
    """Big-endian upper-case hex of an identifier of ``size`` bytes (``26012E43``)."""
    return value.to_bytes(size, "big").hex().upper()


def dev_addr_hex(dev_addr: int) -> str:
    """DevAddr as consoles print it."""
    return id_hex(dev_addr, 4)


def eui_hex(eui: int) -> str:
    """EUI-64 as consoles print it."""
    return id_hex(eui, 8)


def net_id_hex(net_id: int) -> str:
    """NetID as consoles print it."""
    return id_hex(net_id, 3)


def redacted(key: bytes | None) -> str:
    """What a log line may say about a key: whether it is there, never its bytes."""
    return "<key: none>" if key is None else f"<key: {len(key)} bytes, redacted>"
