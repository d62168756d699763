"""Query normalisation and highlighting shared by every SearchIndex backend."""

from __future__ import annotations

import html
from typing import Any

from core.errors import InvalidInputError
from core.phonetic import find_sounds, sound_tokens, syllables
from core.text import compact, fold, search_form
from indexer.protocol import MAX_PAGE_SIZE, MAX_QUERY_CHARS, MAX_RESULT_WINDOW, SearchQuery


def check_query(query: SearchQuery) -> None:
    if len(query.text) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"query is longer than {MAX_QUERY_CHARS} characters")
    if browsing(query):
        pass  # "what was promised about returns": the filter is the question
    elif len(exact_form(query.text)) < 2:
        raise InvalidInputError("query needs at least two letters, digits or characters")
    if not 1 <= query.size <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"page size must be between 1 and {MAX_PAGE_SIZE}")
    if query.page < 1:
        raise InvalidInputError("page numbers start at 1")
    if query.page * query.size > MAX_RESULT_WINDOW:
        raise InvalidInputError(
            f"pages end within the first {MAX_RESULT_WINDOW} hits;"
            " narrow the query with filters or a time range"
        )
    if query.since and query.until and query.since > query.until:
        raise InvalidInputError("the time range ends before it starts")


def browsing(query: SearchQuery) -> bool:
    """A query with no text that lists the mentions of a claim type, a product or a
    banned-word category."""
    return not query.text.strip() and bool(query.claim or query.product or query.banned)


def wanted_mentions(doc: dict[str, Any], query: SearchQuery) -> list[dict[str, Any]]:
    """The mentions of a stored document that the query's filters ask for."""
    wanted = [m for m in doc["claims"] if m["key"] == query.claim] if query.claim else []
    wanted += [m for m in doc["products"] if m["key"] == query.product] if query.product else []
    if query.banned:
        wanted += [b for b in doc.get("banned", []) if b["category"] == query.banned]
    return wanted


def mention_highlight(text: str, heard: list[str]) -> str:
    """The text with the first heard mention inside <mark>…</mark>."""
    folded = fold(text)
    shown = folded if len(folded) != len(text) else text
    for phrase in heard:
        at = folded.find(phrase)
        if at >= 0:
            end = at + len(phrase)
            return (
                f"{html.escape(shown[:at])}<mark>{html.escape(shown[at:end])}</mark>"
                f"{html.escape(shown[end:])}"
            )
    return html.escape(shown)


def exact_form(text: str) -> str:
    return compact(search_form(text))


def bigrams(form: str) -> list[str]:
    """Overlapping character pairs: any run of two or more characters is their phrase."""
    if len(form) < 2:
        return [form] if form else []
    return [form[i : i + 2] for i in range(len(form) - 1)]


def highlight(text: str, query_text: str, match: str) -> str:
    """The text, HTML-escaped, with the matched run inside <mark>…</mark>."""
    folded = fold(text)
    if len(folded) != len(text):
        text = folded  # folding changed the length: show the folded text so spans line up
    span: tuple[int, int] | None = None
    if match == "exact":
        at = folded.find(fold(query_text).strip())
        if at >= 0:
            span = (at, at + len(fold(query_text).strip()))
    if span is None:
        span = find_sounds(syllables(text), sound_tokens(query_text))
    if span is None:
        return html.escape(text)
    a, b = span
    return f"{html.escape(text[:a])}<mark>{html.escape(text[a:b])}</mark>{html.escape(text[b:])}"
