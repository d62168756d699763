"""The reviewer web page as served: nothing from outside the server, every label in
Chinese and English, filter choices in step with the claim taxonomy and the lexicon."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from compliance.matcher import load_lexicon
from indexer.claims import load_claim_types
from storage.stores import Stores

PAGE_FILES = (
    "/",
    "/static/app.js",
    "/static/overview.js",
    "/static/cases.js",
    "/static/timeline.js",
    "/static/i18n.js",
    "/static/style.css",
)
SCRIPTS = ("/static/app.js", "/static/overview.js", "/static/cases.js", "/static/timeline.js")
I18N_PREFIX = "window.LW_I18N = "


@pytest.fixture
def client(stores: Stores) -> Iterator[TestClient]:
    from api.app import create_app
    from indexer.factory import open_search_index

    index = open_search_index(stores)
    with TestClient(create_app(stores, index)) as test_client:
        yield test_client
    index.close()


def without_comments(text: str) -> str:
    """The text less HTML, CSS and JS comments and placeholder attributes (examples)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    # A // comment, not the // of a URL (which follows a colon or a quote).
    text = re.sub(r"(?m)(^|[\s;{}(),])//.*$", r"\1", text)
    return re.sub(r'placeholder="[^"]*"', "", text)


def i18n_table(client: TestClient) -> dict[str, dict[str, str]]:
    source = client.get("/static/i18n.js").text
    start = source.index(I18N_PREFIX) + len(I18N_PREFIX)
    table: dict[str, dict[str, str]] = json.loads(source[start:].strip().removesuffix(";"))
    return table


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    local = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(local) == [
        "/static/app.js",
        "/static/cases.js",
        "/static/favicon.svg",
        "/static/i18n.js",
        "/static/overview.js",
        "/static/style.css",
        "/static/timeline.js",
    ]
    for path in PAGE_FILES:
        assert client.get(path).status_code == 200, path
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")


@pytest.mark.parametrize("path", PAGE_FILES)
def test_nothing_is_loaded_from_another_host(client: TestClient, path: str) -> None:
    code = without_comments(client.get(path).text)
    assert not re.findall(r"https?://\S+", code)
    assert not re.findall(r"""(?:src|href)\s*=\s*["']//""", code)  # protocol-relative
    assert "@import" not in code
    assert not re.findall(r"url\(\s*['\"]?(?!data:)[^)]", code)  # no fonts or images to fetch


def test_every_label_has_chinese_and_english(client: TestClient) -> None:
    table = i18n_table(client)
    assert len(table) > 50
    for key, entry in table.items():
        assert set(entry) == {"zh", "en"}, key
        assert entry["zh"].strip() and entry["en"].strip(), key
        # Both languages fill in the same {names}.
        assert set(re.findall(r"\{(\w+)\}", entry["zh"])) == set(
            re.findall(r"\{(\w+)\}", entry["en"])
        ), key


def test_every_key_the_page_uses_is_in_the_table(client: TestClient) -> None:
    table = i18n_table(client)
    html = client.get("/").text
    script = "\n".join(client.get(path).text for path in SCRIPTS)
    used = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', html))
    used |= set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", script))
    assert used, "no labels found"
    assert sorted(used - set(table)) == []


def test_filter_choices_follow_the_claims_and_the_lexicon(
    client: TestClient, stores: Stores
) -> None:
    html = client.get("/").text

    def options(select_id: str) -> set[str]:
        block = re.search(rf'<select id="{select_id}".*?</select>', html, re.DOTALL)
        assert block is not None, select_id
        return set(re.findall(r'<option value="(\w+)"', block.group(0)))

    assert options("f-claim") == {c.name for c in load_claim_types()}
    lexicon = load_lexicon(stores.settings.lexicon_path)
    assert options("f-banned") == set(lexicon.categories)
