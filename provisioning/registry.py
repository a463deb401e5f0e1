"""The local registry of provisioned nodes, encrypted at rest.

File format (JSON, mode 0600)::

    {"format": "havel-registry/1", "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": <b64>},
     "nonce": <b64>, "ciphertext": <b64>}

The key is scrypt(passphrase, salt); the payload is AES-256-GCM over the JSON list of entries, with the
header as associated data, so a wrong passphrase or a changed byte anywhere is refused. Keys inside are
never printed unless asked for (``havel keys show --reveal``).

The KDF parameters are read from the file before anything can be authenticated, so they are bounded
(:func:`check_kdf`) before the KDF runs: a crafted file cannot make ``open`` spend minutes or gigabytes.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from havel.errors import InputError, SecurityError, StorageError
from havel.provisioning.identity import Identity
from havel.provisioning.private_file import write_private

FORMAT = "havel-registry/1"
SCRYPT_N = 2**15
# Bounds on the scrypt cost a registry file may ask for. The default (n 2**15, r 8, p 1: 32 MiB, about
# 0.2 s here) sits well inside; the upper bounds keep memory at 128 MiB (128 * n * r bytes) and the work
# at 4 times the default, which a Raspberry Pi still manages.
SCRYPT_N_MIN, SCRYPT_N_MAX = 2**10, 2**17
SCRYPT_R_MAX, SCRYPT_P_MAX = 16, 4
SCRYPT_WORK_MAX = 2**17 * 8  # n * r * p
SALT_BYTES_MIN, SALT_BYTES_MAX = 16, 64


def check_kdf(kdf: Any, where: str = "the registry") -> tuple[bytes, int, int, int]:
    """(salt, n, r, p) of a KDF header, or SecurityError when it is malformed or its cost is out of
    bounds. Runs before the KDF: the header is not authenticated until the KDF has run."""
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise SecurityError(f"{where} names an unknown KDF; only scrypt is supported")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise SecurityError(f"{where}: the scrypt parameters n, r, p must be integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if not (SCRYPT_N_MIN <= n <= SCRYPT_N_MAX and n & (n - 1) == 0):
        raise SecurityError(
            f"{where} asks for scrypt n={n}; allowed are powers of two from 2**10 to 2**17",
            hint="the file was altered or written by another tool; restore it from a backup",
        )
    if not (1 <= r <= SCRYPT_R_MAX and 1 <= p <= SCRYPT_P_MAX and n * r * p <= SCRYPT_WORK_MAX):
        raise SecurityError(
            f"{where} asks for scrypt r={r}, p={p} (n={n}); allowed: r up to {SCRYPT_R_MAX}, "
            f"p up to {SCRYPT_P_MAX}, n*r*p up to {SCRYPT_WORK_MAX}",
            hint="the file was altered or written by another tool; restore it from a backup",
        )
    try:
        salt = base64.b64decode(str(kdf.get("salt", "")), validate=True)
    except ValueError as exc:
        raise SecurityError(f"{where}: the scrypt salt is not base64") from exc
    if not SALT_BYTES_MIN <= len(salt) <= SALT_BYTES_MAX:
        raise SecurityError(f"{where}: the scrypt salt has {len(salt)} bytes, expected 16 to 64")
    return salt, n, r, p


def _derive(passphrase: str, kdf: dict[str, Any]) -> bytes:
    salt, n, r, p = check_kdf(kdf)
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


class Registry:
    """Entries keyed by DevEUI; ``save()`` re-encrypts with a fresh nonce and replaces the file atomically."""

    def __init__(self, path: Path, passphrase: str, *, scrypt_n: int = SCRYPT_N) -> None:
        if not passphrase:
            raise InputError("the registry passphrase is empty")
        check_kdf({"name": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": "A" * 24}, "scrypt_n")
        self.path = path
        self._passphrase = passphrase
        self._scrypt_n = scrypt_n
        self.entries: list[Identity] = []

    def __repr__(self) -> str:
        return f"Registry({str(self.path)!r}, {len(self.entries)} entries, passphrase=<redacted>)"

    @classmethod
    def create(cls, path: Path, passphrase: str, *, scrypt_n: int = SCRYPT_N) -> Registry:
        if path.exists():
            raise StorageError(
                f"{path} exists already", hint="use it, or move it away to start a new registry"
            )
        reg = cls(path, passphrase, scrypt_n=scrypt_n)
        reg.save()
        return reg

    @classmethod
    def open(cls, path: Path, passphrase: str) -> Registry:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise StorageError(f"no registry at {path}", hint="create one with 'havel keys init'") from exc
        except json.JSONDecodeError as exc:
            raise SecurityError(f"{path} is not a registry file (not JSON)") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SecurityError(f"{path} is not a Havel registry file")
        kdf = doc.get("kdf")
        _, n, _, _ = check_kdf(kdf, str(path))  # before the KDF runs: the header is not yet authenticated
        assert isinstance(kdf, dict)
        reg = cls(path, passphrase, scrypt_n=n)
        key = _derive(passphrase, kdf)
        aad = json.dumps({"format": doc["format"], "kdf": kdf}, sort_keys=True).encode()
        try:
            plain = AESGCM(key).decrypt(
                base64.b64decode(doc["nonce"]), base64.b64decode(doc["ciphertext"]), aad
            )
        except InvalidTag:
            raise SecurityError(f"wrong passphrase for {path}, or the file was altered") from None
        except (KeyError, ValueError) as exc:
            raise SecurityError(f"{path} is damaged: {exc}") from exc
        reg.entries = [Identity.from_record(r) for r in json.loads(plain)]
        return reg

    def save(self) -> None:
        kdf = {
            "name": "scrypt",
            "n": self._scrypt_n,
            "r": 8,
            "p": 1,
            "salt": base64.b64encode(secrets.token_bytes(16)).decode(),
        }
        key = _derive(self._passphrase, kdf)
        nonce = secrets.token_bytes(12)
        aad = json.dumps({"format": FORMAT, "kdf": kdf}, sort_keys=True).encode()
        plain = json.dumps([e.to_record() for e in self.entries]).encode()
        doc = {
            "format": FORMAT,
            "kdf": kdf,
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(AESGCM(key).encrypt(nonce, plain, aad)).decode(),
        }
        write_private(self.path, json.dumps(doc).encode())

    def find(self, dev_eui: int) -> Identity | None:
        return next((e for e in self.entries if e.dev_eui == dev_eui), None)

    def find_unique_id(self, unique_id: str) -> Identity | None:
        return next((e for e in self.entries if unique_id and e.unique_id == unique_id), None)

    def add(self, ident: Identity) -> None:
        if self.find(ident.dev_eui) is not None:
            raise StorageError(f"DevEUI {ident.dev_eui:016X} is registered already")
        self.entries.append(ident)

    def used_euis(self) -> set[int]:
        return {e.dev_eui for e in self.entries}
