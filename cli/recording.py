"""Recording commands: record a live source, ingest a file, verify a stream's chain, list
streams, set their products, and the recorded demo."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cli.base import audit_cli, clean_errors, console, open_cli_stores, stop_on_signals
from cli.transcripts import index_pending, search, transcribe_backlog, transcript
from core.errors import InvalidInputError
from core.jobs import TRANSCRIPTION_JOBS
from core.settings import Settings
from core.timeutil import iso, parse_iso

# The recorder, the verifier and storage are imported inside the commands that use them:
# every `livewitness` call imports this module (`livewitness search` starts in < 1 s).
if TYPE_CHECKING:
    from evidence.verify import VerifyReport
    from storage.models import Segment, Stream
    from storage.receipts import HeadReceipt
    from storage.stores import Stores

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
        bool,
        typer.Option(
            "--realtime",
            help="Read a file at native speed, as if live (without it a file is refused:"
            " `livewitness ingest` imports recordings).",
        ),
    ] = False,
    language: Annotated[str | None, typer.Option(help="Spoken language (zh, en).")] = None,
    streamer: Annotated[str | None, typer.Option(help="Who streams it.")] = None,
) -> None:
    """Record a live source into hashed, hash-chained segments, until it ends (or a stop,
    or --max-duration). A VOD playlist, a file or media arriving faster than real time is
    refused: `livewitness ingest` imports recordings."""
    from recorder.recorder import StreamRecorder
    from recorder.sources import resolve_source
    from storage.timestamping import stamping

    resolved = resolve_source(source)
    with open_cli_stores() as stores:
        if language or streamer:
            stream_id = stores.chain.open_stream(stream, resolved)
            stores.catalog.set_stream_details(stream_id, language=language, streamer=streamer)
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
        with stamping(stores.settings, stores.catalog, stores.blobs):
            summary = recorder.run()
    console.print(
        f"recorded {summary.segments} segments ({summary.seconds:.1f}s) of {stream!r}"
        f" with {summary.gaps} gaps; ended by {summary.ended_by}"
        + (f"; {summary.repeated} repeated segments not chained" if summary.repeated else ""),
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
    receipts: Annotated[
        Path | None,
        typer.Option(
            "--receipts",
            help="chain.head webhook payloads a witness received (JSON lines or a JSON"
            " array): the chain must still hold every one of those heads.",
        ),
    ] = None,
) -> None:
    """Re-read every stored byte of a stream and check hashes, chain and signatures."""
    from evidence.verify import verify_stream

    witnessed = read_receipts(receipts) if receipts is not None else []
    with open_cli_stores() as stores:
        report = verify_stream(
            stores.catalog,
            stores.blobs,
            stores.settings.signing_keys_dir,
            stream,
            witnessed,
            tsa_ca_bundle=stores.settings.tsa_ca_bundle,
        )
    if as_json:
        print(json.dumps(_report_dict(report), ensure_ascii=False))
        return
    console.print(
        f"[bold green]OK[/] {stream}: {report.entries} entries, {report.segments} segments"
        f" ({report.recorded_seconds:.1f}s), {report.gaps} gaps ({report.gap_seconds:.1f}s),"
        f" {report.signatures} signatures, head signed at entry {report.signed_head},"
        f" {report.bytes_checked} bytes checked"
        + (f", {report.receipts} witnessed heads found" if receipts is not None else "")
        + (f", {report.keyframes} keyframes" if report.keyframes else "")
        + (
            f", {report.timestamps} time-stamps, {report.timestamps_referenced} listed in the"
            f" chain (head {report.stamped_head} stamped at {iso(report.stamped_at)})"
            if report.stamped_at is not None
            else ""
        ),
        highlight=False,
    )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


def _report_dict(report: VerifyReport) -> dict[str, Any]:
    return report.to_json()


def read_receipts(path: Path) -> list[HeadReceipt]:
    from storage.receipts import parse_receipts

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read receipts from {path}: {exc}") from None
    return parse_receipts(text, str(path))


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
    """Import an existing recording: segment, hash and chain it, then transcribe it.

    Run again after an interruption, it resumes after the last segment chained; a file
    ingested whole is refused, as is one whose time the stream already holds."""
    from rich.progress import Progress

    from recorder.recorder import StreamRecorder
    from recorder.sources import resolve_source
    from storage.timestamping import stamping

    anchor = parse_iso(started_at)
    resolved = resolve_source(file)
    if not Path(resolved).is_file():
        raise InvalidInputError(f"ingest takes a local file, not {file}")
    with open_cli_stores() as stores:
        stream_id = stores.chain.open_stream(stream, resolved)
        stores.catalog.set_stream_details(stream_id, language=language, streamer=streamer)
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
            with stamping(stores.settings, stores.catalog, stores.blobs):
                summary = recorder.run()
        console.print(
            f"chained {summary.segments} segments ({summary.seconds:.1f}s) of {stream!r}"
            + (
                f", resuming an interrupted ingest of this file after its first"
                f" {summary.resumed} segments"
                if summary.resumed
                else ""
            ),
            highlight=False,
        )
        if transcribe:
            transcribe_backlog(stores, stream)
            index_pending(stores)


products_app = typer.Typer(help="A stream's product list (names, aliases, SKU, price).")


@products_app.command("set")
@clean_errors
def products_set(
    stream: Annotated[str, typer.Option("--stream", help="Stream name.")],
    file: Annotated[Path, typer.Argument(help="JSON or YAML list of products.")],
) -> None:
    """Replace a stream's product list from a file: [{name, aliases, sku, price}, ...]."""
    from storage.products import load_products

    products = load_products(file)
    with open_cli_stores() as stores:
        stream_id = stores.chain.open_stream(stream)
        stores.catalog.set_products(stream_id, products)
        console.print(f"{len(products)} products set for {stream!r}", highlight=False)
        if stores.catalog.transcripts(stream_id):
            # What was said before (an ingest, an earlier recording) is found by its
            # product from now on, without a manual `reindex`.
            done = reindex_stream(stores, stores.catalog.stream_by_id(stream_id))
            console.print(
                f"re-indexed {done} transcripts of {stream!r} with the new products",
                highlight=False,
            )


def reindex_stream(stores: Stores, stream: Stream) -> int:
    """Rebuild one stream's search documents (mentions, claims' products, banned hits)."""
    from indexer.factory import open_search_index
    from indexer.service import Indexer

    index = open_search_index(stores)
    try:
        with console.status(f"re-indexing {stream.name!r} with its products…"):
            return Indexer(stores, index).rescan([stream])
    finally:
        index.close()


@products_app.command("list")
@clean_errors
def products_list(stream: Annotated[str, typer.Option("--stream", help="Stream name.")]) -> None:
    with open_cli_stores() as stores:
        rows = stores.catalog.products(stores.catalog.get_stream(stream).id)
    table = Table("name", "aliases", "sku", "price")
    for p in rows:
        table.add_row(p.name, ", ".join(json.loads(p.aliases)), p.sku or "", f"{p.price or ''}")
    console.print(table)


@commands.command("add-stream")
@clean_errors
def add_stream_command(
    name: Annotated[str, typer.Argument(help="Stream name: letters, digits, '.', '_', '-'.")],
    source: Annotated[
        str, typer.Argument(help="Live source: rtmp://, an HLS .m3u8, HTTP-FLV, srt://, …")
    ],
    streamer: Annotated[str | None, typer.Option(help="Who streams it.")] = None,
    language: Annotated[str | None, typer.Option(help="Spoken language, e.g. zh.")] = None,
) -> None:
    """Start recording SOURCE as stream NAME on the running `serve` (or `recorder` stage):
    kept in the catalog they share, taken up within a second; no API key or HTTP needed."""
    from core.redact import redact_source
    from recorder.wanted import start_wanted

    with open_cli_stores() as stores:
        row = start_wanted(stores, name, source, streamer=streamer, language=language)
        audit_cli(stores, "stream.start", {"stream": row.name, "source": redact_source(source)})
    console.print(
        f"stream {row.name!r}: recording {redact_source(source.strip())} is wanted; a running"
        " `serve` or `recorder` stage starts it within a second (`livewitness streams`"
        f" shows it; `livewitness stop-stream {row.name}` stops it)",
        highlight=False,
    )


@commands.command("stop-stream")
@clean_errors
def stop_stream_command(
    name: Annotated[str, typer.Argument(help="Stream name.")],
) -> None:
    """Stop recording stream NAME (its recorder ends the session with an `end` entry)."""
    from recorder.wanted import stop_wanted

    with open_cli_stores() as stores:
        row = stop_wanted(stores, name)
        audit_cli(stores, "stream.stop", {"stream": row.name})
    console.print(f"stream {row.name!r}: recording stops within a second", highlight=False)


@commands.command()
@clean_errors
def streams() -> None:
    """List recorded streams."""
    with open_cli_stores() as stores:
        table = Table("stream", "status", "segments", "seconds", "gaps", "transcription backlog")
        for row in stores.catalog.list_streams():
            segments = stores.catalog.segments(row.id)
            gaps = sum(1 for e in stores.catalog.entries(row.id) if e.kind == "gap")
            backlog = sum(
                1
                for j in stores.catalog.jobs(row.id)
                if j.kind in TRANSCRIPTION_JOBS and j.status != "done"
            )
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
    from recorder.recorder import StreamRecorder
    from storage.products import parse_products
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
            while stores.catalog.backlog(*TRANSCRIPTION_JOBS):
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
