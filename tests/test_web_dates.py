"""The web page's dates read one way in every language: ISO order (2026-12-02), in the
reviewer's time zone, never 12/02/2026. The page's own formatting functions run in a real
browser (Chromium) under US English and Chinese locales."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

APP_JS = Path(__file__).resolve().parents[1] / "api" / "web" / "app.js"
CHROMIUM = Path("/usr/bin/chromium")


def page_function(name: str) -> str:
    """The source of one of app.js's functions (it ends at the first closing brace at
    its own indentation)."""
    source = APP_JS.read_text(encoding="utf-8")
    found = re.search(rf"(?ms)^( *)function {name}\(.*?^\1\}}$", source)
    assert found, name
    return found.group(0)


def test_the_page_formats_no_date_by_the_locale_alone() -> None:
    source = APP_JS.read_text(encoding="utf-8")
    assert not re.findall(r"toLocale(?:Date)?String|toDateString", source)
    # Every Intl date format goes through formatClock, which assembles ISO order.
    assert source.count("new Intl.DateTimeFormat(") == 1


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not found at /usr/bin/chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.mark.parametrize(
    ("locale", "zone", "expected"),
    [
        ("en-US", "America/New_York", "2026-12-02 07:05:09"),
        ("zh-CN", "Asia/Shanghai", "2026-12-02 20:05:09"),
        ("zh-CN", "Asia/Shanghai", "2026-12-03 00:00:00"),  # midnight is 00, not 24
    ],
)
def test_dates_are_iso_in_the_reviewers_zone(
    browser: Any, locale: str, zone: str, expected: str
) -> None:
    context = browser.new_context(locale=locale, timezone_id=zone)
    try:
        page = context.new_page()
        page.add_script_tag(content=page_function("formatClock") + page_function("formatSize"))
        utc = "2026-12-02T16:00:00Z" if expected.endswith("00:00:00") else "2026-12-02T12:05:09Z"
        shown = page.evaluate(f"formatClock(Date.parse('{utc}'))")
        assert shown == expected
        assert page.evaluate(f"formatClock(Date.parse('{utc}'), false)") == expected[11:]
        assert page.evaluate("formatSize(1234567)") == "1.2 MB"
    finally:
        context.close()
