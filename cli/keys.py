"""``livewitness keys``: API keys with roles (kept hashed in the catalog)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.base import clean_errors, console, open_cli_stores
from core.timeutil import iso

keys_app = typer.Typer(help="API keys with roles: admin, reviewer, compliance, case-system.")


@keys_app.command("create")
@clean_errors
def keys_create(
    role: Annotated[str, typer.Option(help="admin, reviewer, compliance or case-system.")],
    name: Annotated[str, typer.Option(help="Who or what uses it.")] = "cli",
) -> None:
    """Make an API key and print it (only its hash is kept)."""
    from storage.api_keys import create_api_key

    with open_cli_stores() as stores:
        key, row = create_api_key(stores.catalog, role, name)
    console.print(f"key {row.id} ({row.role}, {row.name}):", highlight=False)
    print(key)


@keys_app.command("list")
@clean_errors
def keys_list() -> None:
    with open_cli_stores() as stores:
        rows = stores.catalog.api_keys()
    table = Table("id", "prefix", "role", "name", "created", "revoked")
    for k in rows:
        revoked = iso(k.revoked_at) if k.revoked_at else ""
        table.add_row(str(k.id), k.prefix, k.role, k.name, iso(k.created_at), revoked)
    console.print(table)


@keys_app.command("revoke")
@clean_errors
def keys_revoke(key_id: Annotated[int, typer.Argument(help="Key id.")]) -> None:
    with open_cli_stores() as stores:
        stores.catalog.revoke_api_key(key_id)
    console.print(f"key {key_id} revoked")
