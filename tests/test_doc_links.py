"""The README and docs/ link only inside the repository: every relative link names a
file (or folder) of the checkout, and none climbs out of it (to a design kept elsewhere);
a #fragment names a heading of the linked page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return LINK.findall(text)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings (lower case, punctuation dropped)."""
    found = set()
    for heading in re.findall(r"(?m)^#+\s+(.*)$", page.read_text(encoding="utf-8")):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository(page: Path) -> None:
    for link in links(page):
        if re.match(r"[a-z]+:", link):  # https:, mailto: (a public page, not ours)
            continue
        target, _, fragment = link.partition("#")
        resolved = (page.parent / target).resolve() if target else page
        assert resolved.is_relative_to(ROOT), f"{link} leaves the repository"
        assert resolved.exists(), f"{link}: no such file in the repository"
        if fragment and resolved.suffix == ".md":
            assert fragment in anchors(resolved), f"{link}: no such heading"


def test_the_readme_links_the_architecture() -> None:
    assert "docs/architecture.md" in links(ROOT / "README.md")
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for heading in ("Data flow", "Embedded default and scale-out", "Evidence integrity"):
        assert f"## {heading}" in page
    assert "## Time" in page and "## Style" in page
