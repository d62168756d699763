"""On-screen text commands: read queued segments' frames (the OCR stage) and print what
a stream showed."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.base import audit_cli, clean_errors, console, open_cli_stores, stop_on_signals
from core.errors import InvalidInputError
from core.settings import Settings
from core.timeutil import iso, parse_iso

commands = typer.Typer()  # registered on the app by cli.main


@commands.command("ocr")
@clean_errors
def ocr_command(
    workers: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep waiting for new segments.")
    ] = False,
) -> None:
    """Read on-screen text in queued segments (all streams): until the queue is empty,
    or --follow. Keyframes with text are stored and chained."""
    from storage.stores import open_stores
    from transcriber.ocr.pool import OcrPool, open_reader
    from transcriber.ocr.worker import OcrWorker

    settings = Settings()
    if workers is not None:
        settings = settings.model_copy(update={"ocr_workers": workers})
    stores = open_stores(settings)
    try:
        if not follow:
            worker = OcrWorker(stores, open_reader(stores))
            frames = segments = lines = 0
            while (result := worker.run_once()) is not None:
                segments, frames, lines = segments + 1, frames + result.frames, lines + result.lines
            console.print(f"read {frames} frames of {segments} segments: {lines} lines of text")
            return
        from cli.placement import check_placement

        check_placement("ocr", stores)
        pool = OcrPool(stores)
        stop_on_signals(pool.stop)
        pool.start()
        pool.join()
    finally:
        stores.close()


@commands.command()
@clean_errors
def screen(
    stream: Annotated[str, typer.Option("--stream", help="Stream name.")],
    since: Annotated[str | None, typer.Option(help="From (ISO 8601 with zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Until (ISO 8601 with zone).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print lines as JSON.")] = False,
) -> None:
    """Print the on-screen text a stream showed, with when it was first and last seen."""
    start = parse_iso(since) if since else None
    end = parse_iso(until) if until else None
    if start is not None and end is not None and end < start:
        raise InvalidInputError("--until is before --since")
    with open_cli_stores() as stores:
        row = stores.catalog.get_stream(stream)
        lines = stores.catalog.screen_text(row.id, row.name, start, end)
        audit_cli(stores, "screen.read", {"stream": stream, "lines": len(lines)})
    if as_json:
        print(json.dumps([line.to_json() for line in lines], ensure_ascii=False))
        return
    for line in lines:
        console.print(
            f"[dim]{iso(line.first_seen_at)}[/] [cyan]+{line.first_offset:8.2f}s[/]"
            f" .. +{line.last_offset:.2f}s  {line.text}",
            highlight=False,
        )
