"""The local registry of provisioned nodes, encrypted at rest.

File format (JSON, mode 0600)::

    {"format": "havel-registry/1", "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": <b64>},
     "nonce": <b64>, "ciphertext": <b64>}

The key is scrypt(passphrase, salt); the payload is AES-256-GCM over the JSON list of entries, with the
header as associated data, so a wrong passphrase or a changed byte anywhere is refused. Keys inside are
never printed unless asked for (``havel keys show --reveal``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from havel.errors import InputError, SecurityError, StorageError
from havel.provisioning.identity import Identity

FORMAT = "havel-registry/1"
SCRYPT_N = 2**15


def _derive(passphrase: str, kdf: dict[str, Any]) -> bytes:
    salt = base64.b64decode(kdf["salt"])
    return Scrypt(salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])).derive(
        passphrase.encode("utf-8")
    )


class Registry:
    """Entries keyed by DevEUI; ``save()`` re-encrypts with a fresh nonce and replaces the file atomically."""

    def __init__(self, path: Path, passphrase: str, *, scrypt_n: int = SCRYPT_N) -> None:
        if not passphrase:
            raise InputError("the registry passphrase is empty")
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
        if doc.get("format") != FORMAT:
            raise SecurityError(f"{path} is not a Havel registry (format {doc.get('format')!r})")
        kdf = doc["kdf"]
        reg = cls(path, passphrase, scrypt_n=int(kdf["n"]))
        key = _derive(passphrase, kdf)
        aad = json.dumps({"format": doc["format"], "kdf": kdf}, sort_keys=True).encode()
        try:
            plain = AESGCM(key).decrypt(
                base64.b64decode(doc["nonce"]), base64.b64decode(doc["ciphertext"]), aad
            )
        except InvalidTag:
            raise SecurityError(f"wrong passphrase for {path}, or the file was altered") from None
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

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
