"""What is indexed: utterances with their product mentions and claims, built from the
stored transcripts (the system of record), so the index can always be rebuilt.

Utterance ids are deterministic (``stream:segment:number``): replaying a transcript
replaces its documents, never duplicates them. A segment's last words are owned by the
next segment's transcript when it has one (see :mod:`core.transcript`), so a
segment's utterances are built with that cut-off and rebuilt when the next one arrives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from compliance.hits import BANNED_FIELDS
from compliance.matcher import BannedWordMatcher, TermMatch
from core.phonetic import SoundText, sound_tokens
from core.text import compact, fold, search_form
from core.transcript import (
    SegmentTranscript,
    TranscriptWord,
    UtteranceWord,
    utterances_of,
    word_span_times,
)
from indexer.claims import ClaimType, claim_rules, load_claim_types
from storage.models import Product


def indexed_word(word: UtteranceWord) -> list[str | float]:
    """A word as the index keeps it: [text, offset, end_offset, probability]."""
    return [word.text, word.offset, word.end_offset, word.probability]


@dataclass(frozen=True)
class Mention:
    """A product or claim heard in an utterance, exactly or as a sound-alike; or a product
    inferred as the one a claim is about (``match`` "inferred", nothing heard)."""

    key: str  # product name or claim type
    phrase: str  # the lexicon phrase or product name / alias
    heard: str  # the characters actually transcribed
    match: str  # "exact" | "sound-alike" | "fuzzy" | "inferred"
    offset: float
    end_offset: float
    product: str | None = None  # a claim's product: named in the sentence, or inferred
    inferred: bool = False  # the claim's product was not named in its sentence


@dataclass(frozen=True)
class FuzzyMatching:
    """Near misses of product names and claim phrases (banned terms: the matcher's own
    setting) of ``settings.fuzzy_mention_min_syllables`` syllables or more."""

    min_syllables: int
    southern: bool = False

    @classmethod
    def of(cls, min_syllables: int, southern: bool) -> FuzzyMatching | None:
        return cls(min_syllables, southern) if min_syllables > 0 else None


@dataclass(frozen=True)
class ProductFocus:
    """The product being presented: the one named last, and where its name ended."""

    product: str
    offset: float


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
    kind: str = "speech"  # one of indexer.protocol.DOC_KINDS (it imports this module)
    # What a chat, screen or card document is besides its text (user, event id, price,
    # action, keyframe, last seen): shown with the hit (indexer/timeline_docs.py).
    detail: dict[str, Any] = field(default_factory=dict)

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
        extra = {} if self.kind == "speech" else {"kind": self.kind, "detail": self.detail}
        return {
            **extra,
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
    focus: ProductFocus | None = None,
    focus_seconds: float = 180.0,
    fuzzy: FuzzyMatching | None = None,
) -> list[UtteranceDoc]:
    """The search documents of one transcript: its words before ``next_from_offset``,
    after the ``leading`` words carried over from the previous transcript. ``focus`` is
    the product named last before them, which a claim that names none is about if it
    was named within ``focus_seconds``."""
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
        doc.products = find_mentions(doc, heard, product_phrases(products), fuzzy=fuzzy)
        doc.claims = find_claims(doc, heard, claim_types, fuzzy)
        focus = _attribute_claims(doc, focus, focus_seconds)
        if banned_words is not None:
            doc.banned = [banned_json(doc, hit) for hit in banned_words.find(doc.text, heard)]
        docs.append(doc)
    return docs


def _attribute_claims(
    doc: UtteranceDoc, focus: ProductFocus | None, focus_seconds: float
) -> ProductFocus | None:
    """Give each claim of ``doc`` its product: the one named in the sentence closest
    before it (else the first named after it), else the product in focus, marked
    inferred and added to the document's products so that a product filter finds the
    claim. Returns the focus after this sentence."""
    named = [m for m in doc.products if m.match != "inferred"]
    if named:
        claims = []
        for claim in doc.claims:
            before = [m for m in named if m.offset <= claim.offset]
            product = max(before, key=lambda m: m.offset) if before else named[0]
            claims.append(replace(claim, product=product.key))
        doc.claims = claims
        last = max(named, key=lambda m: m.end_offset)
        return ProductFocus(last.key, last.end_offset)
    if doc.claims and focus is not None and doc.offset - focus.offset <= focus_seconds:
        doc.claims = [replace(c, product=focus.product, inferred=True) for c in doc.claims]
        start = min(c.offset for c in doc.claims)
        end = max(c.end_offset for c in doc.claims)
        doc.products.append(Mention(focus.product, focus.product, "", "inferred", start, end))
    return focus


def last_named_product(
    transcript: SegmentTranscript,
    products: Sequence[Product],
    fuzzy: FuzzyMatching | None = None,
) -> ProductFocus | None:
    """The product a transcript names last (exactly or as a sound-alike), if any."""
    phrases = product_phrases(products)
    if not phrases:
        return None
    last = None
    for utterance in utterances_of(transcript.words):
        doc = UtteranceDoc(
            id="",
            stream=transcript.stream,
            streamer=None,
            segment=transcript.segment,
            number=0,
            text=utterance.text,
            start=utterance.start,
            offset=utterance.offset,
            end_offset=utterance.end_offset,
            words=utterance.words,
        )
        for mention in find_mentions(doc, SoundText.of(doc.text), phrases, fuzzy=fuzzy):
            if last is None or mention.end_offset >= last.offset:
                last = ProductFocus(mention.key, mention.end_offset)
    return last


def claims_in(
    text: str,
    claim_types: Sequence[ClaimType] | None = None,
    fuzzy: FuzzyMatching | None = None,
) -> list[Mention]:
    """The claims a sentence holds, found as in an utterance (times are 0: no words)."""
    doc = UtteranceDoc(
        id="",
        stream="",
        streamer=None,
        segment=0,
        number=0,
        text=text,
        start="",
        offset=0.0,
        end_offset=0.0,
        words=[UtteranceWord(text, "", "", 0.0, 0.0, 1.0)],
    )
    return find_claims(doc, SoundText.of(text), claim_types, fuzzy)


def find_claims(
    doc: UtteranceDoc,
    heard: SoundText,
    claim_types: Sequence[ClaimType] | None = None,
    fuzzy: FuzzyMatching | None = None,
) -> list[Mention]:
    """The claim phrases found in an utterance that count as claims (indexer/claims.py);
    with ``fuzzy``, long phrases (七天无理由退货) also as near misses, by the same rules."""
    types = tuple(claim_types or load_claim_types())
    phrases = [(c.name, p) for c in types for p in c.phrases]
    return find_mentions(doc, heard, phrases, claim_rules(types).accepts, fuzzy=fuzzy)


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


def product_phrases(products: Sequence[Product]) -> list[tuple[str, str]]:
    phrases = []
    for product in products:
        for phrase in [product.name, *json.loads(product.aliases or "[]")]:
            phrases.append((product.name, phrase))
    return phrases


def find_mentions(
    doc: UtteranceDoc,
    heard: SoundText,
    phrases: Iterable[tuple[str, str]],
    accept: Callable[[str, str, str, tuple[int, int]], bool] | None = None,
    fuzzy: FuzzyMatching | None = None,
) -> list[Mention]:
    """Phrases found in the utterance: exactly (folded text) or by their syllables, and
    with ``fuzzy`` by a near miss (a closed vocabulary: product names, claim phrases);
    with ``accept`` (key, phrase, folded text, span), only where it says the phrase
    counts."""
    folded = fold(doc.text)
    found: dict[str, Mention] = {}
    for key, phrase in phrases:
        if key in found and found[key].match == "exact":
            continue
        target, sounds = _phrase_forms(phrase)
        span = None
        at = folded.find(target)
        while at >= 0:
            if accept is None or accept(key, phrase, folded, (at, at + len(target))):
                span, match = (at, at + len(target)), "exact"
                break
            at = folded.find(target, at + 1)
        if span is None:
            # One syllable alone sounds like too much; a key found by another phrase's
            # sound stays so, but one found only as a near miss may yet be found better.
            if len(sounds) < 2 or (key in found and found[key].match != "fuzzy"):
                continue
            located, match = heard.find(sounds), "sound-alike"
            if (
                located is None
                and key not in found
                and fuzzy is not None
                and len(sounds) >= fuzzy.min_syllables
            ):
                located, match = heard.find_fuzzy(sounds, fuzzy.southern), "fuzzy"
            if located is None or (accept is not None and not accept(key, phrase, folded, located)):
                continue
            span = located
        start, end = _times(doc, span)
        found[key] = Mention(key, phrase, folded[span[0] : span[1]], match, start, end)
    return list(found.values())


@lru_cache(maxsize=65536)
def _phrase_forms(phrase: str) -> tuple[str, list[str]]:
    """A lexicon phrase folded and as syllables, worked out once, not per utterance."""
    return fold(phrase), sound_tokens(phrase)


def _times(doc: UtteranceDoc, span: tuple[int, int]) -> tuple[float, float]:
    """Offsets of the words that hold a character span of the (folded) utterance text."""
    times = word_span_times([(w.text, w.offset, w.end_offset) for w in doc.words], span)
    return times if times is not None else (doc.offset, doc.end_offset)
