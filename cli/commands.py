"""The ``livewitness`` command line. Every command prints one readable line on bad input
and exits non-zero: 1 when evidence fails verification, 2 for any other error."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cli.base import clean_errors, console, open_cli_stores, stop_on_signals
from core.errors import InvalidInputError
from core.jobs import TRANSCRIBE_JOB
from core.settings import Settings
from core.timeutil import iso, parse_iso
from core.transcript import assemble_words, group_utterances
from evidence.verify import VerifyReport, verify_stream
from indexer.protocol import Hit
from recorder.recorder import StreamRecorder
from recorder.sources import resolve_source
from storage.models import Segment
from storage.products import load_products, parse_products
from storage.stores import Stores, open_stores

commands = typer.Typer()  # registered on the app by cli.main


@commands.command()
@clean_errors
def record(
    source: Annotated[str, typer.Argument(help="RTMP/HLS/HTTP-FLV/SRT URL, page URL or file.")],
    stream: Annotated[str, typer.Option("--stream", help="Stream name.")],
    segment_seconds: Annotated[
        float | None, typer.Option(help="Segment length in seconds (default 10).")
    ] = None,
    max_duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds.")
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Read a file at native speed, as live.")
    ] = False,
    language: Annotated[str | None, typer.Option(help="Spoken language (zh, en).")] = None,
    streamer: Annotated[str | None, typer.Option(help="Who streams it.")] = None,
) -> None:
    """Record a live source into hashed, hash-chained segments."""
    resolved = resolve_source(source)
    with open_cli_stores() as stores:
        if language or streamer:
            stream_id = stores.chain.open_stream(stream, resolved)
            stores.catalog.describe(stream_id, language=language, streamer=streamer)
        recorder = StreamRecorder(
            stores.settings,
            stores.chain,
            stream,
            resolved,
            segment_seconds=segment_seconds,
            max_duration=max_duration,
            realtime=realtime,
            on_segment=_print_segment,
        )
        stop_on_signals(recorder.stop)
        summary = recorder.run()
    console.print(
        f"recorded {summary.segments} segments ({summary.seconds:.1f}s) of {stream!r}"
        f" with {summary.gaps} gaps; ended by {summary.ended_by}",
        highlight=False,
    )


def _print_segment(segment: Segment) -> None:
    console.print(
        f"segment {segment.seq:>5}  {iso(segment.starts_at)}  {segment.duration:6.2f}s"
        f"  {segment.size:>9} B  sha256 {segment.sha256[:16]}…",
        highlight=False,
    )


@commands.command()
@clean_errors
def verify(
    stream: Annotated[str, typer.Option("--stream", help="Stream name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-read every stored byte of a stream and check hashes, chain and signatures."""
    with open_cli_stores() as stores:
        report = verify_stream(stores.catalog, stores.blobs, stores.settings.keys_dir, stream)
    if as_json:
        print(json.dumps(_report_dict(report), ensure_ascii=False))
        return
    console.print(
        f"[bold green]OK[/] {stream}: {report.entries} entries, {report.segments} segments"
        f" ({report.recorded_seconds:.1f}s), {report.gaps} gaps ({report.gap_seconds:.1f}s),"
        f" {report.signatures} signatures, head signed at entry {report.signed_head},"
        f" {report.bytes_checked} bytes checked",
        highlight=False,
    )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


def _report_dict(report: VerifyReport) -> dict[str, Any]:
    return {
        "stream": report.stream,
        "ok": True,
        "entries": report.entries,
        "segments": report.segments,
        "gaps": report.gaps,
        "recorded_seconds": round(report.recorded_seconds, 3),
        "gap_seconds": round(report.gap_seconds, 3),
        "signatures": report.signatures,
        "signed_head": report.signed_head,
        "first_start": iso(report.first_start) if report.first_start else None,
        "last_end": iso(report.last_end) if report.last_end else None,
        "bytes_checked": report.bytes_checked,
        "notes": report.notes,
    }


@commands.command()
@clean_errors
def ingest(
    file: Annotated[str, typer.Argument(help="A recording, e.g. a platform's replay file.")],
    stream: Annotated[str, typer.Option("--stream", help="Stream name.")],
    started_at: Annotated[
        str, typer.Option("--started-at", help="Wall-clock start, ISO 8601 with zone.")
    ],
    segment_seconds: Annotated[float | None, typer.Option(help="Segment length.")] = None,
    language: Annotated[
        str | None, typer.Option(help="Spoken language (zh, en); default from settings.")
    ] = None,
    streamer: Annotated[str | None, typer.Option(help="Who streams it.")] = None,
    transcribe: Annotated[bool, typer.Option(help="Transcribe after chaining.")] = True,
) -> None:
    """Import an existing recording: segment, hash and chain it, then transcribe it."""
    anchor = parse_iso(started_at)
    resolved = resolve_source(file)
    if not Path(resolved).is_file():
        raise InvalidInputError(f"ingest takes a local file, not {file}")
    with open_cli_stores() as stores:
        stream_id = stores.chain.open_stream(stream, resolved)
        stores.catalog.describe(stream_id, language=language, streamer=streamer)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("chaining segments", total=None)
            recorder = StreamRecorder(
                stores.settings,
                stores.chain,
                stream,
                resolved,
                segment_seconds=segment_seconds,
                started_at=anchor,
                on_segment=lambda _segment: progress.advance(task),
            )
            summary = recorder.run()
        console.print(
            f"chained {summary.segments} segments ({summary.seconds:.1f}s) of {stream!r}",
            highlight=False,
        )
        if transcribe:
            _transcribe_backlog(stores, stream)
            _index_pending(stores)


def _index_pending(stores: Stores) -> None:
    from indexer.factory import open_search_index
    from indexer.service import Indexer

    index = open_search_index(stores)
    try:
        Indexer(stores, index).index_pending()
    finally:
        index.close()


def _transcribe_backlog(stores: Stores, stream: str | None) -> None:
    from transcriber.factory import open_transcriber
    from transcriber.worker import TranscriptionWorker

    pending = [
        job
        for row in stores.catalog.list_streams()
        if stream is None or row.name == stream
        for job in stores.catalog.jobs(row.id, TRANSCRIBE_JOB)
        if job.status != "done"
    ]
    worker = TranscriptionWorker(stores, open_transcriber(stores))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("transcribing", total=len(pending))
        audio = wall = 0.0
        while (result := worker.run_once()) is not None:
            audio += result.audio_seconds
            wall += result.wall_seconds
            progress.advance(task)
    if wall:
        console.print(f"transcribed {audio:.1f}s of audio at {audio / wall:.1f}x real time")


@commands.command("transcribe")
@clean_errors
def transcribe_command(
    workers: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep waiting for new segments.")
    ] = False,
) -> None:
    """Transcribe queued segments (all streams): until the queue is empty, or --follow."""
    settings = Settings()
    if workers is not None:
        settings = settings.model_copy(update={"transcribe_workers": workers})
    stores = open_stores(settings)
    try:
        if not follow:
            _transcribe_backlog(stores, None)
            return
        from transcriber.pool import TranscriberPool

        pool = TranscriberPool(stores)
        stop_on_signals(pool.stop)
        pool.run()
    finally:
        stores.close()


@commands.command()
@clean_errors
def transcript(
    stream: Annotated[str, typer.Option("--stream", help="Stream name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print utterances as JSON.")] = False,
) -> None:
    """Print a stream's transcript with times."""
    with open_cli_stores() as stores:
        row = stores.catalog.get_stream(stream)
        documents = [json.loads(t.body) for t in stores.catalog.transcripts(row.id)]
    utterances = group_utterances(assemble_words(documents))
    if as_json:
        print(json.dumps(utterances, ensure_ascii=False))
        return
    for u in utterances:
        console.print(
            f"[dim]{u['start']}[/] [cyan]+{u['offset']:8.2f}s[/]  {u['text']}", highlight=False
        )


@commands.command()
@clean_errors
def search(
    query: Annotated[
        str, typer.Argument(help="What was said; may be empty with --claim or --product.")
    ],
    stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
    streamer: Annotated[str | None, typer.Option(help="Only this streamer's streams.")] = None,
    product: Annotated[
        str | None, typer.Option(help="Only utterances naming this product.")
    ] = None,
    claim: Annotated[
        str | None, typer.Option(help="Only this claim type (price, returns, ...).")
    ] = None,
    banned: Annotated[
        str | None, typer.Option(help="Only utterances with a banned word of this category.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Until this time (ISO 8601).")] = None,
    sort: Annotated[str, typer.Option(help="relevance or time.")] = "relevance",
    page: Annotated[int, typer.Option(help="Page number, from 1.")] = 1,
    size: Annotated[int, typer.Option(help="Hits per page.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False,
) -> None:
    """Search what was said: exact and sound-alike matches, with their moments."""
    from indexer.factory import open_search_index
    from indexer.protocol import SearchQuery
    from indexer.service import Indexer

    if sort not in ("relevance", "time"):
        raise InvalidInputError("sort must be 'relevance' or 'time'")
    request = SearchQuery(
        text=query,
        stream=stream,
        streamer=streamer,
        product=product,
        claim=claim,
        banned=banned,
        since=parse_iso(since) if since else None,
        until=parse_iso(until) if until else None,
        sort=sort,  # type: ignore[arg-type]
        page=page,
        size=size,
    )
    with open_cli_stores() as stores:
        index = open_search_index(stores)
        try:
            Indexer(stores, index).index_pending()
            result = index.search(request)
        finally:
            index.close()
    if as_json:
        print(json.dumps([hit_json(h) for h in result.hits], ensure_ascii=False))
        return
    more = "+" if result.total_relation == "gte" else ""
    console.print(f"{result.total}{more} hits", highlight=False)
    for hit in result.hits:
        marked = hit.highlighted.replace("<mark>", "[bold yellow]").replace("</mark>", "[/]")
        kind = "" if hit.match == "exact" else " [magenta](sound-alike)[/]"
        console.print(
            f"[cyan]{hit.stream}[/] {hit.start} +{hit.offset:.1f}s{kind}  {marked}",
            highlight=False,
        )


def hit_json(hit: Hit) -> dict[str, Any]:
    """A hit as the CLI prints it: every field but the internal document id."""
    return {k: v for k, v in asdict(hit).items() if k != "id"}


@commands.command()
@clean_errors
def reindex() -> None:
    """Rebuild the search index from the stored transcripts."""
    from indexer.factory import open_search_index
    from indexer.service import Indexer

    with open_cli_stores() as stores:
        index = open_search_index(stores)
        try:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
            ) as progress:
                task = progress.add_task("reindexing transcripts", total=None)
                done = Indexer(stores, index).reindex(
                    lambda n, total: progress.update(task, completed=n, total=total)
                )
            console.print(f"reindexed {done} transcripts, {index.count()} utterances")
        finally:
            index.close()


products_app = typer.Typer(help="A stream's product list (names, aliases, SKU, price).")


@products_app.command("set")
@clean_errors
def products_set(
    stream: Annotated[str, typer.Option("--stream", help="Stream name.")],
    file: Annotated[Path, typer.Argument(help="JSON or YAML list of products.")],
) -> None:
    """Replace a stream's product list from a file: [{name, aliases, sku, price}, ...]."""
    products = load_products(file)
    with open_cli_stores() as stores:
        stream_id = stores.chain.open_stream(stream)
        stores.catalog.set_products(stream_id, products)
    console.print(f"{len(products)} products set for {stream!r}", highlight=False)


@products_app.command("list")
@clean_errors
def products_list(stream: Annotated[str, typer.Option("--stream", help="Stream name.")]) -> None:
    with open_cli_stores() as stores:
        rows = stores.catalog.products(stores.catalog.get_stream(stream).id)
    table = Table("name", "aliases", "sku", "price")
    for p in rows:
        table.add_row(p.name, ", ".join(json.loads(p.aliases)), p.sku or "", f"{p.price or ''}")
    console.print(table)


@commands.command()
@clean_errors
def streams() -> None:
    """List recorded streams."""
    with open_cli_stores() as stores:
        table = Table("stream", "status", "segments", "seconds", "gaps", "transcription backlog")
        for row in stores.catalog.list_streams():
            segments = stores.catalog.segments(row.id)
            gaps = sum(1 for e in stores.catalog.entries(row.id) if e.kind == "gap")
            backlog = sum(1 for j in stores.catalog.jobs(row.id) if j.status != "done")
            seconds = sum(s.duration for s in segments)
            table.add_row(
                row.name, row.status, str(len(segments)), f"{seconds:.1f}", str(gaps), str(backlog)
            )
    console.print(table)


@commands.command()
@clean_errors
def demo(
    seconds: Annotated[float, typer.Option(help="How long to record the demo source.")] = 50.0,
) -> None:
    """Record a Mandarin demo livestream live, transcribe it as it arrives, verify it."""
    import time

    from cli.demo_source import DEMO_PRODUCTS, make_demo_source
    from transcriber.pool import TranscriberPool

    settings = Settings()
    source = make_demo_source(settings, settings.home / "demo" / "demo-source.mp4")
    with open_cli_stores() as stores:
        stream_id = stores.chain.open_stream("demo", str(source))
        stores.catalog.set_products(stream_id, parse_products(DEMO_PRODUCTS))
        console.print("loading the Whisper model…")
        pool = TranscriberPool(stores)
        pool.start()
        from indexer.factory import open_search_index
        from indexer.service import Indexer

        index = open_search_index(stores)
        indexer_stop = threading.Event()
        indexing = threading.Thread(
            target=Indexer(stores, index).follow, args=(indexer_stop,), daemon=True
        )
        indexing.start()
        console.print(f"recording {source} live for {seconds:.0f}s into {settings.home}/")
        recorder = StreamRecorder(
            stores.settings,
            stores.chain,
            "demo",
            str(source),
            segment_seconds=5.0,
            max_duration=seconds,
            realtime=True,
            on_segment=_print_segment,
        )
        stop_on_signals(recorder.stop)
        recorder.run()
        with console.status("transcribing the last segments…"):
            while stores.catalog.backlog(TRANSCRIBE_JOB):
                time.sleep(0.5)
        pool.stop()
        pool.join()
        indexer_stop.set()
        indexing.join()
        index.close()
    transcript("demo", as_json=False)
    verify("demo", as_json=False)
    for query in ("假一赔十", "包邮", "羽绒服"):
        console.print(f"\n[bold]livewitness search {query} --stream demo[/]")
        search(query, stream="demo", size=3)
