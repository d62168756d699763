"""Ed25519 signatures over chain heads. The key pair lives in the data directory."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_NAME = "signing.ed25519.pem"
PUBLIC_NAME = "signing.ed25519.pub.pem"


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON record that is hashed or signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signing_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """Loads the data directory's signing key, creating it (mode 0600) on first use."""

    def __init__(self, signing_keys_dir: Path) -> None:
        signing_keys_dir.mkdir(parents=True, exist_ok=True)
        private_path = signing_keys_dir / PRIVATE_NAME
        if not private_path.exists():
            _create_signing_key(signing_keys_dir)
        loaded = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise TypeError(f"{private_path} is not an Ed25519 key")
        self.private_key = loaded
        self.public_key = loaded.public_key()
        self.key_id = signing_key_id(self.public_key)
        public_path = signing_keys_dir / PUBLIC_NAME
        public_pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if not public_path.exists() or public_path.read_bytes() != public_pem:
            public_path.write_bytes(public_pem)

    def sign(self, payload: dict[str, Any]) -> dict[str, Any]:
        signature = self.private_key.sign(canonical_json(payload))
        return {"payload": payload, "signature": base64.b64encode(signature).decode()}


def _create_signing_key(signing_keys_dir: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = signing_keys_dir / f".{PRIVATE_NAME}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem)
        out.flush()
        os.fsync(out.fileno())
    # link, not rename: two processes starting at once must not replace each other's key.
    try:
        os.link(tmp, signing_keys_dir / PRIVATE_NAME)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def load_public_key(signing_keys_dir: Path) -> Ed25519PublicKey:
    loaded = serialization.load_pem_public_key((signing_keys_dir / PUBLIC_NAME).read_bytes())
    if not isinstance(loaded, Ed25519PublicKey):
        raise TypeError("the public signing key is not Ed25519")
    return loaded


def check_signature(record: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(record["signature"], validate=True)
        public_key.verify(signature, canonical_json(record["payload"]))
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False
    return True
