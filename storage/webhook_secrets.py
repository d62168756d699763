"""Webhook secrets at rest: sealed with AES-256-GCM under a key kept beside the signing
key (``keys/webhook-secrets.key``), so a copy of the catalog alone does not give away
the secrets that sign alerts and receipts.

What is sealed is the HMAC key a secret stands for, not always the secret: HMAC-SHA256
hashes a key longer than its 64-byte block before use (RFC 2104), so a longer secret is
sealed as its SHA-256 digest, which signs exactly as the secret does. That keeps every
sealed value within the column's 128 characters: ``aes1:`` and the unpadded URL-safe
base64 of nonce (12 bytes), ciphertext (at most 64) and tag (16).

A stored value without the prefix is a secret written by an earlier release, in plain
text: it still signs, and :meth:`~storage.catalog.compliance.ComplianceMixin.seal_webhook_secrets`
seals it when the stores are opened.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import ConfigError

KEY_NAME = "webhook-secrets.key"
SEALED_PREFIX = "aes1:"
HMAC_BLOCK = 64  # SHA-256's block size: longer HMAC keys are hashed first
_NONCE = 12


def hmac_key(secret: str) -> bytes:
    """The bytes HMAC-SHA256 signs with for ``secret`` (a long one is hashed, as HMAC
    itself would)."""
    raw = secret.encode()
    return raw if len(raw) <= HMAC_BLOCK else hashlib.sha256(raw).digest()


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


class WebhookSecrets:
    """Seals and opens webhook secrets with the key in ``keys_dir`` (made, mode 0600, the
    first time a secret is sealed)."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = keys_dir / KEY_NAME
        self._key: bytes | None = None

    def has_key(self) -> bool:
        return self._key is not None or self.path.exists()

    def key(self, create: bool = False) -> bytes:
        if self._key is None:
            if not self.path.exists():
                if not create:
                    raise ConfigError(
                        f"no {KEY_NAME} in {self.path.parent}, but the catalog's webhook"
                        " secrets are sealed with one: copy the deployment's keys directory"
                        " there"
                    )
                _create_key(self.path)
            key = self.path.read_bytes()
            if len(key) != 32:
                raise ConfigError(f"{self.path} is not a 32-byte AES key")
            self._key = key
        return self._key

    def seal(self, secret: str) -> str:
        """The stored form of ``secret``."""
        nonce = os.urandom(_NONCE)
        sealed = nonce + AESGCM(self.key(create=True)).encrypt(nonce, hmac_key(secret), None)
        return SEALED_PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def signing_key(self, stored: str) -> bytes:
        """The HMAC key of a stored secret: opened when sealed, as it is when written by
        an earlier release (plain text)."""
        if not is_sealed(stored):
            return stored.encode()
        text = stored.removeprefix(SEALED_PREFIX)
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            return AESGCM(self.key()).decrypt(sealed[:_NONCE], sealed[_NONCE:], None)
        except (InvalidTag, ValueError) as exc:
            raise ConfigError(
                f"a webhook secret does not open with {self.path}: the keys directory is not"
                " the one the secret was sealed with"
            ) from exc


def _create_key(path: Path) -> None:
    """Write a new key (0600) unless another process just did: link, not rename, so two
    processes starting at once cannot replace each other's key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(AESGCM.generate_key(bit_length=256))
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
