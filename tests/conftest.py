from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.settings import Settings
from storage.stores import Stores, open_stores

if TYPE_CHECKING:
    from tests.support.livesource import LiveHlsSource
    from tests.support.webhook_receiver import WebhookReceiver

# The shared helpers' asserts report like a test's own. This must run before anything
# imports tests.support, so the fixtures below import from it inside their bodies.
pytest.register_assert_rewrite("tests.support")

pytest_plugins = ["tests.support.s3server"]

# The tests' webhook receivers, TSAs and live sources listen on 127.0.0.1, which the egress
# policy refuses by default: every test process (and each CLI one, tests/support/cli.py)
# allows loopback; the policy's own tests (tests/test_egress.py) pass their own list.
TEST_EGRESS_ALLOW = "127.0.0.0/8,::1"
os.environ["LIVEWITNESS_EGRESS_ALLOW"] = TEST_EGRESS_ALLOW
# OCR (on by default) would queue a job per segment and read frames in every test that
# records; only tests/test_ocr.py, which asks for it, reads on-screen text.
os.environ["LIVEWITNESS_OCR_ENABLED"] = "false"


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return Settings().ffmpeg


@pytest.fixture(scope="session")
def test_video(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Path:
    """30 s of H.264/AAC with Mandarin sales talk and a key frame every 2 s."""
    from tests.support.media import make_test_video
    from tests.support.speech import clip_path

    return make_test_video(
        ffmpeg,
        tmp_path_factory.mktemp("media") / "test.mp4",
        seconds=30,
        audio=clip_path("sales_1"),
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


@pytest.fixture
def stores(settings: Settings) -> Iterator[Stores]:
    opened = open_stores(settings)
    yield opened
    opened.close()


@pytest.fixture
def live_source(ffmpeg: str, test_video: Path, tmp_path: Path) -> Iterator[LiveHlsSource]:
    from tests.support.livesource import LiveHlsSource

    source = LiveHlsSource(ffmpeg, test_video, tmp_path / "hls")
    source.start()
    yield source
    source.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver (a real HTTP server on 127.0.0.1) that keeps what it gets."""
    from tests.support.webhook_receiver import WebhookReceiver

    started = WebhookReceiver()
    started.start()
    yield started
    started.stop()
