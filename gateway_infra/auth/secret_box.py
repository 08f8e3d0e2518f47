"""Encryption at rest of secrets the gateway must read back (signing keys, webhook secrets).

AES-256-GCM with a key derived (HKDF-SHA256) from the key-encryption secret in the environment,
shared by every replica. On an embedded SQLite store without that setting, a random secret is
generated once into var/ beside the database, readable by its owner only.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"
MIN_SECRET_LENGTH = 32


class KeyEncryptionKeyMissing(RuntimeError):
    """No key-encryption secret is configured where one must be."""


class SecretBox:
    """Encrypts and decrypts small secrets, bound to a purpose string (the associated data)."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the key-encryption secret needs {MIN_SECRET_LENGTH}+ characters")
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"retail-sync-gateway/secret-box"
        ).derive(secret.encode())
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, *, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, purpose.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, purpose: str) -> bytes:
        version, _, payload = token.partition(".")
        if version != _VERSION:
            raise ValueError(f"unknown secret box version {version!r}")
        raw = base64.urlsafe_b64decode(payload)
        return self._aead.decrypt(raw[:12], raw[12:], purpose.encode())


def load_secret_box(configured: str | None, *, database_path: str | None) -> SecretBox:
    """The configured secret; or, for an embedded SQLite file, one kept beside the database."""
    if configured:
        return SecretBox(configured)
    if database_path is None:
        raise KeyEncryptionKeyMissing(
            "GATEWAY_KEY_ENCRYPTION_KEY must be set (the same value on every replica) "
            "when the store is not an embedded SQLite file"
        )
    path = Path(database_path).resolve().parent / "key-encryption.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return SecretBox(path.read_text().strip())
