from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.demo_source import make_test_video
from core.settings import Settings
from storage.stores import Stores, open_stores
from tests.livesource import LiveHlsSource

pytest_plugins = ["tests.s3server"]

LIVEWITNESS = str(Path(sys.executable).parent / "livewitness")


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return Settings().ffmpeg


@pytest.fixture(scope="session")
def test_video(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Path:
    """30 s of H.264/AAC with Mandarin sales talk and a key frame every 2 s."""
    from tests.speech import clip_path

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
    source = LiveHlsSource(ffmpeg, test_video, tmp_path / "hls")
    source.start()
    yield source
    source.stop()


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    # The developer's own LIVEWITNESS_ settings must not leak into a test's process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEWITNESS_")}
    env.update({"LIVEWITNESS_HOME": str(home), "COLUMNS": "200"}, **extra)
    return env


def run_cli(
    home: Path, *args: str, timeout: float = 180, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIVEWITNESS, *args],
        env=cli_env(home, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
