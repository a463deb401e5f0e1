"""Authentication for relayed messages: a truncated HMAC-SHA256 and a counter; never encryption.

Amateur radio forbids hiding content (AFuV 16), not authenticating it. Every relayed message carries
``<counter>.<tag>``: ``counter`` a decimal number that grows with every transmission of a sender, and
``tag`` the first 8 bytes of HMAC-SHA256(key, "HVR1" NUL sender NUL channel NUL counter NUL body),
base64url without padding (11 characters). ``sender`` is the gateway's identity (its callsign on APRS),
``channel`` the path name ("aprs", "mqtt", "rns"), so a frame heard on one path cannot be replayed on
another. The receiver keeps, per sender and channel, the highest counter and the counters seen within a
window below it: paths reorder, but a counter is accepted once only. Keys are 32 random bytes shared by
gateway and crisis centre, stored as hex in a 0600 file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from havel.errors import ConfigError, InputError, ReplayError, SecurityError
from havel.gateway.relay import ax25

log = logging.getLogger("havel.relay.signing")

TAG_BYTES = 8
TAG_CHARS = 11
DOMAIN = b"HVR1"
_SIG_RE = re.compile(r"^(\d{1,12})\.([A-Za-z0-9_-]{11})$")
# After a lost counter state, a message whose own time is older than this before the receiver's start is
# refused: it may be a recording. The gateway relays records up to its max_age_s (default 6 h) old.
FRESH_GRACE_S = 6 * 3600.0


class StaleError(ReplayError):
    """A message the receiver cannot prove fresh (its counter state was lost, and the message is old or
    carries no time of its own)."""


def identity(name: str) -> str:
    """A sender's identity as signed and compared: upper case; a callsign with SSID 0 without ``-0``.

    ``DB0XYZ-0`` goes on the air as ``DB0XYZ`` (AX.25 has no way to write SSID 0 apart), so both sides
    use that form. Names that are not callsigns (a gateway id) are only upper-cased.
    """
    text = name.strip().upper()
    try:
        return str(ax25.Address.parse(text)) if "*" not in text else text
    except InputError:
        return text


class SigningKey:
    """A shared HMAC key; its repr never shows the bytes."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError("relay signing key must be at least 16 bytes", hint="use `havel relay keygen`")
        self._key = key

    def __repr__(self) -> str:
        return "SigningKey(<redacted>)"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_bytes(32))

    @classmethod
    def load(cls, path: str | Path) -> SigningKey:
        """Read a hex key file."""
        p = Path(path)
        try:
            mode = p.stat().st_mode
            if mode & 0o077:
                # Like ssh: a key others can read is no longer a shared secret of two parties.
                raise SecurityError(
                    f"relay signing key file {p} is readable by others (mode {mode & 0o777:o})",
                    hint=f"chmod 600 {p}",
                )
            text = p.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"relay signing key file {p} cannot be read: {exc.strerror}",
                hint="create it with `havel relay keygen FILE`",
            ) from exc
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise ConfigError(f"relay signing key file {p} is not hex") from exc

    def save(self, path: str | Path) -> None:
        """Write the key as hex into a new file readable by its owner only."""
        p = Path(path)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._key.hex() + "\n")
        os.chmod(p, 0o600)

    def tag(self, sender: str, channel: str, counter: int, body: bytes) -> str:
        """The 11-character tag of a message."""
        msg = b"\0".join([DOMAIN, sender.encode(), channel.encode(), str(counter).encode(), body])
        digest = hmac.new(self._key, msg, hashlib.sha256).digest()[:TAG_BYTES]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Signature:
    counter: int
    tag: str

    def __str__(self) -> str:
        return f"{self.counter}.{self.tag}"

    @classmethod
    def parse(cls, text: str) -> Signature:
        m = _SIG_RE.match(text)
        if not m:
            raise SecurityError(f"relay signature {text!r} is malformed (expected COUNTER.TAG11)")
        return cls(int(m.group(1)), m.group(2))


class CounterStore:
    """The sender's persistent counter: never repeats, even after a power cut.

    Blocks of ``reserve`` counters are reserved on disk (fsync) before use, so a restart skips ahead
    instead of reusing a value.
    """

    def __init__(self, path: str | Path | None, reserve: int = 64) -> None:
        self.path = Path(path) if path else None
        self.reserve = reserve
        self._lock = threading.Lock()
        self._next = 1
        self._limit = 0
        if self.path is not None and self.path.exists():
            try:
                self._next = int(self.path.read_text().strip()) + 1
            except ValueError as exc:
                raise ConfigError(
                    f"relay counter file {self.path} is corrupt",
                    hint="delete it only after raising the counter above any sent",
                ) from exc
            self._limit = self._next - 1

    def next(self) -> int:
        with self._lock:
            if self._next > self._limit:
                self._limit = self._next + self.reserve - 1
                self._write(self._limit)
            value = self._next
            self._next += 1
            return value

    def _write(self, value: int) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{value}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class Signer:
    """Signs bodies for one sender with fresh counters."""

    def __init__(self, key: SigningKey, sender: str, counters: CounterStore) -> None:
        self.key = key
        self.sender = identity(sender)  # callsigns: upper case, SSID 0 written without "-0"
        self.counters = counters

    def sign(self, channel: str, body: bytes) -> Signature:
        counter = self.counters.next()
        return Signature(counter, self.key.tag(self.sender, channel, counter, body))


@dataclass
class _Window:
    high: int = 0
    floor: int = 0  # after a restart: nothing at or below the last saved high is accepted
    seen: set[int] = field(default_factory=set)


class Verifier:
    """Checks tags and counters; raises SecurityError for a forgery, ReplayError for a used counter.

    The highest counter per sender and channel is kept in ``state_path`` (written atomically with fsync,
    and a second copy ``<state_path>.1``, so one torn or deleted file is survived). When neither copy can
    be read (first start, deleted or damaged files) nothing is known about the counters already used: then
    a sender's counters are accepted again only from a message whose own time (``at``) is at most
    ``FRESH_GRACE_S`` older than the verifier's start, and from then on only counters above that one
    (:class:`StaleError` for the others). ``state_lost`` says that this happened.
    """

    def __init__(
        self,
        keys: dict[str, SigningKey],
        window: int = 256,
        state_path: str | Path | None = None,
        *,
        wall: Callable[[], float] = time.time,
        unknown_hint: str = "add a [[sender]] with its name and key_file to the receiver config",
    ) -> None:
        self.keys = {identity(k): v for k, v in keys.items()}
        self.unknown_hint = unknown_hint  # what to do about a sender without a key (said with the error)
        self.window = window
        self.state_path = Path(state_path) if state_path else None
        self._state: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()
        self.state_lost = False
        self.fresh_after = wall() - FRESH_GRACE_S
        if self.state_path is not None:
            self._load(self.state_path)

    def _load(self, path: Path) -> None:
        highs: dict[tuple[str, str], int] = {}
        readable = 0
        for copy in (path, _backup(path)):
            try:
                raw = json.loads(copy.read_text())
                if not isinstance(raw, dict):
                    raise ValueError("not a JSON object")
                for key, high in raw.items():
                    if not isinstance(key, str) or type(high) is not int or high < 0:
                        raise ValueError(f"entry {key!r}: {high!r}")
                    sender, _, channel = key.partition("|")
                    highs[(sender, channel)] = max(high, highs.get((sender, channel), 0))
                readable += 1
            except FileNotFoundError:
                continue
            except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
                damaged = copy.with_name(f"{copy.name}.damaged-{int(time.time())}")
                with contextlib.suppress(OSError):
                    os.replace(copy, damaged)
                log.error("receiver counter state %s is damaged (%s); kept as %s", copy, exc, damaged)
        for k, high in highs.items():
            # After a restart only counters above the saved high are accepted.
            self._state[k] = _Window(high, high, set())
        if readable == 0:
            self.state_lost = True
            log.warning(
                "no readable counter state in %s (first start, or lost): a sender's messages are accepted "
                "again from its first message stamped after %s, and only counters above that one",
                path,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.fresh_after)),
            )

    def verify(
        self, sender: str, channel: str, sig: Signature, body: bytes, *, at: float | None = None
    ) -> None:
        """Accept once, or raise. The counter is recorded only after the tag checked out.

        ``at``: the message's own time (Unix seconds), when it has one; used only after a lost state.
        """
        who = identity(sender)
        key = self.keys.get(who)
        if key is None:
            raise SecurityError(
                f"relay message from unknown sender {sender!r}",
                hint=self.unknown_hint,
            )
        expected = key.tag(who, channel, sig.counter, body)
        if not hmac.compare_digest(expected, sig.tag):
            raise SecurityError(f"relay message from {who} on {channel}: signature does not verify")
        with self._lock:
            w = self._state.get((who, channel))
            if w is None:
                if self.state_lost and (at is None or not at >= self.fresh_after):
                    raise StaleError(
                        f"relay message from {who} on {channel}: counter {sig.counter} cannot be proven "
                        "new (the counter state was lost and the message is not stamped after the start)"
                    )
                w = self._state[(who, channel)] = _Window(floor=sig.counter - 1 if self.state_lost else 0)
            if sig.counter in w.seen or sig.counter <= w.floor or sig.counter <= w.high - self.window:
                raise ReplayError(
                    f"relay message from {who} on {channel}: counter {sig.counter} already used (replay)"
                )
            w.seen.add(sig.counter)
            if sig.counter > w.high:
                w.high = sig.counter
                w.seen = {c for c in w.seen if c > w.high - self.window}
            self._save()

    def _save(self) -> None:
        if self.state_path is None:
            return
        text = json.dumps({f"{s}|{c}": w.high for (s, c), w in self._state.items()})
        # Two copies, each replaced atomically after an fsync: a power cut leaves at least one whole.
        for path in (self.state_path, _backup(self.state_path)):
            write_atomic(path, text)


def _backup(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file, fsync it, rename it over ``path``, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
