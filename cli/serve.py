"""``livewitness serve`` (every stage in one process) and the stages one by one
(``api``, ``recorder``, ``transcriber``, ``indexer``). Stages coordinate only through
storage, catalog and index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

import typer

from cli.base import clean_errors, console, open_cli_stores, stop_on_signals
from core.settings import Settings
from storage.stores import Stores, open_stores

commands = typer.Typer()  # registered on the app by cli.main

MetricsPort = Annotated[
    int, typer.Option(help="Serve Prometheus metrics on this port (0: off).", min=0, max=65535)
]


def _metrics(stores: Stores, port: int) -> None:
    if port:
        from storage.metrics import serve_metrics

        serve_metrics(stores.catalog, port, stores.settings.api_host)
        console.print(f"metrics on http://{stores.settings.api_host}:{port}/metrics")


def _run_threads(targets: list[tuple[str, Callable[[threading.Event], None]]]) -> None:
    """Run each stage in a thread until SIGTERM or Ctrl-C, then stop them all."""
    stop = threading.Event()
    stop_on_signals(stop.set)
    threads = [
        threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        for name, target in targets
    ]
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


def _stage_api(stores: Stores, host: str, port: int) -> Callable[[threading.Event], None]:
    import uvicorn

    from api.app import create_app
    from api.deps import audit_log
    from indexer.factory import open_search_index

    index = open_search_index(stores)
    server = uvicorn.Server(
        uvicorn.Config(create_app(stores, index), host=host, port=port, log_level="warning")
    )
    # The stages share one signal handler (stop_on_signals), not uvicorn's own.
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]

    # The API appends the audit log, so it signs the log's head: every N events as they
    # come, every interval here, and once more when it stops.
    heads = audit_log(stores)

    def run(stop: threading.Event) -> None:
        def exit_on_stop() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=exit_on_stop, daemon=True).start()
        signing = threading.Thread(target=heads.follow, args=(stop,), daemon=True)
        signing.start()
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


def _stage_stamper(stores: Stores) -> list[tuple[str, Callable[[threading.Event], None]]]:
    """The RFC 3161 stamper, where TSAs are configured (made now, so that a bad CA bundle
    stops the start with one line rather than a stage later)."""
    if not stores.settings.tsa_urls:
        return []
    from storage.timestamping import Stamper

    return [("stamper", Stamper(stores.settings, stores.catalog, stores.blobs).follow)]


def _stage_indexer(stores: Stores) -> Callable[[threading.Event], None]:
    from compliance.alerts import WebhookNotifier
    from indexer.factory import open_search_index
    from indexer.service import Indexer

    def run(stop: threading.Event) -> None:
        index = open_search_index(stores)
        notifier = WebhookNotifier(stores.catalog, stores.settings)
        delivering = threading.Thread(target=notifier.follow, args=(stop,), daemon=True)
        delivering.start()
        try:
            Indexer(stores, index).follow(stop)
        finally:
            delivering.join()
            notifier.close()
            index.close()

    return run


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
    settings = Settings()
    host = host or settings.api_host
    port = port if port is not None else settings.api_port
    if "public_url" not in settings.model_fields_set:  # links in alerts point here
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    with open_stores(settings) as stores:
        console.print("loading the Whisper model…")
        stages = [
            ("api", _stage_api(stores, host, port)),
            ("recorder", _stage_recorder(stores)),
            ("transcriber", _stage_transcriber(stores)),
            ("indexer", _stage_indexer(stores)),
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
            _run_threads(stages)
        finally:
            if shown is not None:
                shown.stop(stores)


def _print_transcripts(stores: Stores) -> Callable[[threading.Event], None]:
    """Show each segment's transcript as it is stored (what the demo is about)."""

    def run(stop: threading.Event) -> None:
        seen: set[int] = set()
        while not stop.wait(1.0):
            for stream in stores.catalog.list_streams():
                for transcript in stores.catalog.transcripts(stream.id):
                    if transcript.id in seen:
                        continue
                    seen.add(transcript.id)
                    if transcript.text.strip():
                        console.print(
                            f"[cyan]{stream.name}[/] segment {transcript.segment_seq}:"
                            f" {transcript.text.strip()}",
                            highlight=False,
                        )

    return run


@commands.command("api")
@clean_errors
def api_command(host: Host = None, port: Port = None) -> None:
    """Run the HTTP API and web page only."""
    with open_cli_stores() as stores:
        host = host or stores.settings.api_host
        port = port if port is not None else stores.settings.api_port
        console.print(f"API on http://{host}:{port}/api/v1/docs")
        _run_threads([("api", _stage_api(stores, host, port))])


@commands.command("recorder")
@clean_errors
def recorder_command(metrics_port: MetricsPort = 0) -> None:
    """Run the recording stage: record every stream the API asked for."""
    with open_cli_stores() as stores:
        _metrics(stores, metrics_port)
        _run_threads([("recorder", _stage_recorder(stores)), *_stage_stamper(stores)])


@commands.command("transcriber")
@clean_errors
def transcriber_command(metrics_port: MetricsPort = 0) -> None:
    """Run the transcription stage: claim segments from the catalog and transcribe them."""
    with open_cli_stores() as stores:
        _metrics(stores, metrics_port)
        _run_threads([("transcriber", _stage_transcriber(stores))])


@commands.command("indexer")
@clean_errors
def indexer_command(metrics_port: MetricsPort = 0) -> None:
    """Run the indexing stage: index new transcripts as they are stored, find banned
    words, and post alerts to the webhooks."""
    with open_cli_stores() as stores:
        _metrics(stores, metrics_port)
        _run_threads([("indexer", _stage_indexer(stores))])
