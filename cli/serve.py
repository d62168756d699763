"""``livewitness serve`` (every stage in one process) and the stages one by one
(``api``, ``recorder``, ``transcriber``, ``indexer``). Stages coordinate only through
storage, catalog and index.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer

from cli.base import clean_errors, console, open_cli_stores, stop_on_signals
from core.settings import load_settings

# Storage and the stages are imported in the commands: every `livewitness` call (search,
# --help) imports this module, and SQLAlchemy alone takes a quarter of a second.
if TYPE_CHECKING:
    from core.transcript import SegmentTranscript
    from storage.stores import Stores

commands = typer.Typer()  # registered on the app by cli.main

MetricsPort = Annotated[
    int, typer.Option(help="Serve Prometheus metrics on this port (0: off).", min=0, max=65535)
]


def _metrics(stores: Stores, port: int) -> None:
    if port:
        from storage.metrics import serve_metrics

        serve_metrics(stores.catalog, port, stores.settings.api_host)
        console.print(f"metrics on http://{stores.settings.api_host}:{port}/metrics")


def _run_threads(
    targets: list[tuple[str, Callable[[threading.Event], None]]], stores: Stores
) -> None:
    """Run each stage in a thread until SIGTERM or Ctrl-C, then stop them all.

    The API is the process's face (and reports on the others): when it stops, the process
    stops. Every other stage is supervised (storage/stages.py): a failure is logged,
    counted, shown by ``/health``, and the stage is restarted after a growing wait.
    """
    from storage.stages import STAGES, supervise

    settings = stores.settings
    stop = threading.Event()
    stop_on_signals(stop.set)
    threads = []
    for name, target in targets:
        run = target
        if name != "api":
            STAGES.register(name, _backlog_of(name, stores))
            run = partial(
                supervise,
                name,
                target,
                initial_seconds=settings.stage_restart_initial_seconds,
                max_seconds=settings.stage_restart_max_seconds,
            )
        threads.append(threading.Thread(target=run, args=(stop,), name=name, daemon=True))
    for thread in threads:
        thread.start()
    try:
        while not stop.wait(0.5):
            if not all(t.is_alive() for t in threads):
                dead = [t.name for t in threads if not t.is_alive()]
                console.print(f"[red]stage stopped: {', '.join(dead)}[/]")
                stop.set()
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        for name, _target in targets:
            STAGES.forget(name)


def _backlog_of(name: str, stores: Stores) -> Callable[[], int] | None:
    """What ``/health`` shows as a stage's backlog (read from the catalog when asked)."""
    from core.jobs import OCR_JOB, TRANSCRIPTION_JOBS

    # The transcriber's work is speech chunks as well as whole segments.
    kinds = {"transcriber": TRANSCRIPTION_JOBS, "ocr": (OCR_JOB,)}.get(name)
    if kinds is None:
        return None
    return lambda: stores.catalog.backlog(*kinds)


def _stage_api(stores: Stores, host: str, port: int) -> Callable[[threading.Event], None]:
    import uvicorn

    from api.app import create_app
    from api.deps import audit_log
    from indexer.factory import open_search_index
    from storage.events import EventService

    index = open_search_index(stores)
    server = uvicorn.Server(
        uvicorn.Config(create_app(stores, index), host=host, port=port, log_level="warning")
    )
    # The stages share one signal handler (stop_on_signals), not uvicorn's own.
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]

    # The API appends the audit log, so it signs the log's head: every N events as they
    # come, every interval here, and once more when it stops.
    heads = audit_log(stores)
    sealer = EventService(stores)

    def run(stop: threading.Event) -> None:
        def exit_on_stop() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=exit_on_stop, daemon=True).start()
        signing = threading.Thread(target=heads.follow, args=(stop,), daemon=True)
        signing.start()
        # Events posted to this API are sealed into their chains as their windows close.
        threading.Thread(target=sealer.follow, args=(stop,), daemon=True).start()
        try:
            server.run()
        finally:
            stop.set()
            signing.join(30)
            index.close()

    return run


def _stage_recorder(stores: Stores) -> Callable[[threading.Event], None]:
    from recorder.supervisor import RecordingSupervisor

    return RecordingSupervisor(stores).follow


def _stage_transcriber(stores: Stores) -> Callable[[threading.Event], None]:
    from transcriber.pool import TranscriberPool

    def run(stop: threading.Event) -> None:
        pool = TranscriberPool(stores)
        pool.start()
        stop.wait()
        pool.stop()
        pool.join()

    return run


def _stage_ocr(stores: Stores) -> list[tuple[str, Callable[[threading.Event], None]]]:
    """The OCR workers (on-screen text), when OCR is on."""
    if not stores.settings.ocr_enabled:
        return []
    from transcriber.ocr.pool import OcrPool

    def run(stop: threading.Event) -> None:
        pool = OcrPool(stores)
        pool.start()
        stop.wait()
        pool.stop()
        pool.join()

    return [("ocr", run)]


def _stage_holds(stores: Stores) -> tuple[str, Callable[[threading.Event], None]]:
    """Legal holds of cases: placed when the store could not take them at once, and
    released once a closed case's delay has passed (storage/holds.py)."""
    from storage.holds import follow_holds

    def run(stop: threading.Event) -> None:
        settings = stores.settings
        follow_holds(
            stores.blobs,
            stores.catalog,
            settings.case_hold_release_delay_seconds,
            settings.case_hold_check_seconds,
            stop,
        )

    return ("holds", run)


def _stage_stamper(stores: Stores) -> list[tuple[str, Callable[[threading.Event], None]]]:
    """The RFC 3161 stamper, where TSAs are configured (made now, so that a bad CA bundle
    stops the start with one line rather than a stage later)."""
    if not stores.settings.tsa_urls:
        return []
    from storage.timestamping import Stamper

    return [("stamper", Stamper(stores.settings, stores.catalog, stores.blobs).follow)]


def _stage_indexer(
    stores: Stores, say: Callable[[str], None] | None = None
) -> list[tuple[str, Callable[[threading.Event], None]]]:
    """The indexer and the webhook sender: two stages, each supervised on its own, so that
    a sender that fails does not stop indexing (nor the other way round). With ``say``,
    the indexer says each segment it indexes (the stage run on its own)."""
    from compliance.alerts import WebhookNotifier
    from indexer.factory import open_search_index
    from indexer.service import Indexer

    def index(stop: threading.Event) -> None:
        opened = open_search_index(stores)
        try:
            if say is not None:
                from cli.progress_lines import ReportingIndexer

                ReportingIndexer(stores, opened, say).follow(stop)
            else:
                Indexer(stores, opened).follow(stop)
        finally:
            opened.close()

    def deliver(stop: threading.Event) -> None:
        notifier = WebhookNotifier(stores.catalog, stores.settings)
        try:
            notifier.follow(stop)
        finally:
            notifier.close()

    return [("indexer", index), ("alerts", deliver)]


Host = Annotated[str | None, typer.Option(help="Listen address (default: settings).")]
Port = Annotated[int | None, typer.Option(help="Listen port (default: settings, 8080).")]


@commands.command()
@clean_errors
def serve(
    host: Host = None,
    port: Port = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Also publish and record the bundled demo stream.")
    ] = False,
) -> None:
    """Run everything in one process: API and web page, recorders, transcription
    workers, indexer and alerts (the embedded defaults)."""
    settings = load_settings()
    host = host or settings.api_host
    port = port if port is not None else settings.api_port
    if "public_url" not in settings.model_fields_set:  # links in alerts point here
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    if demo:  # the demo publishes its stream and takes its alerts on 127.0.0.1
        allow = [*settings.egress_allow, "127.0.0.1"]
        settings = settings.model_copy(update={"egress_allow": allow})
    from storage.stores import open_stores

    with open_stores(settings) as stores:
        console.print("loading the Whisper model…")
        stages = [
            ("api", _stage_api(stores, host, port)),
            _stage_holds(stores),
            ("recorder", _stage_recorder(stores)),
            ("transcriber", _stage_transcriber(stores)),
            *_stage_ocr(stores),
            *_stage_indexer(stores),
            *_stage_stamper(stores),
        ]
        shown = None
        if demo:
            from cli.demo import start_demo

            shown = start_demo(stores, lambda line: console.print(line, highlight=False))
            stages.append(("transcripts", _print_transcripts(stores)))
        console.print(f"LiveWitness on http://{host}:{port}/  (API: /api/v1/docs)")
        if shown is not None:
            console.print(
                f"demo: recording {shown.source.url} as stream 'demo'; sign in with the"
                f" reviewer key\n  {shown.keys['reviewer']}\n(compliance key"
                f" {shown.keys['compliance']}, admin key {shown.keys['admin']})",
                highlight=False,
            )
        try:
            _run_threads(stages, stores)
        finally:
            if shown is not None:
                shown.stop(stores)


def _print_transcripts(stores: Stores) -> Callable[[threading.Event], None]:
    """Show what was said as it is transcribed (what the demo is about): a speech chunk's
    words at once; a whole segment's utterances as search indexes them (a word cut by a
    segment boundary is shown whole, once), so such a transcript is shown once the next
    one is there, or after two segments' time; transcripts stored before this start are
    not shown again."""
    from core.transcript import SegmentTranscript

    catalog = stores.catalog
    keys = catalog.transcript_keys(0)
    start = keys[-1][0] if keys else 0  # what was there before this start is not news

    def run(stop: threading.Event) -> None:
        cursor = start
        waiting: dict[int, dict[int, tuple[SegmentTranscript, float]]] = {}
        shown: dict[int, SegmentTranscript] = {}
        patience = 2 * stores.settings.segment_seconds
        while not stop.wait(1.0):
            for row_id, stream_id, seq, part in catalog.transcript_keys(cursor):
                cursor = row_id
                rows = catalog.transcripts(stream_id, [seq])
                (row,) = [r for r in rows if r.part == part]
                body = SegmentTranscript.from_json(json.loads(row.body))
                if body.provisional:  # an early piece: its chunk's words are shown
                    continue
                if part:  # a speech chunk ends in a pause: nothing runs on, shown at once
                    _print_utterances(stores, stream_id, None, body, None)
                    continue
                waiting.setdefault(stream_id, {})[seq] = (body, time.monotonic())
            for stream_id, bodies in waiting.items():
                for seq in sorted(bodies):
                    body, arrived = bodies[seq]
                    following = bodies.get(seq + 1, (None, 0.0))[0]
                    if following is None and time.monotonic() - arrived < patience:
                        break  # its last words may still run on into the next one
                    del bodies[seq]
                    _print_utterances(stores, stream_id, shown.get(stream_id), body, following)
                    shown[stream_id] = body

    return run


def _print_utterances(
    stores: Stores,
    stream_id: int,
    previous: SegmentTranscript | None,
    body: SegmentTranscript,
    following: SegmentTranscript | None,
) -> None:
    from core.transcript import carried_words, indexed_until, utterances_of

    until = indexed_until(body, following)
    words = [*carried_words(previous, body)] + [
        w for w in body.words if until is None or w.offset < until
    ]
    text = " ".join(u.text for u in utterances_of(words) if u.text)
    if text:
        name = stores.catalog.stream_by_id(stream_id).name
        console.print(f"[cyan]{name}[/] segment {body.segment}: {text}", highlight=False)


@commands.command("api")
@clean_errors
def api_command(host: Host = None, port: Port = None) -> None:
    """Run the HTTP API and web page only."""
    from cli.placement import check_placement

    with open_cli_stores() as stores:
        check_placement("api", stores)
        host = host or stores.settings.api_host
        port = port if port is not None else stores.settings.api_port
        console.print(f"API on http://{host}:{port}/api/v1/docs")
        _run_threads([("api", _stage_api(stores, host, port)), _stage_holds(stores)], stores)


@commands.command("recorder")
@clean_errors
def recorder_command(metrics_port: MetricsPort = 0) -> None:
    """Run the recording stage: record every stream the API asked for."""
    from cli.placement import check_placement

    with open_cli_stores() as stores:
        check_placement("recorder", stores)
        _metrics(stores, metrics_port)
        _run_threads([("recorder", _stage_recorder(stores)), *_stage_stamper(stores)], stores)


@commands.command("transcriber")
@clean_errors
def transcriber_command(metrics_port: MetricsPort = 0) -> None:
    """Run the transcription stage: claim segments from the catalog and transcribe them."""
    from cli.placement import check_placement

    with open_cli_stores() as stores:
        check_placement("transcriber", stores)
        _metrics(stores, metrics_port)
        _run_threads([("transcriber", _stage_transcriber(stores))], stores)


@commands.command("indexer")
@clean_errors
def indexer_command(metrics_port: MetricsPort = 0) -> None:
    """Run the indexing stage: index new transcripts as they are stored, find banned
    words, and post alerts to the webhooks."""
    with open_cli_stores() as stores:
        _metrics(stores, metrics_port)
        say = partial(console.print, highlight=False)
        say("indexing transcripts as they are stored; Ctrl-C stops")
        _run_threads(_stage_indexer(stores, say), stores)
