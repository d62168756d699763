"""``livewitness keys``: API keys with roles (kept hashed in the catalog), and the
installation's public signing key to pin evidence packages to."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from cli.base import clean_errors, console, open_cli_stores
from core.timeutil import iso

keys_app = typer.Typer(
    help="API keys with roles (admin, reviewer, compliance, case-system, connector); the"
    " signing key."
)


@keys_app.command("create")
@clean_errors
def keys_create(
    role: Annotated[
        str, typer.Option(help="admin, reviewer, compliance, case-system or connector.")
    ],
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


@keys_app.command("signing")
@clean_errors
def keys_signing(
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Print this installation's signing key id and public key (PEM): what a case
    system pins evidence packages to (`verify-package --key-id`)."""
    from storage.signing import signing_key_info

    with open_cli_stores() as stores:
        info = signing_key_info(stores.chain.signer.public_key)
    if as_json:
        print(json.dumps(asdict(info)))
        return
    print(f"key id {info.key_id} ({info.algorithm})")
    print(info.public_key_pem, end="")
