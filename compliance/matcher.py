"""Banned advertising terms in transcript text: the shipped lexicon and the matcher.

The lexicon (``lexicon.yaml``, versioned, editable, or a user's file in the same format)
lists terms the Advertising Law and the cosmetics and price rules forbid, each with a
category, a severity, the rule it breaks, the phrases around it that are not violations
(``except``: 第一次 for 第一) and other spellings (``aliases``). Phrases in ``whitelist``
are never reported.

:class:`BannedWordMatcher` is built once per lexicon and then finds every term in a text
in two layers, both Aho-Corasick automata (pyahocorasick), so the cost per text grows with
the hits found, not with the number of terms:

- **exact**: the text is folded (:func:`core.text.fold`: Simplified, half width,
  lower case) and compacted (spaces, punctuation and symbols dropped, ``%`` kept), so
  国.家.级, 国 家 级, 國家級 and ＮＯ．１ match 国家级 and no.1. Latin and digit edges of a
  term must sit on a word edge in the text (no.1 is not found in "piano 1").
- **sound-alike**: Whisper often writes a homophone (国家极 for 国家级, 趋斑 for 祛斑), and
  the cosmetics label rules forbid hinting at a term by a homophone. Each toneless,
  blurred syllable (:mod:`core.phonetic`) is one private-use character, and the text's
  syllable string is searched for the terms' syllable strings. Only Chinese terms of two or
  more characters are searched by sound, and not those marked ``sound_alike: false``
  (第一 sounds like 低一, 治疗 like 资料). A sound-alike never reaches across a clause
  break (吊坠，假一赔十 has the syllables of 最佳) nor overlaps a whitelist phrase (吊坠优惠
  sounds like 最优惠 because zh and z are blurred, but 吊坠 is spelled out).

Syllables come from the caller when it has them (the indexer works them out once per
utterance, with polyphones read in context by pypinyin); otherwise they are read per
character from a table built once, an order of magnitude faster than reading in context
(bench/compliance_bench.py measures both). So that both kinds of syllables find a term,
each term is searched under its in-context reading and its per-character one (行业 as
hang ye and as xing ye).

Then, in this order: a hit inside an occurrence of one of its term's ``except`` phrases or
of a whitelist phrase (found the same folded, compacted way) is dropped; for one span an
exact hit beats a sound-alike and a more severe term beats a milder one; and a hit inside
a longer hit is dropped, so 全网最低价 is reported, not also 最低价 and 最低. Hits that
only partly overlap are both reported: each is a claim of its own.

Spans are character offsets in ``fold(text)``, the convention of
:func:`indexer.documents.find_mentions`, so a caller maps them to word times the same way.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, cast, get_args

import ahocorasick  # type: ignore[import-not-found]  # no type stubs (pyahocorasick 2.x)
import yaml
from pypinyin import Style, lazy_pinyin

from core.errors import ConfigError
from core.phonetic import SoundText, Syllable, blur, sound_tokens, syllables
from core.text import fold

LEXICON_FILE = Path(__file__).with_name("lexicon.yaml")

Severity = Literal["low", "medium", "high", "critical"]
MatchKind = Literal["exact", "sound-alike", "fuzzy"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

# Compaction keeps letters, digits and CJK (``\w`` without ``_``) and ``%`` (100% is not 100).
_KEPT_RUN = re.compile(r"(?:[^\W_]|%)+")
_DROPPED = re.compile(r"(?:[^\w%]|_)+")
_ASCII_WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
# The runs core.phonetic.syllables reads: CJK, digit runs, Latin words.
_SOUND_RUN = re.compile(r"(?P<cjk>[\u3400-\u9fff]+)|(?P<digits>\d+)|(?P<latin>[a-z]+)")
_CJK = re.compile(r"[\u3400-\u9fff]+")
# Sound-alikes do not reach across a clause: 吊坠，假一赔十 has the syllables of 最佳.
_CLAUSE_BREAK = re.compile(r"[,，。!！?？;；:：、\n]")
_FIRST_CODE = 0xF0000  # Supplementary Private Use Area-A: never in transcript text
_OTHER = chr(0x10FFFD)  # a syllable no term contains


# -- the lexicon ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LexiconTerm:
    term: str
    category: str
    severity: Severity
    source: str  # a key of Lexicon.sources (the rule the term breaks)
    exceptions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    sound_alike: bool = True


@dataclass(frozen=True)
class Lexicon:
    version: str
    terms: tuple[LexiconTerm, ...]
    whitelist: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def categories(self) -> list[str]:
        return sorted({t.category for t in self.terms})


_TERM_KEYS = {"term", "category", "severity", "source", "except", "aliases", "sound_alike"}
_TOP_KEYS = {"version", "sources", "whitelist", "terms"}


def load_lexicon(path: Path | None = None) -> Lexicon:
    """The shipped lexicon (``path`` None) or a user's; a broken file raises ConfigError
    with one line that names the file and the problem."""
    path = path or LEXICON_FILE
    try:
        stat = path.stat()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the lexicon ({error.strerror})") from None
    return _load(path, stat.st_mtime_ns, stat.st_size)  # an edited file is read again


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int, size: int) -> Lexicon:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the lexicon ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the lexicon is not UTF-8 text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "unreadable"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return _parse(data, path)


def _parse(data: object, path: Path) -> Lexicon:
    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{path}: {problem}")

    if not isinstance(data, dict):
        raise fail("expected a mapping with 'version' and 'terms' at the top")
    if unknown := sorted(set(data) - _TOP_KEYS, key=str):
        raise fail(f"unknown key {unknown[0]!r} at the top (known: {', '.join(sorted(_TOP_KEYS))})")
    version = data.get("version")
    if version is None:
        raise fail("missing 'version' (text such as \"2026.11.1\")")
    if isinstance(version, bool) or not isinstance(version, str | int) or not str(version):
        raise fail(f"'version' must be text such as \"2026.11.1\", not {version!r}")
    sources = data.get("sources") or {}
    if not isinstance(sources, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
    ):
        raise fail("'sources' must map a short key to the text of the rule")
    whitelist = _texts(data.get("whitelist"), "'whitelist'", fail)
    raw_terms = data.get("terms")
    if not isinstance(raw_terms, list) or not raw_terms:
        raise fail("'terms' must be a non-empty list")
    terms = []
    seen: dict[str, str] = {}
    for number, raw in enumerate(raw_terms, start=1):
        term = _term(raw, f"term {number}", sources, fail)
        for form in (term.term, *term.aliases):
            key = _compact(fold(form))
            if key in seen:
                raise fail(f"term {number}: {form!r} is already listed ({seen[key]})")
            seen[key] = f"term {number}"
        terms.append(term)
    return Lexicon(str(version), tuple(terms), whitelist, MappingProxyType(dict(sources)))


def _term(raw: object, where: str, sources: Mapping[str, str], fail: Any) -> LexiconTerm:
    if not isinstance(raw, dict):
        raise fail(f"{where}: expected a mapping such as {{term: 最佳, category: absolute, ...}}")
    name = raw.get("term")
    if not isinstance(name, str) or not name.strip():
        raise fail(f"{where}: missing 'term' (text; quote numbers such as \"100%\")")
    where = f"{where} ({name})"
    if not _compact(fold(name)):
        raise fail(f"{where}: the term has no letters, digits or characters")
    if unknown := sorted(set(raw) - _TERM_KEYS, key=str):
        raise fail(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TERM_KEYS))})")
    for key in ("category", "severity", "source"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise fail(f"{where}: missing '{key}'")
    if raw["severity"] not in SEVERITIES:
        raise fail(
            f"{where}: unknown severity {raw['severity']!r} (one of {', '.join(SEVERITIES)})"
        )
    if sources and raw["source"] not in sources:
        raise fail(f"{where}: source {raw['source']!r} is not a key of 'sources'")
    sound_alike = raw.get("sound_alike", True)
    if not isinstance(sound_alike, bool):
        raise fail(f"{where}: 'sound_alike' must be true or false")
    return LexiconTerm(
        term=name.strip(),
        category=raw["category"].strip(),
        severity=cast(Severity, raw["severity"]),
        source=raw["source"].strip(),
        exceptions=_texts(raw.get("except"), f"{where}: 'except'", fail),
        aliases=_texts(raw.get("aliases"), f"{where}: 'aliases'", fail),
        sound_alike=sound_alike,
    )


def _texts(raw: object, what: str, fail: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
        raise fail(f'{what} must be a list of phrases (quote numbers such as "100%棉")')
    return tuple(t.strip() for t in raw)


def _compact(folded: str) -> str:
    return _DROPPED.sub("", folded)


# -- matching ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TermMatch:
    term: str  # the lexicon term (also when an alias or a sound-alike was heard)
    category: str
    severity: Severity
    source: str
    heard: str  # the characters actually transcribed: fold(text)[start:end]
    match: MatchKind
    start: int  # character span in fold(text), as documents.find_mentions
    end: int


class HasSyllables(Protocol):
    """What holds a text's syllables (core.phonetic.SoundText)."""

    @property
    def syllables(self) -> list[Syllable]: ...


@dataclass(frozen=True)
class _Exact:
    """What one compacted phrase stands for: term forms and/or except/whitelist phrases."""

    length: int
    terms: tuple[int, ...]  # indexes into the lexicon's terms
    guard: bool  # an except or whitelist phrase
    left_edge: bool  # starts with a Latin letter or digit: must start a word in the text
    right_edge: bool


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    term: int
    exact: bool
    fuzzy: bool = False  # a near miss: one syllable's final differs (SoundText.find_fuzzy)


class BannedWordMatcher:
    """Banned terms in a text: exactly, by sound (toneless syllables), and with
    ``fuzzy_min_syllables`` also as near misses of terms that long (one syllable heard
    with another final: 全网最低价 heard as 全网最低就), ranked below sound-alikes."""

    def __init__(
        self, lexicon: Lexicon, fuzzy_min_syllables: int = 0, southern: bool = False
    ) -> None:
        self.lexicon = lexicon
        self._southern = southern
        self._rank = [SEVERITIES.index(t.severity) for t in lexicon.terms]
        whitelist = {_compact(fold(p)) for p in lexicon.whitelist}
        self._guards = [
            frozenset(whitelist | {_compact(fold(p)) for p in t.exceptions}) for t in lexicon.terms
        ]
        exact: dict[str, tuple[list[int], bool]] = {}
        for phrase in whitelist.union(*self._guards):
            exact.setdefault(phrase, ([], True))
        sounds: dict[str, list[int]] = {}
        self._fuzzy: list[tuple[int, list[str]]] = []  # (term, syllables) near misses of
        self._codes: dict[str, str] = {}
        per_char = _char_sounds()
        for index, term in enumerate(lexicon.terms):
            for form in dict.fromkeys((term.term, *term.aliases)):
                key = _compact(fold(form))
                exact.setdefault(key, ([], False))[0].append(index)
                if term.sound_alike and len(key) >= 2 and _CJK.fullmatch(key):
                    for reading in (sound_tokens(key), [per_char[c] for c in key]):
                        pattern = "".join(self._code(s) for s in reading)
                        sounds.setdefault(pattern, []).append(index)
                    if fuzzy_min_syllables and len(key) >= fuzzy_min_syllables:
                        self._fuzzy.append((index, sound_tokens(key)))
        self._exact = ahocorasick.Automaton()
        for key, (terms, guard) in exact.items():
            edges = key[0] in _ASCII_WORD, key[-1] in _ASCII_WORD
            self._exact.add_word(key, _Exact(len(key), tuple(terms), guard, *edges))
        if exact:
            self._exact.make_automaton()  # an automaton without keys cannot search
        self._sounds = ahocorasick.Automaton()
        for pattern, terms in sounds.items():
            self._sounds.add_word(pattern, (len(pattern), tuple(dict.fromkeys(terms))))
        if sounds:
            self._sounds.make_automaton()
        # Per-character syllable codes for str.translate: one C-level pass per text run.
        self._char_codes = {ord(c): self._codes.get(s, _OTHER) for c, s in per_char.items()}

    def _code(self, sound: str) -> str:
        code = self._codes.get(sound)
        if code is None:
            code = self._codes[sound] = chr(_FIRST_CODE + len(self._codes))
        return code

    def find(
        self, text: str, heard: Sequence[Syllable] | HasSyllables | None = None
    ) -> list[TermMatch]:
        """Banned terms in text, in order. ``heard``: the text's syllables
        (:func:`core.phonetic.syllables`) when the caller has them already."""
        folded = fold(text)
        candidates, guards = self._exact_hits(folded)
        if len(self._sounds):
            candidates += self._sound_hits(folded, heard)
        if self._fuzzy:
            candidates += self._fuzzy_hits(folded, heard, {c.term for c in candidates})
        kept = [c for c in candidates if not self._excepted(c, guards)]
        return [self._hit(folded, c) for c in self._resolve(kept)]

    # -- the exact layer -------------------------------------------------------------------
    def _exact_hits(self, folded: str) -> tuple[list[_Candidate], list[tuple[str, int, int]]]:
        compact = _compact(folded)
        candidates: list[_Candidate] = []
        guards: list[tuple[str, int, int]] = []
        to_folded: list[int] | None = None
        if not len(self._exact):
            return candidates, guards
        for last, found in self._exact.iter(compact):
            first = last - found.length + 1
            if to_folded is None:
                to_folded = _positions(folded, compact)
            start, end = to_folded[first], to_folded[last] + 1
            if found.guard:
                guards.append((compact[first : last + 1], start, end))
            if not found.terms:
                continue
            if found.left_edge and start > 0 and folded[start - 1] in _ASCII_WORD:
                continue
            if found.right_edge and end < len(folded) and folded[end] in _ASCII_WORD:
                continue
            candidates.extend(_Candidate(start, end, t, True) for t in found.terms)
        return candidates, guards

    # -- the sound-alike layer -------------------------------------------------------------
    def _sound_hits(
        self, folded: str, heard: Sequence[Syllable] | HasSyllables | None
    ) -> list[_Candidate]:
        if heard is None:
            string, span_of = self._read_sounds(folded)
        else:
            given = heard if isinstance(heard, Sequence) else heard.syllables
            string = "".join([self._codes.get(s.sound, _OTHER) for s in given])

            def span_of(first: int, last: int) -> tuple[int, int]:
                return given[first].start, given[last].end

        candidates: list[_Candidate] = []
        for last, (length, terms) in self._sounds.iter(string):
            start, end = span_of(last - length + 1, last)
            if _CLAUSE_BREAK.search(folded, start, end):
                continue
            candidates.extend(_Candidate(start, end, t, False) for t in terms)
        return candidates

    # -- the near-miss layer ---------------------------------------------------------------
    def _fuzzy_hits(
        self, folded: str, heard: Sequence[Syllable] | HasSyllables | None, found: set[int]
    ) -> list[_Candidate]:
        """Near misses of the long terms not found otherwise. A term of n >= 4 syllables
        with one differing holds its first two or its last two as heard: looked up in the
        joined syllables first (cheap), so find_fuzzy runs for few terms."""
        if heard is None:
            heard = syllables(folded)
        given = list(heard if isinstance(heard, Sequence) else heard.syllables)
        joined = " " + " ".join(s.sound for s in given) + " "
        sound_text: SoundText | None = None
        candidates: list[_Candidate] = []
        for term, sounds in self._fuzzy:
            if term in found:
                continue
            if f" {sounds[0]} {sounds[1]} " not in joined and (
                f" {sounds[-2]} {sounds[-1]} " not in joined
            ):
                continue
            sound_text = sound_text or SoundText(given)
            span = sound_text.find_fuzzy(sounds, self._southern)
            if span is None or _CLAUSE_BREAK.search(folded, span[0], span[1]):
                continue
            candidates.append(_Candidate(span[0], span[1], term, False, fuzzy=True))
            found.add(term)
        return candidates

    def _read_sounds(self, folded: str) -> tuple[str, Callable[[int, int], tuple[int, int]]]:
        """The syllable string of the text read per character, and a function from a run of
        syllables to its character span: as core.phonetic.syllables, polyphones aside."""
        pieces: list[str] = []
        starts: list[int] = []  # first syllable of each piece
        spans: list[tuple[int, int, bool]] = []  # its characters; one syllable each or not
        count = 0
        for run in _SOUND_RUN.finditer(folded):
            if run.lastgroup == "cjk":
                piece = run.group().translate(self._char_codes)
            elif run.lastgroup == "digits":
                piece = "".join(self._codes.get(s, _OTHER) for s in _digit_sounds(run.group()))
            else:
                piece = _OTHER  # a Latin word: no term is searched by sound in Latin
            pieces.append(piece)
            starts.append(count)
            spans.append((run.start(), run.end(), run.lastgroup == "cjk"))
            count += len(piece)

        def span_of(first: int, last: int) -> tuple[int, int]:
            begin, end = _char_span(first, starts, spans), _char_span(last, starts, spans)
            return begin[0], end[1]

        return "".join(pieces), span_of

    # -- deciding what is reported ---------------------------------------------------------
    def _excepted(self, c: _Candidate, guards: list[tuple[str, int, int]]) -> bool:
        """Inside one of the term's except or whitelist phrases; a sound-alike even when it
        only overlaps one (吊坠优惠 sounds like 最优惠, but 吊坠 is spelled out)."""
        allowed = self._guards[c.term]
        if c.exact:
            return any(p in allowed and s <= c.start and c.end <= e for p, s, e in guards)
        return any(p in allowed and s < c.end and c.start < e for p, s, e in guards)

    def _resolve(self, candidates: list[_Candidate]) -> list[_Candidate]:
        best: dict[tuple[int, int], _Candidate] = {}
        for c in candidates:
            held = best.get((c.start, c.end))
            if held is None or self._preference(c) < self._preference(held):
                best[(c.start, c.end)] = c
        kept: list[_Candidate] = []
        for c in sorted(best.values(), key=lambda c: (c.start - c.end, c.start)):
            if not any(k.start <= c.start and c.end <= k.end for k in kept):
                kept.append(c)
        return sorted(kept, key=lambda c: (c.start, c.end))

    def _preference(self, c: _Candidate) -> tuple[bool, bool, int, int]:
        return not c.exact, c.fuzzy, -self._rank[c.term], c.term

    def _hit(self, folded: str, c: _Candidate) -> TermMatch:
        term = self.lexicon.terms[c.term]
        return TermMatch(
            term=term.term,
            category=term.category,
            severity=term.severity,
            source=term.source,
            heard=folded[c.start : c.end],
            match="exact" if c.exact else "fuzzy" if c.fuzzy else "sound-alike",
            start=c.start,
            end=c.end,
        )


def _positions(folded: str, compact: str) -> list[int]:
    """Where each character of the compacted text stands in the folded text."""
    if len(compact) == len(folded):
        return list(range(len(folded)))
    positions: list[int] = []
    for run in _KEPT_RUN.finditer(folded):
        positions.extend(range(run.start(), run.end()))
    return positions


def _char_span(
    syllable: int, starts: list[int], spans: list[tuple[int, int, bool]]
) -> tuple[int, int]:
    piece = bisect_right(starts, syllable) - 1
    start, end, one_each = spans[piece]
    if one_each:
        start += syllable - starts[piece]
        return start, start + 1
    return start, end


@lru_cache(maxsize=1)
def _char_sounds() -> dict[str, str]:
    """Every CJK character's blurred toneless syllable, its most common reading
    (pypinyin reads a list item alone, without phrase context)."""
    chars = [chr(c) for c in range(0x3400, 0xA000)]
    return {c: blur(s) for c, s in zip(chars, lazy_pinyin(chars, style=Style.NORMAL), strict=True)}


@lru_cache(maxsize=4096)
def _digit_sounds(digits: str) -> tuple[str, ...]:
    return tuple(s.sound for s in syllables(digits))


@lru_cache(maxsize=4)
def matcher_for(
    lexicon: Lexicon, fuzzy_min_syllables: int = 0, southern: bool = False
) -> BannedWordMatcher:
    """One matcher per lexicon version in use (building one takes a moment)."""
    return BannedWordMatcher(lexicon, fuzzy_min_syllables, southern)
