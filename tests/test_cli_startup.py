"""What `livewitness` loads to start: `import cli.main` (every command, `--help`) imports
no heavy module, and `livewitness search` only what searching needs. Never a time: the
modules stand for it (docs/benchmarks.md has the measured start times).

Searching catches the index up by at most SEARCH_CATCH_UP transcripts and says so (the
indexer stage's job is the rest)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cli.transcripts
from core.settings import Settings
from storage.stores import open_stores
from tests.support.cli import cli_env, cli_in_process
from tests.support.searchdata import SHOP, add_stream

# Whisper, the HTTP stack, media helpers and the catalog: seconds to import in all.
NEVER_AT_START = (
    "faster_whisper",
    "ctranslate2",
    "whisper",
    "torch",
    "numpy",
    "uvicorn",
    "fastapi",
    "starlette",
    "httpx",
    "imageio_ffmpeg",
    "jieba",
    "boto3",
    "botocore",
    "cryptography",
    "sqlalchemy",
    "alembic",
    "pypinyin",
    "cn2an",
    "opencc",
    "rich.progress",
)
# What a search never needs (pinyin it does, for sound-alikes; SQLAlchemy only when it
# catches the index up).
NEVER_IN_SEARCH = (
    "faster_whisper",
    "ctranslate2",
    "whisper",
    "torch",
    "uvicorn",
    "fastapi",
    "starlette",
    "httpx",
    "imageio_ffmpeg",
    "jieba",
    "alembic",  # the catalog is at its newest version: no migration to run
    "cn2an",  # no numerals in the query
    "rich.progress",
)

LOADED = """
import json, sys
sys.argv = ["livewitness", *json.loads(sys.argv[1])]
import cli.main
if len(sys.argv) > 1:
    try:
        cli.main.app()
    except SystemExit:
        pass
print("\\nLOADED " + json.dumps(sorted(sys.modules)))
"""


def loaded_modules(home: Path, *args: str) -> set[str]:
    """The modules a fresh interpreter holds after `livewitness ARGS` (none: the import)."""
    result = subprocess.run(
        [sys.executable, "-c", LOADED, json.dumps(list(args))],
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("LOADED "))
    return set(json.loads(line.removeprefix("LOADED ")))


def heavy(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in loaded or any(m.startswith(n + ".") for m in loaded)]


def test_importing_the_command_line_loads_no_heavy_module(tmp_path: Path) -> None:
    loaded = loaded_modules(tmp_path / "home")
    assert "cli.main" in loaded and "cli.serve" in loaded  # every group is registered
    assert heavy(loaded, NEVER_AT_START) == []


def test_a_search_loads_only_what_searching_needs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_stores(Settings(home=home)) as stores:
        add_stream(stores, tmp_path, "shop", SHOP)
    cli_in_process(home, "reindex")  # the catalog made, the index current
    loaded = loaded_modules(home, "search", "包邮")
    assert "indexer.embedded" in loaded and "pypinyin" in loaded  # it did search
    # The index holds every transcript: searched without the catalog's models.
    assert heavy(loaded, (*NEVER_IN_SEARCH, "sqlalchemy", "storage.models")) == []
    found = cli_in_process(home, "search", "包邮", "--json")
    assert [hit["text"] for hit in json.loads(found.stdout)] == ["下单就包邮买一送一"]
    # One transcript more than indexed: the catalog is opened to catch up.
    with open_stores(Settings(home=home)) as stores:
        add_stream(stores, tmp_path, "later", [[(0.5, "今天也包邮")]])
    assert "sqlalchemy" in loaded_modules(home, "search", "包邮")  # and indexes it
    assert len(json.loads(cli_in_process(home, "search", "包邮", "--json").stdout)) == 2


def test_a_search_catches_up_a_bounded_number_of_transcripts_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    talk = [*SHOP, [(0.5, "最后一个保温杯")], [(0.5, "明天同一时间见")]]
    with open_stores(Settings(home=home)) as stores:
        add_stream(stores, tmp_path, "shop", talk)  # five transcripts, none indexed
    monkeypatch.setattr(cli.transcripts, "SEARCH_CATCH_UP", 2)

    def search() -> tuple[list[str], str]:
        result = cli_in_process(home, "search", "保温杯", "--json")
        assert result.exit_code == 0, result.output
        return [hit["text"] for hit in json.loads(result.stdout)], result.stderr

    # Segments 0 and 1 indexed (and 2's documents beside them): 3 is not searchable yet.
    found, said = search()
    assert found == [] and "indexed 2 new transcripts first" in said
    assert "note: 3 more transcripts are not indexed yet" in said
    assert "livewitness indexer" in said and "livewitness reindex" in said
    found, said = search()
    assert found == ["最后一个保温杯"] and "indexed 2 new transcripts first" in said
    assert "note: 1 more transcripts" in said
    found, said = search()
    assert "indexed 1 new transcripts first" in said and "note" not in said
    found, said = search()
    assert found == ["最后一个保温杯"] and said == ""  # nothing to catch up: nothing said
