"""docs/api.md's curl examples work as written: the read-only ones run with the real curl
against the real server (Chinese queries through --data-urlencode find what was said),
and every other one names a route and method of the schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.factory import open_search_index
from indexer.service import Indexer
from storage.stores import Stores
from tests.support.apiserver import ApiServer, running_api
from tests.support.searchdata import SHOP, add_stream

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def curl_examples() -> list[str]:
    """The curl commands of the doc's "Examples with curl" block, one line each."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Examples with curl") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block
    joined = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


def method_and_path(command: str) -> tuple[str, str]:
    found = re.search(r'"\$LW(/api/v1/[^"?]*)', command)
    assert found, command
    method = "post" if " -d " in command or "-X POST" in command else "get"
    return method, found.group(1)


@pytest.fixture
def served(stores: Stores, tmp_path: Path) -> Iterator[ApiServer]:
    add_stream(stores, tmp_path, "demo", SHOP)
    stream = stores.catalog.get_stream("demo")
    stores.catalog.set_stream_details(stream.id, language="zh", streamer="演示主播")
    index = open_search_index(stores)
    Indexer(stores, index).index_pending()
    index.close()
    with running_api(stores) as server:
        yield server


def test_every_example_names_a_route_of_the_schema(served: ApiServer) -> None:
    with served.client() as client:
        schema = client.get("/api/v1/openapi.json").json()
    examples = curl_examples()
    assert len(examples) >= 8
    assert any("--data-urlencode" in c and re.search(r"[\u4e00-\u9fff]", c) for c in examples)
    for command in examples:
        method, path = method_and_path(command)
        matching = [
            p for p in schema["paths"] if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), path)
        ]
        assert matching, f"{path}: no such route"
        assert method in schema["paths"][matching[0]], f"{method.upper()} {path}"

    # The read-only ones, run as written.
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    env = {"LW": served.url, "KEY": served.keys["reviewer"], "ADMIN": served.keys["admin"]}
    env["PATH"] = "/usr/bin:/bin"
    ran = 0
    for command in curl_examples():
        method, path = method_and_path(command)
        if method != "get" or " -o " in command or path.endswith("/clip"):
            continue  # writes files or needs recorded media: checked against the schema
        done = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        body, _, status = done.stdout.rpartition("\n")
        assert done.returncode == 0 and status == "200", (command, done.stdout, done.stderr)
        answer = json.loads(body)
        if "q=假一赔十" in command:
            assert answer["total"] >= 1
            assert "假一赔十" in answer["hits"][0]["text"]
        ran += 1
    assert ran >= 5
