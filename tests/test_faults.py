"""Faults and bad input (issue 14): a full disk, a damaged catalog or search index, bad
settings, crashed stages, and work files left behind. Each ends in one readable line (CLI
exit 2) or a JSON 503, never a traceback, and the stages carry on once the fault is gone.

A full disk cannot be made here (mounting a small filesystem needs root), so ENOSPC is
injected at the real write calls: ``os.fsync`` of every blob write (where a full disk
reports a write the page cache had accepted) and ``shutil.copyfile`` of a segment copied
out of the blob store for a clip or an export.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.jobs import TRANSCRIBE_JOB
from core.settings import Settings
from storage.stages import STAGES, StageRegistry, supervise
from storage.stores import Stores, open_stores
from tests.support.apiserver import ApiServer, running_api
from tests.support.cli import cli_in_process, run_cli
from transcriber.protocol import Audio, DecodeOptions, Word

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STREAM = "shop"


class FullDisk:
    """Switchable ENOSPC at one real write call (see the module docstring)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.full = True
        self.refused = 0
        real: Callable[..., Any] = getattr(module, name)

        def write(*args: Any, **kwargs: Any) -> Any:
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, write)


def one_line(text: str) -> str:
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, test_video: Path) -> Iterator[Stores]:
    """30 s of real media ingested as three segments (their transcription jobs queued)."""
    from recorder.recorder import StreamRecorder

    home = tmp_path_factory.mktemp("faults") / "home"
    stores = open_stores(
        Settings(
            home=home,
            stage_restart_initial_seconds=0.05,
            stage_restart_max_seconds=0.2,
            speech_chunks=False,  # a transcription job per segment: three, as counted here
        )
    )
    StreamRecorder(
        stores.settings, stores.chain, STREAM, str(test_video), segment_seconds=10, started_at=T0
    ).run()
    yield stores
    stores.close()


@pytest.fixture(scope="module")
def api(recorded: Stores) -> Iterator[ApiServer]:
    with running_api(recorded) as server:
        yield server


def scratch_left(settings: Settings) -> list[Path]:
    """Everything under the work directory but this process's own (empty) directory."""
    root = settings.scratch_dir
    own = root / f"{socket.gethostname()}-{os.getpid()}"
    return [p for p in root.rglob("*") if p != own] if root.is_dir() else []


# -- a full disk ---------------------------------------------------------------------------
def test_ingest_on_a_full_disk_is_one_line_and_marks_the_stream_failed(
    home: Path, test_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_stores(Settings(home=home)).close()  # the key and catalog exist before the disk fills
    disk = FullDisk(monkeypatch, os, "fsync")
    result = cli_in_process(
        home, "ingest", str(test_video), "--stream", "full", "--started-at", "2026-03-01T12:00:00Z",
        "--no-transcribe",
    )  # fmt: skip
    assert disk.refused
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert "no space left on the device" in line and str(home) in line
    with open_stores(Settings(home=home)) as stores:
        stream = stores.catalog.get_stream("full")
        assert stream.status == "failed"
        assert stream.last_error and "no space left" in stream.last_error


@pytest.mark.parametrize("kind", ["clip", "export"])
def test_clip_and_export_on_a_full_disk_answer_json_503_and_leave_nothing(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    disk = FullDisk(monkeypatch, shutil, "copyfile")  # segments copied out of the blob store
    with api.client("reviewer") as client:
        if kind == "clip":
            response = client.get(f"/api/v1/streams/{STREAM}/clip", params={"offset": 12})
        else:
            body = {
                "stream": STREAM,
                "since": "2026-03-01T12:00:05Z",
                "until": "2026-03-01T12:00:15Z",
            }
            response = client.post("/api/v1/exports", json=body)
    assert disk.refused
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "DiskFullError"
    assert "no space left" in one_line(response.json()["error"])
    assert scratch_left(api.stores.settings) == []
    disk.full = False
    with api.client("reviewer") as client:
        again = client.get(f"/api/v1/streams/{STREAM}/clip", params={"offset": 12})
    assert again.status_code == 200  # space is back: served again


class Silence:
    """A stand-in for Whisper (the seam this test is not about): one word per segment."""

    name = "stand-in"

    def transcribe(self, audio: Audio, options: DecodeOptions) -> list[Word]:
        assert isinstance(audio, np.ndarray)
        return [Word("好", 0.5, 0.7, 0.9, 0)]


def test_the_transcriber_keeps_its_jobs_on_a_full_disk_and_resumes(
    recorded: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transcriber.worker import TranscriptionWorker

    catalog = recorded.catalog
    stream = catalog.get_stream(STREAM)
    assert catalog.backlog(TRANSCRIBE_JOB) == 3
    disk = FullDisk(monkeypatch, os, "fsync")  # storing each transcript's blob
    STAGES.register("transcriber")
    stop = threading.Event()
    worker = TranscriptionWorker(recorded, Silence())
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while disk.refused < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert disk.refused >= 4  # tried, refused, tried again: the worker lives on
        assert thread.is_alive()
        jobs = catalog.jobs(stream.id, TRANSCRIBE_JOB)
        assert all(j.status in ("queued", "running") for j in jobs)  # none given up
        assert all(j.attempts <= 1 for j in jobs)  # the disk's fault is not the job's
        (state,) = [s for s in STAGES.snapshot() if s.name == "transcriber"]
        assert state.last_error and "no space left" in state.last_error
        disk.full = False  # space comes back: the same worker finishes the queue
        while catalog.backlog(TRANSCRIBE_JOB) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert catalog.backlog(TRANSCRIBE_JOB) == 0
        assert [j.status for j in catalog.jobs(stream.id, TRANSCRIBE_JOB)] == ["done"] * 3
    finally:
        stop.set()
        thread.join(10)
        STAGES.forget("transcriber")


# -- supervised stages and /health ---------------------------------------------------------
def test_a_failing_stage_is_restarted_with_backoff_and_counted() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from storage.stages import STAGE_RESTARTS

    registry = StageRegistry()
    registry.register("flaky")
    stop = threading.Event()
    runs: list[float] = []

    def flaky(stop: threading.Event) -> None:
        runs.append(time.monotonic())
        if len(runs) <= 3:
            raise RuntimeError(f"failure {len(runs)}")
        stop.wait()

    before = STAGE_RESTARTS.labels("flaky")._value.get()
    thread = threading.Thread(
        target=supervise,
        args=("flaky", flaky, stop),
        kwargs={"initial_seconds": 0.05, "max_seconds": 0.15, "registry": registry},
    )
    thread.start()
    deadline = time.monotonic() + 10
    while len(runs) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    (state,) = registry.snapshot()
    stop.set()
    thread.join(5)
    assert len(runs) == 4 and state.alive and state.restarts == 3
    assert state.last_error == "RuntimeError: failure 3"
    waits = [b - a for a, b in itertools.pairwise(runs)]
    assert waits[0] >= 0.05 and waits[1] >= 0.1 and waits[2] >= 0.15  # doubling, capped
    assert STAGE_RESTARTS.labels("flaky")._value.get() - before == 3
    exposed = CollectorRegistry()
    exposed.register(registry)
    assert b'livewitness_stage_up{stage="flaky"} 0.0' in generate_latest(exposed)


def test_health_reports_each_stage_and_answers_503_when_one_is_down(api: ApiServer) -> None:
    healthy = httpx.get(f"{api.url}/api/v1/health")
    assert healthy.status_code == 200, healthy.text
    body = healthy.json()
    assert body["status"] == "ok" and body["problems"] == []
    assert body["catalog_ok"] and body["search_index_ok"] and body["free_disk_bytes"] > 0
    assert body["transcription_backlog"] is not None
    STAGES.register("indexer", lambda: 7)
    STAGES.started("indexer")
    STAGES.failed("indexer", "RuntimeError: boom at rtmp://user:hunter22@example.com/live/KEY")
    try:
        down = httpx.get(f"{api.url}/api/v1/health")
        assert down.status_code == 503
        (stage,) = down.json()["stages"]
        assert stage["name"] == "indexer" and not stage["alive"] and stage["backlog"] == 7
        assert "boom" in stage["last_error"] and "hunter22" not in down.text  # unauthenticated
        assert down.json()["status"] == "down"
    finally:
        STAGES.forget("indexer")


def test_health_answers_503_below_the_free_disk_threshold(recorded: Stores) -> None:
    tight = Stores(
        settings=recorded.settings.model_copy(update={"min_free_disk_mb": 2**40}),
        catalog=recorded.catalog,
        blobs=recorded.blobs,
        chain=recorded.chain,
    )
    with running_api(tight) as server:
        response = httpx.get(f"{server.url}/api/v1/health")
    assert response.status_code == 503
    assert "free some space" in " ".join(response.json()["problems"])


# -- damaged catalog and search index ------------------------------------------------------
def overwrite(path: Path, at: int, length: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(at)
        handle.write(b"\xa5" * length)


def damaged_catalog_home(tmp_path: Path, how: str) -> Path:
    home = tmp_path / "home"
    with open_stores(Settings(home=home)) as stores:
        stores.chain.open_stream("x")
    catalog = home / "catalog.sqlite3"
    if how == "header":
        overwrite(catalog, 0, 100)
    else:
        with catalog.open("r+b") as handle:
            handle.truncate(catalog.stat().st_size // 3)
    return home


@pytest.mark.parametrize("how", ["header", "truncated"])
@pytest.mark.parametrize("command", [["streams"], ["keys", "list"], ["search", "好"]])
def test_a_damaged_catalog_is_one_line_naming_it_and_the_way_out(
    tmp_path: Path, how: str, command: list[str]
) -> None:
    home = damaged_catalog_home(tmp_path, how)
    result = cli_in_process(home, *command)
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert str(home / "catalog.sqlite3") in line
    assert "restore it from a backup" in line and "docs/operations.md" in line


def test_serve_with_a_damaged_catalog_exits_with_one_line(tmp_path: Path) -> None:
    home = damaged_catalog_home(tmp_path, "header")
    result = run_cli(home, "serve", "--port", "0", timeout=60)
    assert result.returncode == 2
    assert "catalog" in one_line(result.stderr) and "damaged" in result.stderr


def test_serve_with_a_damaged_search_index_exits_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    open_stores(Settings(home=home)).close()
    index_file = home / "search" / "utterances.sqlite3"
    index_file.parent.mkdir(mode=0o700)
    index_file.write_bytes(b"not an index" * 400)
    result = run_cli(home, "serve", "--port", "0", timeout=120)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert str(index_file) in line and "livewitness reindex" in line


def test_a_damaged_catalog_answers_json_503(tmp_path: Path) -> None:
    stores = open_stores(Settings(home=tmp_path / "home"))
    try:
        with running_api(stores) as server:
            # Closing every connection folds the WAL into the file, whose header is then
            # overwritten: the next connection finds the damage.
            stores.catalog.engine.dispose()
            overwrite(stores.settings.home / "catalog.sqlite3", 0, 100)
            response = server.client("reviewer").get("/api/v1/streams")
        assert response.status_code == 503, response.text
        assert response.json()["type"] == "DamagedFileError"
        assert "restore it from a backup" in one_line(response.json()["error"])
    finally:
        stores.close()


def test_a_damaged_search_index_is_one_line_json_503_and_reindex_mends_it(
    tmp_path: Path,
) -> None:
    from indexer.factory import open_search_index
    from indexer.service import Indexer
    from tests.support.searchdata import SHOP, add_stream

    home = tmp_path / "home"
    index_file = home / "search" / "utterances.sqlite3"
    stores = open_stores(Settings(home=home))
    try:
        add_stream(stores, tmp_path, "shop", SHOP)
        index = open_search_index(stores)
        Indexer(stores, index).index_pending()
        index.close()
        with running_api(stores) as server:
            assert (
                server.client("reviewer")
                .get("/api/v1/search", params={"q": "羽绒服"})
                .json()["total"]
            )
            # Every page after the first (the header and schema) overwritten: the open
            # index reads garbage at its next search.
            with sqlite3.connect(index_file) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            overwrite(index_file, 4096, index_file.stat().st_size - 4096)
            response = server.client("reviewer").get("/api/v1/search", params={"q": "羽绒服"})
            health = httpx.get(f"{server.url}/api/v1/health")
    finally:
        stores.close()
    assert response.status_code == 503, response.text
    assert "livewitness reindex" in one_line(response.json()["error"])
    assert health.status_code == 503 and not health.json()["search_index_ok"]

    result = cli_in_process(home, "search", "羽绒服")
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert str(index_file) in line and "livewitness reindex" in line
    assert cli_in_process(home, "doctor").exit_code == 1

    assert cli_in_process(home, "reindex").exit_code == 0
    found = cli_in_process(home, "search", "羽绒服")
    assert found.exit_code == 0 and "hits" in found.stdout
    assert cli_in_process(home, "doctor").exit_code == 0


# -- livewitness doctor --------------------------------------------------------------------
def test_doctor_passes_a_sound_home_and_fails_a_garbage_page(tmp_path: Path) -> None:
    from tests.support.searchdata import SHOP, add_stream

    home = tmp_path / "home"
    with open_stores(Settings(home=home)) as stores:
        for n in range(8):  # enough rows for pages beyond the schema's
            add_stream(stores, tmp_path, f"s{n}", SHOP)
    sound = cli_in_process(home, "doctor")
    assert sound.exit_code == 0, sound.output
    assert "integrity ok, 8 streams" in sound.stdout and "FAIL" not in sound.stdout

    catalog = home / "catalog.sqlite3"
    page = 4096
    overwrite(catalog, catalog.stat().st_size - 2 * page + 16, page - 32)  # one data page
    damaged = cli_in_process(home, "doctor")
    assert damaged.exit_code == 1
    assert "FAIL catalog" in damaged.stdout and "restore" in damaged.stdout


def test_doctor_fails_a_readable_signing_key(home: Path) -> None:
    open_stores(Settings(home=home)).close()
    key = home / "keys" / "signing.ed25519.pem"
    key.chmod(0o644)
    result = cli_in_process(home, "doctor")
    assert result.exit_code == 1
    assert "FAIL keys" in result.stdout and "chmod 600" in result.stdout


def test_doctor_checks_a_postgresql_catalog_and_hides_its_password(home: Path) -> None:
    from sqlalchemy import make_url

    from tests.support.postgres import POSTGRES_SKIP, POSTGRES_URL_VARIABLE, postgres_schema

    base = os.environ.get(POSTGRES_URL_VARIABLE)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    with postgres_schema(base) as url:
        with open_stores(Settings(home=home, catalog_url=url)) as stores:
            stores.chain.open_stream("shop")
        sound = run_cli(home, "doctor", LIVEWITNESS_CATALOG_URL=url)
        assert sound.returncode == 0, sound.stdout + sound.stderr
        assert "answers, 1 streams" in sound.stdout
        wrong = make_url(url).set(password="not-the-password").render_as_string(False)
        refused = run_cli(home, "doctor", LIVEWITNESS_CATALOG_URL=wrong)
        assert refused.returncode == 1
        assert "FAIL catalog" in refused.stdout and "LIVEWITNESS_CATALOG_URL" in refused.stdout
        assert "not-the-password" not in refused.stdout + refused.stderr


# -- bad settings --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "value"),
    [("LIVEWITNESS_WEBHOOK_MAX_ATTEMPTS", "abc"), ("LIVEWITNESS_SEARCH_BACKEND", "solr")],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    home: Path, variable: str, value: str
) -> None:
    result = run_cli(home, "streams", **{variable: value})
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert f"{variable}='{value}'" in line


# -- work files ----------------------------------------------------------------------------
def test_a_failed_export_leaves_nothing_behind(api: ApiServer) -> None:
    body = {"stream": STREAM, "since": "2026-03-02T12:00:00Z", "until": "2026-03-02T12:00:10Z"}
    with api.client("reviewer") as client:
        response = client.post("/api/v1/exports", json=body)  # nothing recorded then
    assert response.status_code == 400
    assert scratch_left(api.stores.settings) == []


def test_leftovers_of_dead_processes_are_removed_at_start(home: Path) -> None:
    settings = Settings(home=home)
    dead = settings.scratch_dir / f"{socket.gethostname()}-{2**22 + 17}" / "export-x"
    alive = settings.scratch_dir / f"{socket.gethostname()}-1" / "export-y"
    for path in (dead, alive):
        path.mkdir(parents=True)
        (path / "part.zip").write_bytes(b"x" * 1024)
    open_stores(settings).close()
    assert not dead.parent.exists()
    assert (alive / "part.zip").exists()  # pid 1 runs: its work is its own


def test_exports_are_built_under_the_data_home(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[Path] = []
    real = shutil.copyfile

    def spy(src: Any, dst: Any, **kwargs: Any) -> Any:
        seen.append(Path(dst))
        return real(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", spy)
    body = {"stream": STREAM, "since": "2026-03-01T12:00:05Z", "until": "2026-03-01T12:00:15Z"}
    with api.client("reviewer") as client:
        response = client.post("/api/v1/exports", json=body)
    assert response.status_code == 200, response.text
    scratch = api.stores.settings.scratch_dir.resolve()
    assert seen and all(scratch in p.resolve().parents for p in seen)
    deadline = time.monotonic() + 5  # the response's work directory goes once it is sent
    while time.monotonic() < deadline and scratch_left(api.stores.settings):
        time.sleep(0.05)
    assert scratch_left(api.stores.settings) == []
