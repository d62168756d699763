"""Join per-segment transcripts into one word stream and its utterances.

Each word is kept once. Around a boundary, the last ``handover`` seconds of segment N-1
come from segment N's decoding (stored there as context words), because N heard them
together with what follows; N-1's own words there were decoded from cut-off audio.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.text import search_form

Document = dict[str, Any]
WordRecord = dict[str, Any]


def assemble_words(documents: Iterable[Document]) -> list[WordRecord]:
    """Words of consecutive segment documents (in segment order), each once, in order."""
    out: list[WordRecord] = []
    for doc in sorted(documents, key=lambda d: d["segment"]):
        while out and out[-1]["offset"] >= doc["from_offset"]:
            out.pop()
        out.extend({**w, "segment": doc["segment"]} for w in doc["words"])
    return out


JOIN_GAP_SECONDS = 0.3  # speech this close across a segment cut is one utterance


def utterance_groups(words: list[WordRecord]) -> list[list[WordRecord]]:
    """Runs of words the decoder put in one segment of its output. A run cut by a segment
    boundary continues when the next segment's first words are context (heard before its
    start) and follow without a pause: "…假一赔十7" + "天无理由退货" is one utterance."""
    groups: list[list[WordRecord]] = []
    for word in words:
        last = groups[-1][-1] if groups else None
        if last is not None and (
            (word["segment"], word["u"]) == (last["segment"], last["u"])
            or (
                word["segment"] != last["segment"]
                and word.get("ctx")
                and word["offset"] - last["end_offset"] <= JOIN_GAP_SECONDS
            )
        ):
            groups[-1].append(word)
        else:
            groups.append([word])
    return groups


def group_utterances(words: list[WordRecord]) -> list[dict[str, Any]]:
    """Sentence-like units (see utterance_groups)."""
    return [_utterance(group) for group in utterance_groups(words)]


def _utterance(words: list[WordRecord]) -> dict[str, Any]:
    text = "".join(w["text"] for w in words).strip()
    return {
        "text": text,
        "search": search_form(text),
        "start": words[0]["start"],
        "end": words[-1]["end"],
        "offset": words[0]["offset"],
        "end_offset": words[-1]["end_offset"],
        "segment": words[0]["segment"],
        "words": [
            {k: w[k] for k in ("text", "start", "end", "offset", "end_offset", "p")} for w in words
        ],
    }
