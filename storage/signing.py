"""Ed25519 signatures over chain heads, and the byte forms of what is hashed or signed.
The key pair lives in the data directory.

Records that are hashed or signed (manifest entries, signature payloads, audit events)
carry a format version ``"v"`` (docs/formats.md): version 2, written now, is RFC 8785
(the JSON Canonicalization Scheme), which any language can reproduce; version 1 (or no
``"v"``), written by earlier releases, is Python's sorted compact JSON and is only
checked, never written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.errors import InvalidInputError

PRIVATE_NAME = "signing.ed25519.pem"
PUBLIC_NAME = "signing.ed25519.pub.pem"

LEGACY_FORMAT = 1  # sorted keys, compact, as Python's json module writes it
RFC8785_FORMAT = 2  # RFC 8785 (JCS)
FORMAT = RFC8785_FORMAT  # what new records are written in
FORMATS = (LEGACY_FORMAT, RFC8785_FORMAT)
ALGORITHM = "Ed25519"
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def legacy_canonical_json(value: Any) -> bytes:
    """Format 1, as earlier releases hashed and signed records: only for checking them.
    It is not RFC 8785 (``10.0`` stays ``10.0``; keys sort by code point, not UTF-16)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rfc8785_json(value: Any) -> bytes:
    """Format 2: the RFC 8785 bytes of a JSON value (raises ``ValueError`` for what JSON
    numbers cannot hold exactly: NaN, infinities, integers beyond 2**53)."""
    return rfc8785.dumps(value)


def canonical_json(value: Any) -> bytes:
    """Deprecated name of :func:`legacy_canonical_json`, kept for stored transcript
    bodies (transcriber/worker.py), which are neither chained nor signed and keep their
    byte form; evidence records use :func:`canonical_bytes`."""
    return legacy_canonical_json(value)


def format_version(record: Mapping[str, Any]) -> int:
    """The format a record says it is in; no ``"v"`` means version 1. Raises
    ``ValueError`` for a version this release does not know."""
    version = record.get("v", LEGACY_FORMAT)
    if type(version) is not int or version not in FORMATS:  # not True, not 2.0
        raise ValueError(f"unknown format version {version!r}")
    return version


def canonical_bytes(value: Any, version: int) -> bytes:
    """The bytes hashed or signed for a record of format ``version``."""
    if version == RFC8785_FORMAT:
        return rfc8785_json(value)
    if version == LEGACY_FORMAT:
        return legacy_canonical_json(value)
    raise ValueError(f"unknown format version {version!r}")


def signed_message(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes a signature record's payload is signed over, by its version."""
    return canonical_bytes(dict(payload), format_version(payload))


def signing_key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def check_key_id(text: str) -> str:
    """A key id as given by a person (any case, spaces around): its 16 lowercase digits."""
    key_id = text.strip().lower()
    if not _KEY_ID.match(key_id):
        raise InvalidInputError(
            f"{text!r} is not a signing key id (16 hex digits, as `livewitness keys signing`"
            " prints)"
        )
    return key_id


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class SigningKeyInfo:
    """The installation's signing key as it is published, for pinning it elsewhere."""

    key_id: str
    algorithm: str
    public_key_pem: str


def signing_key_info(public_key: Ed25519PublicKey) -> SigningKeyInfo:
    return SigningKeyInfo(
        key_id=signing_key_id(public_key),
        algorithm=ALGORITHM,
        public_key_pem=public_key_pem(public_key).decode(),
    )


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
        public_pem = public_key_pem(self.public_key)
        if not public_path.exists() or public_path.read_bytes() != public_pem:
            public_path.write_bytes(public_pem)

    def sign(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A signature record: the payload, marked with the current format version, and
        the base64 Ed25519 signature of its canonical bytes."""
        versioned = {**payload, "v": FORMAT}
        signature = self.private_key.sign(canonical_bytes(versioned, FORMAT))
        return {"payload": versioned, "signature": base64.b64encode(signature).decode()}


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
    """Whether a signature record verifies, its payload canonicalized by its own version
    (so records of every earlier release still check)."""
    try:
        signature = base64.b64decode(record["signature"], validate=True)
        public_key.verify(signature, signed_message(record["payload"]))
    except (InvalidSignature, KeyError, ValueError, TypeError, AttributeError):
        return False
    return True
