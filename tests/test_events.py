"""Stream events (docs/events.md): taken over HTTP with a connector key, followed from a
WebSocket and a file, imported; once by id; sealed into chained batches (late ones into
later batches); verified byte for byte; packaged with events.jsonl; bad input refused,
counted, and nothing else lost."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.errors import EgressRefusedError, IntegrityError
from core.settings import Settings
from core.timeutil import iso, utc_now
from evidence.package import build_package
from evidence.package_verify import verify_package
from evidence.verify import verify_stream
from recorder.event_feeds import EventFollower, FileFeed, open_feed
from storage.events import EventService
from storage.metrics import metrics_registry, render_metrics
from storage.stores import Stores, open_stores
from tests.support.apiserver import running_api
from tests.support.cli import cli_in_process
from tests.support.moments import record
from tests.support.postgres import POSTGRES_SKIP, POSTGRES_URL_VARIABLE, postgres_schema


def chat(n: int, at: datetime, **extra: object) -> dict[str, object]:
    return {
        "id": f"c{n}",
        "kind": "chat",
        "at": iso(at),
        "text": f"包邮吗 {n}",
        "user": "u7",
        **extra,
    }


def ndjson(events: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in events)


def batch_lines(stores: Stores, name: str) -> list[list[dict[str, object]]]:
    stream = stores.catalog.get_stream(name)
    return [
        [json.loads(line) for line in stores.blobs.get_bytes(b.blob_key).splitlines()]
        for b in stores.catalog.event_batches(stream.id)
    ]


def check(stores: Stores, name: str) -> dict[str, object]:
    settings = stores.settings
    return verify_stream(stores.catalog, stores.blobs, settings.signing_keys_dir, name).to_json()


def test_http_ingestion_needs_the_connector_key_and_is_idempotent(stores: Stores) -> None:
    stores.chain.open_stream("shop")
    now = utc_now()
    events = [
        chat(1, now - timedelta(seconds=40), color="red"),
        {
            "id": "p1",
            "kind": "product_card",
            "at": iso(now - timedelta(seconds=30)),
            "action": "shown",
            "title": "羽绒服",
            "price": "99.00",
            "sku": "A-1",
            "link": "https://shop.example/a1",
        },
        {"id": "o1", "kind": "order", "at": iso(now - timedelta(seconds=20)), "sku": "A-1"},
    ]
    with running_api(stores) as api:
        with api.client("reviewer") as reviewer:
            refused = reviewer.post("/api/v1/streams/shop/events", content=ndjson(events))
            assert refused.status_code == 403
        with api.client("connector") as connector:
            first = connector.post("/api/v1/streams/shop/events", content=ndjson(events))
            assert first.status_code == 200, first.text
            assert first.json()["accepted"] == 3
            again = connector.post("/api/v1/streams/shop/events", json=events)  # JSON array
            assert again.json() | {"problems": []} == {
                "accepted": 0,
                "duplicate": 3,
                "refused": 0,
                "problems": [],
            }
            changed = connector.post(
                "/api/v1/streams/shop/events", json=[{**events[0], "text": "另一句"}]
            ).json()
            assert changed["refused"] == 1 and changed["problems"][0]["reason"] == "conflict"
            for elsewhere in ("/api/v1/streams/shop/events", "/api/v1/streams", "/api/v1/me"):
                assert connector.get(elsewhere).status_code == 403  # least privilege
            unknown = connector.post("/api/v1/streams/nope/events", json=events)
            assert unknown.status_code == 404
            broken = connector.post("/api/v1/streams/shop/events", content=b"[{")
            assert broken.status_code == 400 and "JSON array" in broken.json()["error"]
        with api.client("reviewer") as reviewer:
            read = reviewer.get(
                "/api/v1/streams/shop/events", params={"kind": ["product_card", "chat"]}
            )
            assert read.status_code == 200
            found = read.json()
            assert [e["id"] for e in found] == ["c1", "p1"]
            assert found[0]["raw"] == {"color": "red"} and found[0]["user"] == "u7"
            assert found[1]["price"] == 99.0 and found[1]["action"] == "shown"
            windowed = reviewer.get(
                "/api/v1/streams/shop/events",
                params={"start": iso(now - timedelta(seconds=25)), "end": iso(now)},
            ).json()
            assert [e["id"] for e in windowed] == ["o1"]
    actions = [e.action for e in stores.catalog.audit_events()]
    assert "events.ingest" in actions and "events.read" in actions
    # Sealed (their windows closed) and chained; the stream is not recorded: head signed.
    EventService(stores).seal(stores.catalog.get_stream("shop").id, "shop", final=True)
    report = check(stores, "shop")
    assert report["events"] == 3 and report["signed_head"] == report["entries"] - 1  # type: ignore[operator]


def test_bad_input_is_refused_counted_and_nothing_else_lost(home: Path) -> None:
    settings = Settings(
        home=home, events_rate_per_second=1.0, events_rate_burst=12, events_max_bytes=512
    )
    with open_stores(settings) as stores:
        stream_id = stores.chain.open_stream("flood")
        service = EventService(stores)
        now = utc_now()
        good = [json.dumps(chat(n, now - timedelta(seconds=5))).encode() for n in range(5)]
        bad = {
            "malformed": b'{"id": "x1", "kind": ',
            "too_large": json.dumps(chat(90, now, pad="x" * 600)).encode(),
            "unknown_kind": json.dumps({"id": "x2", "kind": "gift", "at": iso(now)}).encode(),
            "too_old": json.dumps(chat(91, now - timedelta(days=31))).encode(),
            "in_future": json.dumps(chat(92, now + timedelta(hours=1))).encode(),
            "invalid": json.dumps({"id": "x3", "kind": "chat", "at": "yesterday"}).encode(),
        }
        lines = [good[0], *bad.values(), *good[1:]]
        report = service.ingest_lines(stream_id, list(enumerate(lines, start=1)))
        assert report.accepted == 5
        refused = {p.reason: p for p in report.problems}
        assert set(refused) == set(bad)
        for reason, problem in refused.items():
            assert problem.line == 2 + list(bad).index(reason)
            assert problem.error and "\n" not in problem.error
        # A flood: the burst left (12 - 5 good ones) is taken, the rest refused.
        flood = [json.dumps(chat(100 + n, now)).encode() for n in range(20)]
        flooded = service.ingest_lines(stream_id, list(enumerate(flood, start=1)))
        assert flooded.accepted == 7 and flooded.refused == 13
        assert {p.reason for p in flooded.problems} == {"rate_limited"}
        assert len(service.events(stream_id)) == 12
        counted = dict(
            ((reason, n) for _sid, reason, n in stores.catalog.event_refusals()),
        )
        assert counted == {**dict.fromkeys(bad, 1), "rate_limited": 13}
        text = render_metrics(metrics_registry(stores.catalog))[0].decode()
        assert (
            'livewitness_stream_events_refused_total{reason="rate_limited",stream="flood"} 13.0'
            in text
        )
        assert 'livewitness_stream_events_total{stream="flood"} 12.0' in text


@pytest.fixture(params=["sqlite", "postgresql"])
def any_stores(request: pytest.FixtureRequest, home: Path) -> Iterator[Stores]:
    """Stores on SQLite, and on PostgreSQL where LIVEWITNESS_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        with open_stores(Settings(home=home)) as opened:
            yield opened
        return
    base = os.environ.get(POSTGRES_URL_VARIABLE)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    with postgres_schema(base) as url, open_stores(Settings(home=home, catalog_url=url)) as opened:
        yield opened


def test_late_events_go_into_a_later_batch_and_verify_names_a_flipped_byte(
    any_stores: Stores,
) -> None:
    stores = any_stores
    stream_id = stores.chain.open_stream("late")
    service = EventService(stores)
    now = utc_now()
    early = [chat(n, now - timedelta(seconds=60 - n)) for n in range(3)]
    service.ingest_values(stream_id, early)
    first = service.seal(stream_id, "late", now=now)
    assert len(first) == 1
    sealed = stores.catalog.event_batches(stream_id)[0]
    before = stores.blobs.get_bytes(sealed.blob_key)
    # Arrives after its window was sealed: a later batch, its own time, marked late.
    service.ingest_values(stream_id, [chat(9, now - timedelta(seconds=59))])
    assert service.seal(stream_id, "late", now=now + timedelta(seconds=1)) != first
    batches = batch_lines(stores, "late")
    assert [[e["id"] for e in b] for b in batches] == [["c0", "c1", "c2"], ["c9"]]
    assert batches[1][0]["late"] is True and "late" not in batches[0][0]
    assert batches[1][0]["at"] == iso(now - timedelta(seconds=59))
    assert stores.blobs.get_bytes(sealed.blob_key) == before  # never rewritten
    assert [(e.id, e.late) for e in service.events(stream_id)][1:3] == [("c1", False), ("c9", True)]
    assert check(stores, "late")["events"] == 4

    path = stores.settings.blobs_dir / stores.catalog.event_batches(stream_id)[1].blob_key
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as failed:
        check(stores, "late")
    assert failed.value.artifact == stores.catalog.event_batches(stream_id)[1].blob_key
    assert "does not match its SHA-256" in str(failed.value)


@pytest.fixture
def websocket_source() -> Iterator[tuple[str, list[int]]]:
    """A WebSocket server on 127.0.0.1 (websockets' own): the first connection sends
    three events and drops, later ones send two more and stay open."""
    from websockets.sync.server import ServerConnection, serve

    connections: list[int] = []
    now = utc_now()

    def handler(ws: ServerConnection) -> None:
        connections.append(len(connections))
        if len(connections) == 1:
            for n in range(3):
                ws.send(json.dumps(chat(n, now - timedelta(seconds=30 - n))))
            return  # the source drops
        for n in range(3, 5):
            ws.send(json.dumps(chat(n, now - timedelta(seconds=30 - n))))
        ws.send("not json")
        while True:
            try:
                ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                return

    server = serve(handler, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.socket.getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/events", connections
    finally:
        server.shutdown()
        thread.join(5)


def wait_for(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_follow_a_websocket_reconnects_and_notes_the_gap(
    home: Path, websocket_source: tuple[str, list[int]]
) -> None:
    url, connections = websocket_source
    settings = Settings(home=home, reconnect_initial_seconds=0.2)
    with open_stores(settings) as stores:
        stream_id = stores.chain.open_stream("ws")
        service = EventService(stores)
        follower = EventFollower(service, stream_id, "ws", open_feed(url, settings))
        stop = threading.Event()
        runner = threading.Thread(target=follower.run, args=(stop,))
        runner.start()
        try:
            wait_for(lambda: len(service.events(stream_id, kinds=["chat"])) == 5)
            wait_for(lambda: follower.summary.report.refused == 1)
        finally:
            stop.set()
            runner.join(10)
        assert len(connections) >= 2 and follower.summary.gaps == 1
        (gap,) = service.events(stream_id, kinds=["gap"])
        assert gap.until is not None and gap.until >= gap.at and url in (gap.text or "")
        assert follower.summary.report.problems[0].reason == "malformed"
        assert check(stores, "ws")["events"] == 6


def test_follow_a_file_and_import_an_export(home: Path, tmp_path: Path) -> None:
    now = utc_now()
    source = tmp_path / "chat.ndjson"
    source.write_bytes(ndjson([chat(n, now - timedelta(seconds=50 - n)) for n in range(2)]))
    settings = Settings(home=home)
    with open_stores(settings) as stores:
        stream_id = stores.chain.open_stream("tail")
        service = EventService(stores)
        follower = EventFollower(service, stream_id, "tail", FileFeed(source))
        stop = threading.Event()
        runner = threading.Thread(target=follower.run, args=(stop,))
        runner.start()
        try:
            wait_for(lambda: len(service.events(stream_id)) == 2)
            with source.open("ab") as more:  # a line written in two parts
                more.write(json.dumps(chat(7, now)).encode()[:10])
                more.flush()
                time.sleep(0.3)
                more.write(json.dumps(chat(7, now)).encode()[10:] + b"\n")
            wait_for(lambda: len(service.events(stream_id)) == 3)
        finally:
            stop.set()
            runner.join(10)
        assert follower.summary.report.refused == 0
        assert sum(len(b) for b in batch_lines(stores, "tail")) == 3  # all sealed at the end

    export = tmp_path / "export.json"
    export.write_text(json.dumps([chat(n, now - timedelta(hours=2, seconds=-n)) for n in range(4)]))
    done = cli_in_process(home, "events", "import", str(export), "--stream", "shop")
    assert done.exit_code == 0, done.output
    assert "4 accepted, 0 duplicate, 0 refused" in done.output
    again = cli_in_process(home, "events", "import", str(export), "--stream", "shop")
    assert "0 accepted, 4 duplicate" in again.output
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b'{"id": "z", "kind": "chat"}\n')
    refused = cli_in_process(home, "events", "import", str(bad), "--stream", "shop")
    assert refused.exit_code == 1 and "line 1: refused (invalid)" in refused.output
    listed = cli_in_process(home, "events", "list", "--stream", "shop", "--kind", "chat")
    assert listed.exit_code == 0 and len(listed.output.strip().splitlines()) == 4


def test_the_package_holds_the_events_and_its_readme_checks_them(
    stores: Stores, test_video: Path, tmp_path: Path
) -> None:
    started = utc_now() - timedelta(minutes=10)
    segments = record(stores, test_video, "pkg", started_at=started)
    stream_id = stores.catalog.get_stream("pkg").id
    service = EventService(stores)
    inside = [chat(n, started + timedelta(seconds=5 + n)) for n in range(3)]
    outside = [chat(9, started + timedelta(seconds=25))]
    service.ingest_values(stream_id, [*inside, *outside])
    service.seal(stream_id, "pkg")
    service.ingest_values(stream_id, [chat(5, started + timedelta(seconds=8))])  # late
    service.seal(stream_id, "pkg", final=True)
    until = started + timedelta(seconds=12)
    assert segments[0].starts_at <= started + timedelta(seconds=5)
    info = build_package(stores, "pkg", started + timedelta(seconds=4), until, tmp_path / "p.zip")
    with zipfile.ZipFile(info.path) as archive:
        names = archive.namelist()
        listing = archive.read("events.jsonl").decode().splitlines()
        readme = archive.read("README.txt").decode()
        archive.extractall(tmp_path / "unzipped")
    assert [json.loads(line)["id"] for line in listing] == ["c0", "c1", "c2", "c5"]
    assert json.loads(listing[-1])["late"] is True
    batches = [n for n in names if n.startswith("events/")]
    assert len(batches) == 2  # the first batch and the late one
    report = verify_package(info.path, stores.chain.signer.public_key)
    assert report.events == 4
    assert "events.jsonl" in readme and all(b in readme for b in batches)
    # The README's own commands for the events, run as written.
    commands = [
        line.split("$ ", 1)[1]
        for line in readme.splitlines()
        if line.strip().startswith("$ ") and ("events" in line)
    ]
    assert len(commands) == 2
    for command in commands:
        shell = subprocess.run(
            ["sh", "-c", command],
            cwd=tmp_path / "unzipped",
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        assert shell.stdout.strip().endswith("OK"), (command, shell.stdout, shell.stderr)
    # A line changed in events.jsonl (and re-signed by the key holder) is still caught.
    forged = tmp_path / "unzipped" / "events.jsonl"
    forged.write_text(forged.read_text().replace("包邮吗 1", "包邮吗 X"))
    shell = subprocess.run(
        ["sh", "-c", commands[1]], cwd=tmp_path / "unzipped", capture_output=True, text=True
    )
    assert "events OK" not in shell.stdout and "包邮吗 X" in shell.stdout


def test_follow_an_http_ndjson_stream_through_the_egress_policy(home: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = ndjson([chat(n, utc_now() - timedelta(seconds=20)) for n in range(3)])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            self.wfile.write(body)  # then the stream ends: a drop, reconnected

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/chat"
    try:
        with open_stores(Settings(home=home, reconnect_initial_seconds=0.1)) as stores:
            stream_id = stores.chain.open_stream("http")
            service = EventService(stores)
            follower = EventFollower(service, stream_id, "http", open_feed(url, stores.settings))
            stop = threading.Event()
            runner = threading.Thread(target=follower.run, args=(stop,))
            runner.start()
            try:  # the same lines again after the reconnect: duplicates, nothing twice
                wait_for(lambda: follower.summary.report.duplicate >= 3)
            finally:
                stop.set()
                runner.join(10)
            assert len(service.events(stream_id, kinds=["chat"])) == 3
            refused = Settings(home=home, egress_allow=[])  # loopback is not allowed by default
            with pytest.raises(EgressRefusedError):
                open_feed(url, refused)
    finally:
        server.shutdown()


def test_the_api_sealer_seals_windows_as_they_close(home: Path) -> None:
    settings = Settings(home=home, events_batch_seconds=0.5, events_seal_delay_seconds=0.1)
    with open_stores(settings) as stores:
        stream_id = stores.chain.open_stream("live")
        service = EventService(stores)
        service.ingest_values(stream_id, [chat(1, utc_now())])
        assert service.seal(stream_id, "live") == []  # its window is still open
        stop = threading.Event()
        sealer = threading.Thread(target=service.follow, args=(stop, 0.05))
        sealer.start()
        try:
            wait_for(lambda: service.events(stream_id)[0].batch is not None, 5)
        finally:
            stop.set()
            sealer.join(5)
        assert check(stores, "live")["events"] == 1
