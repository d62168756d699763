"""The demo console (`serve --demo`) shows what was said once, whole words only: a word
cut by a segment boundary is shown with the segment that holds it whole, and nothing
shown before a restart is shown again."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from cli.base import console
from cli.serve import _print_transcripts, _print_utterances
from core.settings import Settings
from core.transcript import SegmentTranscript, TranscriptWord
from storage.stores import open_stores
from tests.support.searchdata import T0, add_stream


def transcript(
    segment: int, from_offset: float, words: list[tuple[str, float, int, bool]]
) -> SegmentTranscript:
    return SegmentTranscript(
        version=1,
        stream="shop",
        segment=segment,
        segment_sha256="0" * 64,
        segment_start="2026-11-20T12:00:00.000Z",
        model="test",
        language="zh",
        context_seconds=1.0,
        from_offset=from_offset,
        text="".join(w[0] for w in words if not w[3]),
        search="",
        words=tuple(
            TranscriptWord(text, "", "", at, at + 0.3, 0.9, utterance, context, segment)
            for text, at, utterance, context in words
        ),
    )


def test_a_word_cut_by_the_boundary_is_shown_whole_with_the_next_segment(tmp_path: Path) -> None:
    # Segment 0 heard 选 at its end; segment 1 heard 选择 whole in its context.
    first = transcript(
        0, 0.0, [("今天", 1.0, 0, False), ("我们", 1.4, 0, False), ("选", 9.6, 1, False)]
    )
    second = transcript(1, 9.0, [("选择", 9.6, 0, True), ("这款", 10.4, 0, False)])
    with open_stores(Settings(home=tmp_path / "home")) as stores:
        stream_id = stores.chain.open_stream("shop")
        with console.capture() as captured:
            _print_utterances(stores, stream_id, None, first, second)
            _print_utterances(stores, stream_id, first, second, None)
    assert captured.get().splitlines() == ["shop segment 0: 今天我们", "shop segment 1: 选择这款"]


def test_each_transcript_is_shown_once_and_none_from_before_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = io.StringIO()
    # Its private attribute: the public one reads back as the stream capturing stdout
    # now, which undoing the patch would then pin for every later test.
    monkeypatch.setattr(console, "_file", shown)
    settings = Settings(home=tmp_path / "home", segment_seconds=0.5)  # alone: shown after 1 s
    with open_stores(settings) as stores:
        add_stream(stores, tmp_path, "shop", [[(1.0, "昨天说过的")]], T0)
        stop = threading.Event()
        stage = threading.Thread(target=_print_transcripts(stores), args=(stop,))
        stage.start()
        try:
            add_stream(stores, tmp_path, "live", [[(1.0, "全国包邮")], [(1.0, "假一赔十")]], T0)
            deadline = time.monotonic() + 30
            while "假一赔十" not in shown.getvalue():
                assert time.monotonic() < deadline, shown.getvalue()
                time.sleep(0.2)
            time.sleep(2.5)  # a second showing would come within this
        finally:
            stop.set()
            stage.join(10)
    assert shown.getvalue().splitlines() == ["live segment 0: 全国包邮", "live segment 1: 假一赔十"]
