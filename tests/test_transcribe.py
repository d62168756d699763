"""Transcription end to end: a real Whisper model on real Mandarin speech, through ingest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.jobs import TRANSCRIBE_CHUNK_JOB, TRANSCRIPTION_JOBS
from core.text import to_simplified
from tests.support.cli import run_cli
from tests.support.media import make_test_video
from tests.support.speech import clip, clip_path, normal, similarity

pytestmark = pytest.mark.slow

STARTED = "2026-11-20T20:00:00+08:00"
PRODUCTS = [
    {"name": "羽绒服", "aliases": ["白鸭绒羽绒服"], "sku": "YR-001", "price": 99},
    {"name": "手镯", "aliases": ["纯银手镯"], "sku": "SZ-002", "price": 129},
    {"name": "面霜", "sku": "MS-003", "price": 159},
    {"name": "保温杯", "sku": "BW-004", "price": 39},
]


@pytest.fixture(scope="session")
def speech_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech-home")


@pytest.fixture(scope="session")
def transcribed(
    speech_home: Path, tmp_path_factory: pytest.TempPathFactory, ffmpeg: str
) -> Callable[..., list[dict[str, Any]]]:
    """Ingest a fixture clip as a replay video (once per session) and return utterances."""
    done: dict[str, list[dict[str, Any]]] = {}
    media = tmp_path_factory.mktemp("speech-media")

    def run(name: str, language: str = "zh", products: bool = True) -> list[dict[str, Any]]:
        stream = f"{name}-{language}-{'p' if products else 'np'}"
        if stream not in done:
            info = clip(name)
            video = make_test_video(
                ffmpeg, media / f"{name}.mp4", info["duration_s"], audio=clip_path(name)
            )
            if products:
                product_file = media / "products.json"
                product_file.write_text(json.dumps(PRODUCTS, ensure_ascii=False))
                result = run_cli(
                    speech_home, "products", "set", "--stream", stream, str(product_file)
                )
                assert result.returncode == 0, result.stderr
            result = run_cli(
                speech_home,
                "ingest",
                str(video),
                "--stream",
                stream,
                "--started-at",
                STARTED,
                "--language",
                language,
                timeout=600,
            )
            assert result.returncode == 0, result.stderr
            result = run_cli(speech_home, "transcript", "--stream", stream, "--json")
            assert result.returncode == 0, result.stderr
            done[stream] = json.loads(result.stdout)
        return done[stream]

    return run


def heard_between(utterances: list[dict[str, Any]], start: float, end: float) -> str:
    return "".join(w["text"] for u in utterances for w in u["words"] if start <= w["offset"] < end)


@pytest.mark.parametrize("name", ["sales_1", "sales_2"])
def test_every_mandarin_sentence_is_heard_at_its_time(
    transcribed: Callable[..., list[dict[str, Any]]], name: str
) -> None:
    utterances = transcribed(name)
    assert utterances
    for sentence in clip(name)["sentences"]:
        heard = heard_between(utterances, sentence["onset"] - 0.6, sentence["end"] + 0.3)
        assert similarity(heard, sentence["text"]) >= 0.6, (sentence["text"], heard)
        first = next(
            w["offset"]
            for u in utterances
            for w in u["words"]
            if w["offset"] >= sentence["onset"] - 0.6
        )
        # Placement, not precision (bench/transcribe.py measures that): after a pause,
        # Whisper's first word can start up to ~0.6 s early.
        assert abs(first - sentence["onset"]) <= 0.75, (sentence["text"], first)


def test_times_are_absolute_utc_and_offsets_from_stream_start(
    transcribed: Callable[..., list[dict[str, Any]]],
) -> None:
    from datetime import datetime, timedelta

    utterances = transcribed("sales_1")
    start = datetime.fromisoformat(STARTED)
    for u in utterances:
        for w in u["words"]:
            assert w["start"].endswith("Z")
            absolute = datetime.fromisoformat(w["start"].replace("Z", "+00:00"))
            assert abs(absolute - (start + timedelta(seconds=w["offset"]))) < timedelta(
                milliseconds=2
            )
            assert w["end_offset"] >= w["offset"]


def test_output_is_simplified_and_numbers_have_a_search_form(
    transcribed: Callable[..., list[dict[str, Any]]],
) -> None:
    utterances = transcribed("sales_1")
    text = "".join(u["text"] for u in utterances)
    assert to_simplified(text) == text
    search = "".join(u["search"] for u in utterances)
    # 九十九元 and 一百二十九元 are spoken; the search form has digits either way.
    assert "99" in search and "129" in search


def test_a_phrase_across_a_segment_boundary_is_heard_once_and_whole(
    transcribed: Callable[..., list[dict[str, Any]]], ffmpeg: str, tmp_path: Path
) -> None:
    info = clip("boundary")
    phrase = info["boundary"]
    utterances = transcribed("boundary")
    around = heard_between(utterances, phrase["onset"] - 1.5, phrase["end"] + 1.5)
    target = normal(phrase["phrase"])
    assert target in normal(around), around
    # Exactly once: neither the phrase nor any part of it is doubled across the cut.
    whole = normal("".join(u["text"] for u in utterances))
    assert whole.count(target) == 1, whole
    assert whole.count(target[:3]) == 1 and whole.count(target[-3:]) == 1, whole
    assert abs(onset_of(utterances, target) - phrase["onset"]) <= 0.5


def onset_of(utterances: list[dict[str, Any]], target: str) -> float:
    """Offset of the word in which the (normal form of the) target text begins."""
    text, owners = "", []
    for w in (w for u in utterances for w in u["words"]):
        piece = normal(w["text"])
        text += piece
        owners += [w["offset"]] * len(piece)
    return float(owners[text.index(target)])


@pytest.mark.parametrize("name", ["silence", "music"])
def test_silence_and_music_yield_no_words(
    transcribed: Callable[..., list[dict[str, Any]]], name: str
) -> None:
    assert transcribed(name, products=True) == []


def test_english_speech(transcribed: Callable[..., list[dict[str, Any]]]) -> None:
    utterances = transcribed("sales_en", language="en", products=False)
    for sentence in clip("sales_en")["sentences"]:
        heard = heard_between(utterances, sentence["onset"] - 0.6, sentence["end"] + 0.3)
        assert similarity(heard, sentence["text"]) >= 0.6, (sentence["text"], heard)


def test_transcriber_pool_drains_the_queue_with_two_workers(
    home: Path, ffmpeg: str, tmp_path: Path
) -> None:
    """Workers in one process share the model, take each job once, and record speed."""
    import time

    from core.settings import Settings
    from storage.stores import open_stores
    from transcriber.pool import TranscriberPool

    video = make_test_video(ffmpeg, tmp_path / "s.mp4", 25, audio=clip_path("sales_2"))
    result = run_cli(
        home,
        "ingest",
        str(video),
        "--stream",
        "pool",
        "--started-at",
        STARTED,
        "--no-transcribe",
        "--segment-seconds",
        "6",
    )
    assert result.returncode == 0, result.stderr
    stores = open_stores(Settings(home=home, transcribe_workers=2))
    try:
        stream = stores.catalog.get_stream("pool")
        # The ingest cut its speech into chunks at pauses: one job each, no segment jobs.
        jobs = stores.catalog.jobs(stream.id)
        assert {j.kind for j in jobs if j.kind in TRANSCRIPTION_JOBS} == {TRANSCRIBE_CHUNK_JOB}
        assert len([j for j in jobs if j.kind == TRANSCRIBE_CHUNK_JOB]) >= 4
        pool = TranscriberPool(stores)
        pool.start()
        deadline = time.monotonic() + 300
        while stores.catalog.backlog(*TRANSCRIPTION_JOBS):
            assert time.monotonic() < deadline, "the pool did not drain the queue"
            time.sleep(0.5)
        pool.stop()
        pool.join(30)
        jobs = [j for j in stores.catalog.jobs(stream.id) if j.kind in TRANSCRIPTION_JOBS]
        assert all(j.status == "done" and j.attempts == 1 for j in jobs)
        assert all(j.rtf is not None and j.rtf > 0 for j in jobs)
        assert len({j.worker for j in jobs}) == 2
        assert len(stores.catalog.transcripts(stream.id)) == len(jobs)
    finally:
        stores.close()


def test_openai_whisper_backend(home: Path, ffmpeg: str, tmp_path: Path) -> None:
    from core.settings import Settings

    checkpoint = Settings().openai_whisper_model
    if not checkpoint:
        pytest.skip(
            "openai-whisper backend not tested: no checkpoint can be had offline here;"
            " set LIVEWITNESS_OPENAI_WHISPER_MODEL to a .pt file or cached model name"
        )
    video = make_test_video(ffmpeg, tmp_path / "s.mp4", 26, audio=clip_path("sales_1"))
    env = {
        "LIVEWITNESS_TRANSCRIBER_BACKEND": "openai-whisper",
        "LIVEWITNESS_OPENAI_WHISPER_MODEL": checkpoint,
    }
    result = run_cli(home, "ingest", str(video), "--stream", "ow", "--started-at", STARTED, **env)
    assert result.returncode == 0, result.stderr
    result = run_cli(home, "transcript", "--stream", "ow", "--json", **env)
    utterances = json.loads(result.stdout)
    for sentence in clip("sales_1")["sentences"]:
        heard = heard_between(utterances, sentence["onset"] - 0.6, sentence["end"] + 0.3)
        assert similarity(heard, sentence["text"]) >= 0.5, (sentence["text"], heard)
