"""Stored segment transcripts as records, and the handover rule that joins them.

The handover. Segment N is decoded with the last ``context_seconds`` of segment N-1 in
front of it (when the two are contiguous). Words that start inside N are N's own. Words
that start in the last ``handover_seconds`` of N-1 are stored with N too, marked as
context: N heard them together with what follows, while N-1's own words there were
decoded from cut-off audio. So from N's ``from_offset`` (its start less the handover) on,
N's words are the record and N-1's are dropped: each word is kept once, and a phrase
that crosses the boundary is heard whole (:func:`assemble_words`). Times are absolute,
from the segment's wall-clock anchor; offsets are seconds from the stream's start.

Utterances. A sentence said across the cut is one utterance: the decoder's utterance
ending N-1 runs on into N when N's first words are context and follow without a pause
(:func:`word_runs`). The search index holds it once, with N, whichever transcript is
stored first: N-1's documents end where it begins (:func:`indexed_until`) and N's open
with N-1's words of it (:func:`carried_words`).

Speech chunks. When the recorder cuts speech into chunks at pauses (recorder/speech.py),
each chunk's words are a transcript *part* of the segment being recorded when the chunk
began: part n + 1 for chunk n, ``from_offset`` the chunk's start, no context words (a
chunk ends in a pause, so no phrase crosses it), utterance numbers ``part *
PART_UTTERANCES + n`` so that two chunks' utterances never read as one. Readers order
parts after their segment (:func:`merge_parts` makes one transcript of a segment's).

Early pieces. A clause of a chunk still open is transcribed at once (recorder/speech.py):
a part marked ``provisional``, filed with its chunk's segment and numbered before the
chunk (it was cut first). The chunk's own part starts where the chunk does, so, read in
part order, it replaces the pieces' words (:func:`assemble_words`); until it is stored
the pieces' words stand in for it. Evidence (packages, reports, moments) leaves pieces
out (:func:`records_only`): they are a fast guess, the chunk's words are the record.

On disk a transcript is JSON with short keys (``u`` utterance number, ``ctx`` context,
``p`` probability). Only the ``to_json``/``from_json`` methods here read or write them;
the JSON they write is exactly what has always been stored and shown.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.text import fold, search_form

JOIN_GAP_SECONDS = 0.3  # speech this close across a segment cut is one utterance
# Where an utterance ends inside a decoder segment (split_sentences). Fluent Mandarin
# sales talk leaves < 0.3 s between words (JOIN_GAP_SECONDS); 0.6 s is a clause or
# sentence pause, well above word gaps and Whisper's word-time jitter (~0.1-0.2 s).
SENTENCE_PAUSE_SECONDS = 0.6
MIN_SENTENCE_SECONDS = 1.0  # no shorter pieces: a breath after one word is no sentence
SENTENCE_ENDS = frozenset("。！？!?；;")
PART_UTTERANCES = 1000  # utterance numbers of part n start at n * this


@dataclass(frozen=True, slots=True)
class TranscriptWord:
    """A decoded word as a segment's transcript stores it."""

    text: str
    start: str  # ISO 8601 UTC
    end: str
    offset: float  # seconds from the stream's start
    end_offset: float
    probability: float
    utterance: int  # the decoder's utterance number within its segment
    context: bool  # heard before its segment's start: taken over from the previous one
    segment: int  # the segment whose transcript holds it (the JSON has it once, per body)

    @classmethod
    def from_json(cls, word: Mapping[str, Any], segment: int) -> TranscriptWord:
        return cls(
            text=word["text"],
            start=word["start"],
            end=word["end"],
            offset=word["offset"],
            end_offset=word["end_offset"],
            probability=word["p"],
            utterance=word["u"],
            context=word["ctx"],
            segment=segment,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "offset": self.offset,
            "end_offset": self.end_offset,
            "p": self.probability,
            "u": self.utterance,
            "ctx": self.context,
        }


@dataclass(frozen=True, slots=True)
class SegmentTranscript:
    """The stored transcript of one segment: its own words, and the context words it
    takes over from the previous segment (see the module doc)."""

    version: int
    stream: str
    segment: int
    segment_sha256: str
    segment_start: str  # ISO 8601 UTC
    model: str
    language: str | None
    context_seconds: float  # of the previous segment, decoded in front of this one
    from_offset: float  # the stream offset from which these words are the record
    text: str  # its own words (context left out)
    search: str  # search_form(text)
    words: tuple[TranscriptWord, ...]
    part: int = 0  # 0: the segment decoded whole; n + 1: speech chunk n (module doc)
    chunk_sha256: str | None = None  # of the chunk's audio (a derived WAV blob)
    provisional: bool = False  # an early piece's words: replaced by its chunk's (module doc)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SegmentTranscript:
        segment = body["segment"]
        chunk = body.get("chunk")
        return cls(
            version=body["v"],
            stream=body["stream"],
            segment=segment,
            segment_sha256=body["segment_sha256"],
            segment_start=body["segment_start"],
            model=body["model"],
            language=body["language"],
            context_seconds=body["context_seconds"],
            from_offset=body["from_offset"],
            text=body["text"],
            search=body["search"],
            words=tuple(TranscriptWord.from_json(w, segment) for w in body["words"]),
            part=body.get("part", 0),
            chunk_sha256=None if chunk is None else chunk["sha256"],
            provisional=body.get("provisional", False),
        )

    def to_json(self) -> dict[str, Any]:
        # A part's keys are added only to parts: a whole segment's JSON stays as it was.
        chunk = {} if not self.part else {"part": self.part, "chunk": {"sha256": self.chunk_sha256}}
        early = {"provisional": True} if self.provisional else {}
        return {
            **chunk,
            **early,
            "v": self.version,
            "stream": self.stream,
            "segment": self.segment,
            "segment_sha256": self.segment_sha256,
            "segment_start": self.segment_start,
            "model": self.model,
            "language": self.language,
            "context_seconds": self.context_seconds,
            "from_offset": self.from_offset,
            "text": self.text,
            "search": self.search,
            "words": [w.to_json() for w in self.words],
        }


@dataclass(frozen=True, slots=True)
class UtteranceWord:
    """A word as an utterance shows it: its text, times and probability."""

    text: str
    start: str  # ISO 8601 UTC
    end: str
    offset: float  # seconds from the stream's start
    end_offset: float
    probability: float

    @classmethod
    def of(cls, word: TranscriptWord) -> UtteranceWord:
        return cls(word.text, word.start, word.end, word.offset, word.end_offset, word.probability)

    @classmethod
    def from_json(cls, word: Mapping[str, Any]) -> UtteranceWord:
        return cls(
            text=word["text"],
            start=word["start"],
            end=word["end"],
            offset=word["offset"],
            end_offset=word["end_offset"],
            probability=word["p"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "offset": self.offset,
            "end_offset": self.end_offset,
            "p": self.probability,
        }


@dataclass(frozen=True, slots=True)
class Utterance:
    """A sentence-like unit of the assembled transcript (see :func:`word_runs`)."""

    text: str
    search: str  # search_form(text)
    start: str  # ISO 8601 UTC, of its first word
    end: str  # of its last word
    offset: float
    end_offset: float
    segment: int  # of its first word
    words: tuple[UtteranceWord, ...]

    @classmethod
    def of(cls, words: Sequence[TranscriptWord]) -> Utterance:
        text = "".join(w.text for w in words).strip()
        return cls(
            text=text,
            search=search_form(text),
            start=words[0].start,
            end=words[-1].end,
            offset=words[0].offset,
            end_offset=words[-1].end_offset,
            segment=words[0].segment,
            words=tuple(UtteranceWord.of(w) for w in words),
        )

    @classmethod
    def from_json(cls, utterance: Mapping[str, Any]) -> Utterance:
        return cls(
            text=utterance["text"],
            search=utterance["search"],
            start=utterance["start"],
            end=utterance["end"],
            offset=utterance["offset"],
            end_offset=utterance["end_offset"],
            segment=utterance["segment"],
            words=tuple(UtteranceWord.from_json(w) for w in utterance["words"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "search": self.search,
            "start": self.start,
            "end": self.end,
            "offset": self.offset,
            "end_offset": self.end_offset,
            "segment": self.segment,
            "words": [w.to_json() for w in self.words],
        }


# -- the handover, as the transcriber applies it ---------------------------------------
def handover_start(context_seconds: float, handover_seconds: float) -> float:
    """Seconds into a decoding (the previous segment's context first) from which its
    words are kept: the last ``handover_seconds`` of the context, or all of it if shorter."""
    return context_seconds - min(handover_seconds, context_seconds)


def owned_from(segment_offset: float, handover: float) -> float:
    """A transcript's ``from_offset``: its segment's stream offset, less the ``handover``
    seconds of the previous segment whose words it takes over."""
    return round(segment_offset - handover, 3)


# -- the handover, as readers apply it -------------------------------------------------
def assemble_words(transcripts: Iterable[SegmentTranscript]) -> list[TranscriptWord]:
    """Words of consecutive segment transcripts (in segment and part order), each once,
    in order."""
    out: list[TranscriptWord] = []
    for transcript in sorted(transcripts, key=lambda t: (t.segment, t.part)):
        while out and out[-1].offset >= transcript.from_offset:
            out.pop()
        out.extend(transcript.words)
    return out


def records_only(transcripts: Iterable[SegmentTranscript]) -> list[SegmentTranscript]:
    """The transcripts that are the record: early pieces' provisional words left out."""
    return [t for t in transcripts if not t.provisional]


Span = tuple[float, float]  # stream seconds: first word's onset, last word's end


def piece_spans(
    transcripts: Iterable[SegmentTranscript], fresh: Collection[tuple[int, int]] = ()
) -> tuple[list[Span], dict[int, list[Span]]]:
    """Where early pieces' words are: ``pending``, the pieces no chunk's transcript has
    replaced yet (words there are provisional); and, by segment, the pieces replaced by
    one of the ``fresh`` (segment, part) transcripts (just stored)."""
    parts = sorted(transcripts, key=lambda t: (t.segment, t.part))
    pending: list[Span] = []
    replaced: dict[int, list[Span]] = {}
    for position, piece in enumerate(parts):
        if not piece.provisional or not piece.words:
            continue
        span = (piece.words[0].offset, piece.words[-1].end_offset)
        chunk = next(
            (
                later
                for later in parts[position + 1 :]
                if later.segment == piece.segment
                and not later.provisional
                and later.from_offset <= piece.from_offset
            ),
            None,
        )
        if chunk is None:
            pending.append(span)
        elif (chunk.segment, chunk.part) in fresh:
            replaced.setdefault(piece.segment, []).append(span)
    return pending, replaced


def merge_parts(transcripts: Iterable[SegmentTranscript]) -> dict[int, SegmentTranscript]:
    """One transcript per segment: a segment transcribed as speech chunks has a part per
    chunk, merged here in order (words of later parts after earlier ones'); a segment
    decoded whole is its own transcript."""
    by_segment: dict[int, list[SegmentTranscript]] = {}
    for transcript in sorted(transcripts, key=lambda t: (t.segment, t.part)):
        by_segment.setdefault(transcript.segment, []).append(transcript)
    merged: dict[int, SegmentTranscript] = {}
    for segment, parts in by_segment.items():
        if len(parts) == 1:
            merged[segment] = parts[0]
            continue
        words = assemble_words(parts)
        text = "".join(w.text for w in words if not w.context).strip()
        first = parts[0]
        merged[segment] = SegmentTranscript(
            version=first.version,
            stream=first.stream,
            segment=segment,
            segment_sha256=first.segment_sha256,
            segment_start=first.segment_start,
            model=first.model,
            language=first.language,
            context_seconds=first.context_seconds,
            from_offset=min(p.from_offset for p in parts),
            text=text,
            search=search_form(text),
            words=tuple(words),
            part=first.part,
            chunk_sha256=first.chunk_sha256,
        )
    return merged


def word_runs(words: Sequence[TranscriptWord]) -> list[list[TranscriptWord]]:
    """Runs of words the decoder put in one segment of its output, split again at
    sentence ends (see split_sentences). A run cut by a segment boundary continues when
    the next segment's first words are context (heard before its start) and follow
    without a pause: "…假一赔十7" + "天无理由退货" is one utterance."""
    return [piece for run in _decoder_runs(words) for piece in split_sentences(run)]


def split_sentences(run: list[TranscriptWord]) -> list[list[TranscriptWord]]:
    """A decoder segment cut after sentence-ending punctuation, and at pauses of
    ``SENTENCE_PAUSE_SECONDS``, never leaving a piece shorter than
    ``MIN_SENTENCE_SECONDS``: Whisper's segments run to ~10 s and often hold two
    sentences (a price claim, then a shipping promise), and an utterance's start is
    where its hits' links would otherwise point."""
    pieces: list[list[TranscriptWord]] = [[]]
    for word, following in zip(run, [*run[1:], None], strict=True):
        pieces[-1].append(word)
        if following is None:
            break
        piece = pieces[-1]
        long_enough = word.end_offset - piece[0].offset >= MIN_SENTENCE_SECONDS
        rest_long_enough = run[-1].end_offset - following.offset >= MIN_SENTENCE_SECONDS
        ends = word.text.rstrip()[-1:] in SENTENCE_ENDS
        paused = following.offset - word.end_offset >= SENTENCE_PAUSE_SECONDS
        if long_enough and rest_long_enough and (ends or paused):
            pieces.append([])
    return pieces


def _decoder_runs(words: Sequence[TranscriptWord]) -> list[list[TranscriptWord]]:
    runs: list[list[TranscriptWord]] = []
    for word in words:
        last = runs[-1][-1] if runs else None
        if last is not None and (
            (word.segment, word.utterance) == (last.segment, last.utterance)
            or (
                word.segment != last.segment
                and word.context
                and word.offset - last.end_offset <= JOIN_GAP_SECONDS
            )
        ):
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


def utterances_of(words: Sequence[TranscriptWord]) -> list[Utterance]:
    """Sentence-like units of assembled words (see word_runs)."""
    return [Utterance.of(run) for run in word_runs(words)]


def carried_words(
    previous: SegmentTranscript | None, transcript: SegmentTranscript
) -> list[TranscriptWord]:
    """The last words of ``previous`` (the transcript of the segment before
    ``transcript``'s) that open an utterance running on into ``transcript`` (see
    word_runs): they are indexed once, with ``transcript``'s utterances, so a phrase said
    across the cut is whole."""
    if previous is None or previous.segment != transcript.segment - 1:
        return []
    kept = [w for w in previous.words if w.offset < transcript.from_offset]
    for run in word_runs(kept + list(transcript.words)):
        if run[-1].segment == transcript.segment:
            return [w for w in run if w.segment == previous.segment]
    return []


def indexed_until(
    transcript: SegmentTranscript, following: SegmentTranscript | None
) -> float | None:
    """Where ``transcript``'s own indexed words end: where the next transcript takes over
    (its handover), or earlier, where an utterance it carries over begins."""
    if following is None or following.segment != transcript.segment + 1:
        return None
    carried = carried_words(transcript, following)
    return float(carried[0].offset) if carried else float(following.from_offset)


def word_span_times(
    words: Sequence[tuple[str, float, float]], span: tuple[int, int]
) -> tuple[float, float] | None:
    """Where the words holding a character span of an utterance's folded text begin and
    end (seconds from the stream's start); the text is the words joined and stripped.
    None without words."""
    if not words:
        return None
    joined = "".join(fold(text) for text, _, _ in words)
    position = -(len(joined) - len(joined.lstrip()))  # the text is stripped, the words not
    first = last = None
    for word in words:
        length = len(fold(word[0]))
        if position + length > span[0] and first is None:
            first = word
        if position < span[1]:
            last = word
        position += length
    first = first or words[0]
    last = last or words[-1]
    return float(first[1]), float(last[2])
