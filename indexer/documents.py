"""What is indexed: utterances with their product mentions and claims, built from the
stored transcripts (the system of record), so the index can always be rebuilt.

Utterance ids are deterministic (``stream:segment:number``): replaying a transcript
replaces its documents, never duplicates them. A segment's last words are owned by the
next segment's transcript when it has one (see :mod:`core.transcript`), so a
segment's utterances are built with that cut-off and rebuilt when the next one arrives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from compliance.hits import BANNED_FIELDS
from compliance.matcher import BannedWordMatcher, TermMatch
from core.phonetic import SoundText, sound_tokens
from core.text import compact, fold, search_form
from core.transcript import SegmentTranscript, TranscriptWord, UtteranceWord, utterances_of
from indexer.claims import ClaimType, load_claim_types
from storage.models import Product


def indexed_word(word: UtteranceWord) -> list[str | float]:
    """A word as the index keeps it: [text, offset, end_offset, probability]."""
    return [word.text, word.offset, word.end_offset, word.probability]


@dataclass(frozen=True)
class Mention:
    """A product or claim heard in an utterance, exactly or as a sound-alike."""

    key: str  # product name or claim type
    phrase: str  # the lexicon phrase or product name / alias
    heard: str  # the characters actually transcribed
    match: str  # "exact" | "sound-alike"
    offset: float
    end_offset: float


@dataclass
class UtteranceDoc:
    id: str
    stream: str
    streamer: str | None
    segment: int
    number: int
    text: str
    start: str  # ISO 8601 UTC
    offset: float
    end_offset: float
    words: Sequence[UtteranceWord]
    products: list[Mention] = field(default_factory=list)
    claims: list[Mention] = field(default_factory=list)
    banned: list[dict[str, Any]] = field(default_factory=list)  # filled by compliance
    heard: SoundText | None = field(default=None, repr=False, compare=False)
    search: str | None = field(default=None, repr=False, compare=False)  # search_form(text)

    @property
    def exact_form(self) -> str:
        # The transcriber wrote the search form already; numeral reading is costly.
        if self.search is None:
            self.search = search_form(self.text)
        return compact(self.search)

    @property
    def sounds(self) -> list[str]:
        # Worked out once with the mentions (the costliest step of indexing), else here.
        if self.heard is None:
            self.heard = SoundText.of(self.text)
        return self.heard.sounds

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stream": self.stream,
            "streamer": self.streamer,
            "segment": self.segment,
            "text": self.text,
            "start": self.start,
            "offset": self.offset,
            "end_offset": self.end_offset,
            # Word times as offsets only (the absolute time of each is the utterance's start
            # plus its offset difference), one list per word (indexed_word): ISO strings
            # and keys per word doubled the index and its writing time.
            "words": [indexed_word(w) for w in self.words],
            "products": [m.__dict__ for m in self.products],
            "claims": [m.__dict__ for m in self.claims],
            "banned": self.banned,
        }


def utterance_docs(
    transcript: SegmentTranscript,
    next_from_offset: float | None,
    products: Sequence[Product],
    streamer: str | None = None,
    claim_types: Sequence[ClaimType] | None = None,
    banned_words: BannedWordMatcher | None = None,
    leading: Sequence[TranscriptWord] = (),
) -> list[UtteranceDoc]:
    """The search documents of one transcript: its words before ``next_from_offset``,
    after the ``leading`` words carried over from the previous transcript."""
    words = [*leading] + [
        w for w in transcript.words if next_from_offset is None or w.offset < next_from_offset
    ]
    docs = []
    for number, utterance in enumerate(utterances_of(words)):
        doc = UtteranceDoc(
            id=f"{transcript.stream}:{transcript.segment:08d}:{number:03d}",
            stream=transcript.stream,
            streamer=streamer,
            segment=transcript.segment,
            number=number,
            text=utterance.text,
            start=utterance.start,
            offset=utterance.offset,
            end_offset=utterance.end_offset,
            words=utterance.words,
            search=utterance.search,
        )
        heard = doc.heard = SoundText.of(doc.text)
        doc.products = find_mentions(doc, heard, _product_phrases(products))
        doc.claims = find_mentions(
            doc, heard, [(c.name, p) for c in claim_types or load_claim_types() for p in c.phrases]
        )
        if banned_words is not None:
            doc.banned = [banned_json(doc, hit) for hit in banned_words.find(doc.text, heard)]
        docs.append(doc)
    return docs


def banned_json(doc: UtteranceDoc, hit: TermMatch) -> dict[str, Any]:
    """A banned-word hit as the index and the catalog keep it: with its word times."""
    offset, end_offset = _times(doc, (hit.start, hit.end))
    return {
        **{name: getattr(hit, name) for name in BANNED_FIELDS},
        "offset": offset,
        "end_offset": end_offset,
        "words": [
            indexed_word(w) for w in doc.words if w.end_offset > offset and w.offset < end_offset
        ],
    }


def _product_phrases(products: Sequence[Product]) -> list[tuple[str, str]]:
    phrases = []
    for product in products:
        for phrase in [product.name, *json.loads(product.aliases or "[]")]:
            phrases.append((product.name, phrase))
    return phrases


def find_mentions(
    doc: UtteranceDoc, heard: SoundText, phrases: Iterable[tuple[str, str]]
) -> list[Mention]:
    """Phrases found in the utterance: exactly (folded text) or by their syllables."""
    folded = fold(doc.text)
    found: dict[str, Mention] = {}
    for key, phrase in phrases:
        if key in found and found[key].match == "exact":
            continue
        target, sounds = _phrase_forms(phrase)
        at = folded.find(target)
        if at >= 0:
            span, match = (at, at + len(target)), "exact"
        else:
            if len(sounds) < 2:
                continue  # one syllable alone sounds like too much
            located = heard.find(sounds)
            if located is None:
                continue
            span, match = located, "sound-alike"
        if key in found and match == "sound-alike":
            continue
        start, end = _times(doc, span)
        found[key] = Mention(key, phrase, folded[span[0] : span[1]], match, start, end)
    return list(found.values())


@lru_cache(maxsize=65536)
def _phrase_forms(phrase: str) -> tuple[str, list[str]]:
    """A lexicon phrase folded and as syllables, worked out once, not per utterance."""
    return fold(phrase), sound_tokens(phrase)


def _times(doc: UtteranceDoc, span: tuple[int, int]) -> tuple[float, float]:
    """Offsets of the words that hold a character span of the (folded) utterance text."""
    joined = "".join(fold(w.text) for w in doc.words)
    position = -(len(joined) - len(joined.lstrip()))  # the text is stripped, the words not
    first = last = None
    for word in doc.words:
        length = len(fold(word.text))
        if position + length > span[0] and first is None:
            first = word
        if position < span[1]:
            last = word
        position += length
    first = first or doc.words[0]
    last = last or doc.words[-1]
    return float(first.offset), float(last.end_offset)
