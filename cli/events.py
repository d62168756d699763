"""``livewitness events``: take a stream's chat, product cards and orders from a
connector as they happen (``follow``) or from a platform's export (``import``), through
the same checks as the API (docs/events.md); ``list`` reads them back (audited)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.base import audit_cli, clean_errors, console, err, open_cli_stores, stop_on_signals

if TYPE_CHECKING:
    from storage.events import IngestReport

events_app = typer.Typer(
    help="Stream events (chat, product cards, orders, notices) on the chained timeline."
)

StreamOption = Annotated[str, typer.Option("--stream", help="The stream's name.")]
IMPORT_CHUNK = 5000  # lines per ingest: bounded memory for a large export


def _print_problems(report: IngestReport) -> None:
    for problem in report.problems:
        if problem.status == "refused":
            err.print(
                f"line {problem.line}: refused ({problem.reason}): {problem.error}",
                highlight=False,
                markup=False,
            )


def _totals(report: IngestReport, batches: int) -> str:
    return (
        f"{report.accepted} accepted, {report.duplicate} duplicate, {report.refused} refused;"
        f" {batches} batches chained"
    )


@events_app.command("follow")
@clean_errors
def follow(
    stream: StreamOption,
    source: Annotated[
        str,
        typer.Argument(
            help="A file to tail, - for standard input, an http(s):// NDJSON stream or a"
            " ws(s):// WebSocket sending one JSON object per message."
        ),
    ],
) -> None:
    """Follow a connector's events until it ends (a file: Ctrl-C) and chain them."""
    from recorder.event_feeds import EventFollower, open_feed
    from storage.blob_keys import check_stream_name
    from storage.events import EventService

    name = check_stream_name(stream)
    with open_cli_stores() as stores:
        feed = open_feed(source, stores.settings)
        stream_id = stores.chain.open_stream(name)
        stop = threading.Event()
        stop_on_signals(stop.set)
        follower = EventFollower(EventService(stores), stream_id, name, feed, _print_problems)
        console.print(f"following {feed.name} into stream {name!r}", highlight=False)
        summary = follower.run(stop)
    console.print(
        _totals(summary.report, summary.batches)
        + (f"; {summary.gaps} gaps" if summary.gaps else ""),
        highlight=False,
    )


@events_app.command("import")
@clean_errors
def import_events(
    file: Annotated[Path, typer.Argument(help="NDJSON (one event a line) or a JSON array.")],
    stream: StreamOption,
) -> None:
    """Import a platform's export of a stream's events (after the fact) and chain them.
    Repeating an import adds nothing: events are taken once by id."""
    from core.errors import InvalidInputError
    from storage.blob_keys import check_stream_name
    from storage.events import EventService, IngestReport

    name = check_stream_name(stream)
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise InvalidInputError(f"cannot open {file}: {exc.strerror}") from None
    with open_cli_stores() as stores, handle:
        stream_id = stores.chain.open_stream(name)
        service = EventService(stores)
        total = IngestReport()
        head = handle.read(1 << 16)
        if head.lstrip().startswith(b"["):
            report = service.ingest_body(stream_id, head + handle.read(), limited=False)
            total.add(report)
        else:
            handle.seek(0)
            chunk: list[tuple[int, bytes]] = []
            for number, line in enumerate(handle, start=1):
                chunk.append((number, line.rstrip(b"\r\n")))
                if len(chunk) >= IMPORT_CHUNK:
                    total.add(service.ingest_lines(stream_id, chunk, limited=False))
                    chunk = []
            total.add(service.ingest_lines(stream_id, chunk, limited=False))
        batches = service.seal(stream_id, name, final=True)
        _print_problems(total)
    console.print(_totals(total, len(batches)), highlight=False)
    if total.refused:
        raise typer.Exit(1)


@events_app.command("list")
@clean_errors
def list_events(
    stream: StreamOption,
    start: Annotated[str | None, typer.Option(help="From (ISO 8601).")] = None,
    end: Annotated[str | None, typer.Option(help="Up to, exclusive (ISO 8601).")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only this kind (repeatable).")] = None,
) -> None:
    """Print a stream's events as JSON lines, by time (a read of evidence: audited)."""
    from core.timeutil import parse_iso
    from storage.events import EventService

    with open_cli_stores() as stores:
        row = stores.catalog.get_stream(stream)
        found = EventService(stores).events(
            row.id,
            parse_iso(start) if start else None,
            parse_iso(end) if end else None,
            kind,
        )
        audit_cli(
            stores,
            "events.read",
            {"stream": stream, "start": start, "end": end, "kind": kind, "count": len(found)},
        )
    for event in found:
        record = {**event.to_json(), "batch": event.batch}
        print(json.dumps(record, ensure_ascii=False))
