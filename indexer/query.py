"""Query normalisation and highlighting shared by every SearchIndex backend."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, Literal

from core.errors import InvalidInputError
from core.phonetic import find_sounds, sound_tokens, syllables
from core.text import compact, fold, search_form
from core.timeutil import iso, parse_iso
from core.transcript import word_span_times
from indexer.protocol import (
    DOC_KINDS,
    MAX_PAGE_SIZE,
    MAX_QUERY_CHARS,
    MAX_RESULT_WINDOW,
    DocKind,
    Hit,
    SearchQuery,
)


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
    if query.kind is not None and query.kind not in DOC_KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(DOC_KINDS)}, not {query.kind!r}")


def doc_kind(doc: dict[str, Any]) -> DocKind:
    """A stored document's kind (documents of earlier releases are all speech)."""
    kind = doc.get("kind", "speech")
    return kind if kind in ("chat", "screen", "card") else "speech"


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


MentionKind = Literal["exact", "sound-alike", "fuzzy", "inferred"]


def mention_kind(mentions: list[dict[str, Any]]) -> MentionKind:
    """How a browsed hit was found: exactly if any of its mentions was, else as a
    sound-alike, else as a near miss (fuzzy), else only as the product a claim is about."""
    kinds = {m["match"] for m in mentions}
    for kind in ("exact", "sound-alike", "fuzzy"):
        if kind in kinds:
            return kind
    return "inferred"


def mention_highlight(text: str, heard: list[str]) -> str:
    """The text with the first heard mention inside <mark>…</mark>."""
    folded = fold(text)
    shown = folded if len(folded) != len(text) else text
    for phrase in heard:
        if not phrase:  # an inferred product: nothing of it was heard here
            continue
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


@lru_cache(maxsize=256)
def _query_forms(query_text: str) -> tuple[str, list[str]]:
    """A query's folded text and sound tokens, made once for all the hits of its page
    (pinyin was a third of a search's time when made again for each hit)."""
    return fold(query_text).strip(), sound_tokens(query_text)


@lru_cache(maxsize=1024)  # a hit's highlight and its match times ask for the same span
def match_span(text: str, query_text: str, match: str) -> tuple[int, int] | None:
    """Where a hit's text holds the query (a span of its folded text): exactly, else by
    its syllables; None when neither is found (a match only the search form holds)."""
    folded = fold(text)
    wanted, sounds = _query_forms(query_text)
    if match == "exact" and wanted:
        at = folded.find(wanted)
        if at >= 0:
            return (at, at + len(wanted))
    return find_sounds(syllables(folded), sounds) if sounds else None


def match_times(doc: dict[str, Any], query: SearchQuery, match: str) -> tuple[float, float]:
    """Where the matched words of a hit begin and end (seconds from the stream's start):
    the query's run of words, or when browsing the mentions it asks for; the utterance's
    own times when no word times are kept."""
    if browsing(query):
        said = [m for m in wanted_mentions(doc, query) if "offset" in m]
        if said:
            return min(m["offset"] for m in said), max(m["end_offset"] for m in said)
    else:
        span = match_span(doc["text"], query.text, match)
        words = [(w[0], w[1], w[2]) for w in doc.get("words", [])]
        times = word_span_times(words, span) if span is not None else None
        if times is not None:
            return times
    return float(doc["offset"]), float(doc["end_offset"])


@dataclass(frozen=True)
class MatchTimes:
    """A hit's matched words: offsets from the stream's start, and as UTC times."""

    offset: float
    end_offset: float
    start: str
    end: str


def hit_match_times(hit: Hit) -> MatchTimes:
    """A hit's matched words' times (the utterance's when its backend gave none)."""
    offset = hit.offset if hit.match_offset is None else hit.match_offset
    end_offset = hit.end_offset if hit.match_end_offset is None else hit.match_end_offset
    anchor = parse_iso(hit.start)
    return MatchTimes(
        offset,
        end_offset,
        iso(anchor + timedelta(seconds=offset - hit.offset)),
        iso(anchor + timedelta(seconds=end_offset - hit.offset)),
    )


def highlight(text: str, query_text: str, match: str) -> str:
    """The text, HTML-escaped, with the matched run inside <mark>…</mark>."""
    folded = fold(text)
    if len(folded) != len(text):
        text = folded  # folding changed the length: show the folded text so spans line up
    span = match_span(text, query_text, match)
    if span is None:
        return html.escape(text)
    a, b = span
    return f"{html.escape(text[:a])}<mark>{html.escape(text[a:b])}</mark>{html.escape(text[b:])}"
