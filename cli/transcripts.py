"""Transcription and search commands: transcribe queued segments, print a transcript,
search what was said, rebuild the index."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.base import audit_cli, clean_errors, console, err, open_cli_stores, stop_on_signals
from core.errors import InvalidInputError
from core.jobs import TRANSCRIPTION_JOBS
from core.settings import Settings, load_settings
from core.timeutil import parse_iso

# Heavy modules (SQLAlchemy, pinyin, Whisper, rich.progress) are imported inside the
# commands that need them: every `livewitness` call imports this module.
if TYPE_CHECKING:
    from indexer.protocol import Hit
    from storage.stores import Stores

commands = typer.Typer()  # registered on the app by cli.main

# At most this many transcripts a search indexes first (the indexer stage's job); it
# says how many more are waiting, so a search never stalls behind a long backlog.
SEARCH_CATCH_UP = 20


def index_pending(stores: Stores) -> None:
    from indexer.factory import open_search_index
    from indexer.service import Indexer

    index = open_search_index(stores)
    try:
        Indexer(stores, index).index_pending()
    finally:
        index.close()


def transcribe_backlog(stores: Stores, stream: str | None) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from transcriber.factory import open_transcriber
    from transcriber.worker import TranscriptionWorker

    pending = [
        job
        for row in stores.catalog.list_streams()
        if stream is None or row.name == stream
        for job in stores.catalog.jobs(row.id)
        if job.kind in TRANSCRIPTION_JOBS and job.status != "done"
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
    """Transcribe queued segments (all streams) and index them: until the queue is
    empty, or --follow (then the indexer stage indexes them)."""
    from storage.stores import open_stores

    settings = Settings()
    if workers is not None:
        settings = settings.model_copy(update={"transcribe_workers": workers})
    stores = open_stores(settings)
    try:
        if not follow:
            transcribe_backlog(stores, None)
            index_pending(stores)  # searchable now, as after `ingest`
            return
        from cli.progress_lines import follow_transcripts
        from transcriber.pool import TranscriberPool

        pool = TranscriberPool(stores)
        stop_on_signals(pool.stop)
        say = partial(console.print, highlight=False)
        workers = settings.transcribe_workers
        say(
            f"transcribing new segments with {workers} worker{'s' if workers > 1 else ''}"
            f" ({stores.catalog.backlog(*TRANSCRIPTION_JOBS)} queued); Ctrl-C stops"
        )
        lines = threading.Thread(
            target=follow_transcripts, args=(stores, say, threading.Event()), daemon=True
        )
        lines.start()
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
    from core.transcript import SegmentTranscript, assemble_words, utterances_of

    with open_cli_stores() as stores:
        row = stores.catalog.get_stream(stream)
        stored = [
            SegmentTranscript.from_json(json.loads(t.body))
            for t in stores.catalog.transcripts(row.id)
        ]
        utterances = utterances_of(assemble_words(stored))
        audit_cli(stores, "transcript.read", {"stream": stream, "utterances": len(utterances)})
    if as_json:
        print(json.dumps([u.to_json() for u in utterances], ensure_ascii=False))
        return
    for u in utterances:
        console.print(f"[dim]{u.start}[/] [cyan]+{u.offset:8.2f}s[/]  {u.text}", highlight=False)


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
    kind: Annotated[
        str | None, typer.Option(help="Only speech, chat, screen (on-screen text) or card.")
    ] = None,
    page: Annotated[int, typer.Option(help="Page number, from 1.")] = 1,
    size: Annotated[int, typer.Option(help="Hits per page.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False,
) -> None:
    """Search what was said: exact and sound-alike matches, with their moments."""
    from indexer.factory import embedded_index_current, open_search_index, search_index_for
    from indexer.protocol import SearchQuery

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
        kind=kind,  # type: ignore[arg-type]  # checked by the index (check_query)
    )
    settings = load_settings()
    indexed = behind = 0
    if embedded_index_current(settings):
        # Nothing to catch up: search the index alone, without the catalog's models
        # (most of a search's start-up time).
        index = search_index_for(settings)
        try:
            result = index.search(request)
        finally:
            index.close()
    else:
        from indexer.service import Indexer

        with open_cli_stores() as stores:
            index = open_search_index(stores)
            try:
                indexer = Indexer(stores, index)
                indexed = indexer.index_pending(limit=SEARCH_CATCH_UP)
                behind = indexer.behind
                result = index.search(request)
            finally:
                index.close()
    if indexed:  # on stderr: --json output stays one JSON document
        err.print(f"indexed {indexed} new transcripts first", highlight=False)
    if behind:
        err.print(
            f"note: {behind} more transcripts are not indexed yet, so these hits"
            " miss them; the indexer stage (`livewitness indexer` or `serve`) indexes"
            " them, `livewitness reindex` rebuilds the index",
            highlight=False,
            markup=False,
        )
    if as_json:
        print(json.dumps([search_hit_json(h) for h in result.hits], ensure_ascii=False))
        return
    from indexer.query import hit_match_times

    more = "+" if result.total_relation == "gte" else ""
    console.print(f"{result.total}{more} hits", highlight=False)
    for hit in result.hits:
        marked = hit.highlighted.replace("<mark>", "[bold yellow]").replace("</mark>", "[/]")
        how = "" if hit.match == "exact" else f" [magenta]({hit.match})[/]"
        what = "" if hit.kind == "speech" else f" [green]{hit.kind}[/]"
        at = hit_match_times(hit)
        console.print(
            f"[cyan]{hit.stream}[/] {at.start} +{at.offset:.1f}s{what}{how}  {marked}",
            highlight=False,
        )


def search_hit_json(hit: Hit) -> dict[str, Any]:
    """A hit as the CLI prints it: every field but the internal document id, with the
    matched words' times as the API gives them."""
    from indexer.query import hit_match_times

    times = hit_match_times(hit)
    return {k: v for k, v in asdict(hit).items() if k != "id"} | {
        "match_offset": times.offset,
        "match_end_offset": times.end_offset,
        "match_start": times.start,
        "match_end": times.end,
    }


@commands.command()
@clean_errors
def reindex() -> None:
    """Rebuild the search index from the stored transcripts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from indexer.factory import open_search_index
    from indexer.service import Indexer

    with open_cli_stores() as stores:
        index = open_search_index(stores, discard_damaged=True)  # rebuilt from storage
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
