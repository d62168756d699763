"""`serve --demo` keeps its keys across restarts: the same reviewer, compliance and admin
keys each start (a browser stays signed in), never a growing pile of valid ones; keys of
earlier starts (and releases) are revoked, and a key revoked by an admin is replaced."""

from __future__ import annotations

import stat
from pathlib import Path

from cli.demo_keys import DEMO_ROLES, demo_keys, demo_keys_path
from core.settings import Settings
from storage.api_keys import authenticate, create_api_key
from storage.stores import open_stores


def live_demo_keys(home: Path) -> list[str]:
    with open_stores(Settings(home=home)) as stores:
        return sorted(
            k.role
            for k in stores.catalog.api_keys()
            if k.name.startswith("demo ") and not k.revoked_at
        )


def test_a_restart_reuses_the_demo_keys_and_leaves_no_others_valid(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_stores(Settings(home=home)) as stores:
        # Keys an earlier release made on each start, all still valid.
        old = [create_api_key(stores.catalog, "reviewer", "demo reviewer")[0] for _ in range(2)]
        first = demo_keys(stores)
        assert sorted(first) == sorted(DEMO_ROLES)
        for key in old:
            assert authenticate(stores.catalog, key) is None
    assert stat.S_IMODE(demo_keys_path(stores).stat().st_mode) == 0o600

    for _ in range(2):  # two more starts of `serve --demo`
        with open_stores(Settings(home=home)) as stores:
            assert demo_keys(stores) == first
            for role, key in first.items():
                row = authenticate(stores.catalog, key)
                assert row is not None and row.role == role
    assert live_demo_keys(home) == sorted(DEMO_ROLES)


def test_a_revoked_demo_key_is_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_stores(Settings(home=home)) as stores:
        first = demo_keys(stores)
        row = authenticate(stores.catalog, first["admin"])
        assert row is not None
        stores.catalog.revoke_api_key(row.id)
    with open_stores(Settings(home=home)) as stores:
        second = demo_keys(stores)
        assert second["admin"] != first["admin"]
        assert authenticate(stores.catalog, second["admin"]) is not None
        assert second["reviewer"] == first["reviewer"]
    # A damaged keys file is not fatal: new keys, and the old ones stop working.
    demo_keys_path(stores).write_text("{not json", encoding="utf-8")
    with open_stores(Settings(home=home)) as stores:
        third = demo_keys(stores)
        assert third["reviewer"] != first["reviewer"]
        assert authenticate(stores.catalog, first["reviewer"]) is None
    assert live_demo_keys(home) == sorted(DEMO_ROLES)
