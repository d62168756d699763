"""`livewitness prices`: a stream's prices said, shown and carded, on one timeline."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.base import audit_cli, clean_errors, console, open_cli_stores

commands = typer.Typer()  # registered on the app by cli.main


@commands.command()
@clean_errors
def prices(
    stream: Annotated[str, typer.Option("--stream", help="Stream name.")],
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
) -> None:
    """Print each product's prices as said, shown on screen and on its product card, in
    time order; a said or shown price the card does not carry is a price_mismatch."""
    from indexer.prices import mismatch_hit, price_timeline

    with open_cli_stores() as stores:
        row = stores.catalog.get_stream(stream)
        points = price_timeline(stores, row).for_product(product)
        audit_cli(stores, "prices.read", {"stream": stream, "product": product})
    if as_json:
        print(
            json.dumps(
                {
                    "prices": [p.to_json() for p in points],
                    "price_mismatches": [mismatch_hit(p, row.name) for p in points if p.mismatch],
                },
                ensure_ascii=False,
            )
        )
        return
    for p in points:
        price = "removed" if p.price is None else f"¥{p.price:g}"
        card = "" if p.card_price is None else f" (card ¥{p.card_price:g})"
        flag = " [bold red]price_mismatch[/]" if p.mismatch else ""
        console.print(
            f"[dim]{p.at.isoformat()}[/] [cyan]+{p.offset:8.2f}s[/] {p.product} {p.source}"
            f" {price}{card}{flag}  [dim]{p.text}[/]",
            highlight=False,
        )
