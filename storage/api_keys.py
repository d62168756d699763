"""API keys with roles. A key is shown once, when it is made; the catalog keeps only its
SHA-256 and a short prefix to tell keys apart in lists and in the audit log."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal, get_args

from core.errors import InvalidInputError
from storage.catalog import Catalog
from storage.models import ApiKey

# connector: a platform adapter posting stream events (chat, product cards), nothing else.
Role = Literal["admin", "reviewer", "compliance", "case-system", "connector"]
ROLES: tuple[Role, ...] = get_args(Role)
KEY_PREFIX = "lw_"


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(catalog: Catalog, role: str, name: str) -> tuple[str, ApiKey]:
    """A new key of ``role``: (the key, shown once; its catalog row)."""
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if not name.strip() or len(name) > 128:
        raise InvalidInputError("a key needs a name of 1 to 128 characters")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = catalog.add_api_key(
        ApiKey(prefix=key[:10], sha256=api_key_digest(key), role=role, name=name.strip())
    )
    return key, row


def authenticate(catalog: Catalog, key: str) -> ApiKey | None:
    """The live key row for ``key``, or None (unknown or revoked)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = catalog.api_key_by_hash(api_key_digest(key))
    if row is None or row.revoked_at is not None:
        return None
    return row


def api_key_actor(row: ApiKey) -> str:
    return f"key {row.id} ({row.name}, {row.role})"
