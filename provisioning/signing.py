"""The city's Ed25519 signing key for firmware bundles: made once (private PEM, mode 0600, never
overwritten; its public half beside it), read back, and named by a short id that a bundle's signature
carries (:mod:`.bundle` signs and verifies with these keys)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from havel.errors import SecurityError, StorageError


def key_id(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_signing_key(private_path: Path) -> Path:
    """Write a new Ed25519 key (PEM, mode 0600) and its public half next to it (``.pub``)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise StorageError(
            f"{private_path} exists already; a signing key is never overwritten",
            hint="choose another file name, or move the old key away first",
        ) from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path = private_path.with_suffix(".pub")
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SecurityError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SecurityError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read the trusted public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SecurityError(f"{path} is not an Ed25519 public key")
    return key
