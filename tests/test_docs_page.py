"""The API's documentation page works offline: the page names only this server's files,
each of them is served, and in a real browser that may reach nothing but the server the
page draws the API's operations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from storage.stores import Stores
from tests.support.apiserver import running_api

DOCS = "/api/v1/docs"
CHROMIUM = Path("/usr/bin/chromium")
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",)}
CONTENT_TYPES[".svg"] = ("image/svg+xml",)


@pytest.fixture
def client(stores: Stores) -> Iterator[TestClient]:
    from api.app import create_app
    from indexer.factory import open_search_index

    index = open_search_index(stores)
    with TestClient(create_app(stores, index)) as test_client:
        yield test_client
    index.close()


def test_the_docs_page_names_only_local_files_and_they_are_served(client: TestClient) -> None:
    page = client.get(DOCS)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not re.findall(r"https?://|//cdn", page.text)
    files = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {Path(f).suffix for f in files} == {".js", ".css", ".svg"}, files
    for url in files:
        assert url.startswith("/") and not url.startswith("//"), url
        served = client.get(url)
        assert served.status_code == 200, url
        assert served.headers["content-type"].startswith(CONTENT_TYPES[Path(url).suffix]), url
        assert len(served.content) > 100, url
    assert "SwaggerUIBundle" in client.get(next(f for f in files if f.endswith(".js"))).text
    assert "url: '/api/v1/openapi.json'" in page.text
    assert client.get("/api/v1/openapi.json").status_code == 200


@pytest.mark.slow
def test_the_docs_page_renders_with_no_internet(stores: Stores) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not found at /usr/bin/chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with running_api(stores) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            refused: list[str] = []

            def only_the_server(route: object, request: object) -> None:
                url: str = request.url  # type: ignore[attr-defined]
                if url.startswith(server.url + "/"):
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    refused.append(url)
                    route.abort()  # type: ignore[attr-defined]

            page.route("**/*", only_the_server)
            page.goto(server.url + DOCS)
            # Drawn from the schema by Swagger UI's script: both came from the server.
            page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
            assert "LiveWitness" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(".opblock-tag-section", timeout=20_000)  # route groups
            assert page.locator(".opblock-tag-section").count() >= 3
            assert not refused
        finally:
            browser.close()
