"""The command line an operator runs, told plainly: a webhook secret's minimum length in
the help, a product list that takes effect on what was already said, the indexer and the
transcriber saying what they do without -v, and `add-stream`/`stop-stream` starting and
stopping a recording on a running service without an HTTP request."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cli.progress_lines import follow_transcripts
from core.settings import Settings
from indexer.factory import open_search_index
from indexer.service import Indexer
from recorder.supervisor import RecordingSupervisor
from storage.stores import Stores, open_stores
from tests.support.apiserver import running_api
from tests.support.cli import cli_in_process
from tests.support.livesource import LiveHlsSource
from tests.support.searchdata import SHOP, add_stream


def test_webhooks_add_says_the_secrets_minimum_length(home: Path) -> None:
    shown = cli_in_process(home, "webhooks", "add", "--help")
    assert "at least 16 characters" in " ".join(shown.stdout.split())
    short = cli_in_process(home, "webhooks", "add", "https://example.com/hook", "--secret", "x" * 8)
    assert short.exit_code == 2
    assert short.stderr.count("\n") == 1 and "at least 16 characters, not 8" in short.stderr


def searched(home: Path, *args: str) -> list[dict[str, Any]]:
    result = cli_in_process(home, "search", *args, "--json")
    assert result.exit_code == 0, result.stderr
    hits: list[dict[str, Any]] = json.loads(result.stdout)
    return hits


def test_products_set_after_an_ingest_takes_effect_without_reindex(
    stores: Stores, tmp_path: Path
) -> None:
    add_stream(stores, tmp_path, "shop", SHOP)  # what an ingest stores, indexed
    index = open_search_index(stores)
    Indexer(stores, index).index_pending()
    index.close()
    home = stores.settings.home
    assert searched(home, "这款", "--product", "羽绒服", "--stream", "shop") == []
    products = tmp_path / "products.yaml"
    products.write_text("- name: 羽绒服\n  sku: YR-1\n", encoding="utf-8")
    done = cli_in_process(home, "products", "set", "--stream", "shop", str(products))
    assert done.exit_code == 0, done.stderr
    assert "re-indexed 3 transcripts of 'shop' with the new products" in done.stdout
    hits = searched(home, "这款", "--product", "羽绒服", "--stream", "shop")
    # The mention itself, and what follows it while the product is in focus.
    assert "今天这款羽绒服只要九十九元" in [h["text"] for h in hits]


def test_the_indexer_says_each_segment_it_indexes(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_stream(stores, tmp_path, "shop", SHOP)
    said: list[str] = []

    def run_stages(targets: list[tuple[str, Any]], _stores: Stores) -> None:
        """`livewitness indexer`'s stages until it has said segment 2 (in place of the
        signal-driven loop, which needs the main thread of a process of its own)."""
        stop = threading.Event()
        (index,) = [target for name, target in targets if name == "indexer"]
        stage = threading.Thread(target=index, args=(stop,), daemon=True)
        stage.start()
        deadline = time.monotonic() + 30
        while "indexed shop segment 2" not in said and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        stage.join(10)

    monkeypatch.setattr("cli.serve._run_threads", run_stages)
    monkeypatch.setattr("cli.serve.console.print", lambda text, **_: said.append(str(text)))
    done = cli_in_process(stores.settings.home, "indexer")
    assert done.exit_code == 0, done.stderr
    assert said == [
        "indexing transcripts as they are stored; Ctrl-C stops",
        *(f"indexed shop segment {n}" for n in range(3)),
    ]


def test_following_transcription_says_each_transcript(stores: Stores, tmp_path: Path) -> None:
    add_stream(stores, tmp_path, "before", SHOP[:1])  # stored before: not news
    lines: list[str] = []
    stop = threading.Event()
    follower = threading.Thread(
        target=follow_transcripts, args=(stores, lines.append, stop, 0.05), daemon=True
    )
    follower.start()
    time.sleep(0.3)
    add_stream(stores, tmp_path, "shop", SHOP)
    deadline = time.monotonic() + 10
    while len(lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    follower.join(5)
    assert lines == [
        "transcribed shop segment 0: 欢迎来到直播间今天这款羽绒服只要九十九元",
        "transcribed shop segment 1: 全网最低价假一赔十七天无理由退货放心买",
        "transcribed shop segment 2: 下单就包邮买一送一这款手镯是纯银的",
    ]


@pytest.mark.slow
def test_add_stream_records_on_the_running_service_and_stop_stream_stops_it(
    home: Path, live_source: LiveHlsSource
) -> None:
    settings = Settings(home=home, segment_seconds=2.0)
    with open_stores(settings) as stores, running_api(stores) as server:
        stop = threading.Event()
        recorder = threading.Thread(
            target=RecordingSupervisor(stores).follow, args=(stop, 0.2), daemon=True
        )
        recorder.start()  # the running service: API and recorder stage, as `serve` runs them
        try:
            added = cli_in_process(
                home, "add-stream", "live", live_source.url, "--streamer", "小王"
            )
            assert added.exit_code == 0, added.stderr
            assert "stream 'live': recording" in added.stdout
            with server.client("admin") as admin:
                state: dict[str, Any] = {}
                deadline = time.time() + 60
                while time.time() < deadline:
                    state = admin.get("/api/v1/streams/live").json()
                    if state["segments"] >= 1 and state["status"] == "recording":
                        break
                    time.sleep(0.3)
                assert state["status"] == "recording" and state["streamer"] == "小王", state
                stopped = cli_in_process(home, "stop-stream", "live")
                assert stopped.exit_code == 0, stopped.stderr
                while time.time() < deadline + 30:
                    state = admin.get("/api/v1/streams/live").json()
                    if state["status"] == "stopped":
                        break
                    time.sleep(0.3)
                assert state["status"] == "stopped" and state["wanted"] is False, state
                actions = [e["action"] for e in admin.get("/api/v1/audit").json()]
                assert {"stream.start", "stream.stop"} <= set(actions)
        finally:
            stop.set()
            recorder.join(60)
    # Bad input is one line, and nothing is started.
    bad = cli_in_process(home, "add-stream", "bad name", "rtmp://127.0.0.1/live")
    assert bad.exit_code == 2 and "invalid stream name" in bad.stderr
    refused = cli_in_process(home, "add-stream", "x", "file:///etc/passwd")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert os.environ.get("LIVEWITNESS_HOME") != str(home)  # the test's own data home only
