"""The demo's API keys, one per role, kept across restarts of ``serve --demo``.

The catalog keeps only a key's hash, so the demo keeps its keys themselves in its own
state (``demo/keys.json`` under the data home, 0600 in a 0700 home; the console shows them
anyway). A start reuses the keys of the last one while they still work, so a browser
stays signed in; a key revoked since is replaced. Any other live key of the demo's names
(made by earlier starts, or by releases that made new ones every start) is revoked, so
at most one demo key per role is valid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from storage.api_keys import authenticate, create_api_key
from storage.stores import Stores

DEMO_ROLES = ("reviewer", "compliance", "admin")


def demo_key_name(role: str) -> str:
    return f"demo {role}"


def demo_keys_path(stores: Stores) -> Path:
    return stores.settings.home / "demo" / "keys.json"


def demo_keys(stores: Stores) -> dict[str, str]:
    """One working key per demo role: the last start's where still valid, else new."""
    path = demo_keys_path(stores)
    kept = _read(path)
    keys: dict[str, str] = {}
    in_use: set[int] = set()
    for role in DEMO_ROLES:
        key = kept.get(role, "")
        row = authenticate(stores.catalog, key) if key else None
        if row is None or row.role != role:
            key, row = create_api_key(stores.catalog, role, demo_key_name(role))
        keys[role] = key
        in_use.add(row.id)
    names = {demo_key_name(role) for role in DEMO_ROLES}
    for row in stores.catalog.api_keys():
        if row.name in names and row.revoked_at is None and row.id not in in_use:
            stores.catalog.revoke_api_key(row.id)
    if keys != kept:
        _write_private(path, keys)
    return keys


def _read(path: Path) -> dict[str, str]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: new keys replace it
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}


def _write_private(path: Path, keys: dict[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(keys, out)
    tmp.replace(path)
