"""The shipped, editable taxonomy of claim types (``claims.yaml``), and what makes a
phrase found in a sentence a claim: word boundaries, exceptions, a figure after price
words, no negation before it."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from core.text import fold

if TYPE_CHECKING:
    from jieba import Tokenizer

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")

# A phrase after one of these is said not to hold (不包邮, 不是正品, 没有运费险): the
# characters allowed between them. A lone 不/没 counts only right before the phrase, as
# 不错 / 不用 / 不怕 + a promise are no negations of it.
NEGATORS = {
    "不支持": 2,
    "不包括": 2,
    "不提供": 2,
    "不是": 2,
    "不能": 2,
    "不会": 2,
    "没有": 2,
    "不": 0,
    "没": 0,
    "无": 0,
    "非": 0,
}
# Words that may stand between a negator and the phrase: 不会给你包邮, 没有帮大家包邮,
# and a lone verb whose object the phrase is: 不送赠品, 没带运费险.
_BENEFICIARY = re.compile(r"给(?:你们|你|您|大家|家人们)|帮(?:你们|你|您|大家)|^[送给提带支包]")
NUMBER_REACH = 3  # characters after a number_after phrase within which a figure must come
_FIGURE = re.compile(r"[0-9０-９零〇一二两三四五六七八九十百千万块]")


@dataclass(frozen=True)
class ClaimType:
    name: str
    label: str
    phrases: tuple[str, ...]
    exceptions: tuple[str, ...] = ()
    number_after: tuple[str, ...] = ()


@lru_cache(maxsize=4)
def load_claim_types(path: Path = CLAIMS_FILE) -> tuple[ClaimType, ...]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(
        ClaimType(
            name=name,
            label=str(body["label"]),
            phrases=tuple(map(str, body["phrases"])),
            exceptions=tuple(map(str, body.get("except", []))),
            number_after=tuple(map(str, body.get("number_after", []))),
        )
        for name, body in data["types"].items()
    )


class ClaimRules:
    """Whether a claim phrase found at a span of a folded sentence is a claim."""

    def __init__(self, claim_types: Sequence[ClaimType]) -> None:
        self._by_type = {c.name: c for c in claim_types}
        self._words = sorted({fold(p) for c in claim_types for p in c.phrases if _is_cjk(p)})
        self._phrases = frozenset(self._words)
        self._tokenizer: Tokenizer | None = None
        self._last: tuple[str, frozenset[int]] | None = None
        self._lock = threading.Lock()

    def accepts(self, name: str, phrase: str, folded: str, span: tuple[int, int]) -> bool:
        claim = self._by_type.get(name)
        if claim is None:
            return True
        start, end = span
        heard = folded[start:end]
        if heard != fold(phrase) and heard in self._phrases:
            return False  # a sound-alike that is another claim phrase as said (赠品, not 正品)
        for exception in claim.exceptions:
            target = fold(exception)
            at = folded.find(target, max(0, start - len(target)))
            while 0 <= at <= start:
                if at + len(target) >= end:
                    return False
                at = folded.find(target, at + 1)
        if phrase in claim.number_after and not _FIGURE.search(folded[end : end + NUMBER_REACH]):
            return False
        if _negated(folded, start):
            return False
        return not (_is_cjk(phrase) and not self._on_word_boundaries(folded, start, end))

    def _on_word_boundaries(self, folded: str, start: int, end: int) -> bool:
        """The span starts and ends where the segmenter cuts words: a phrase inside a
        longer word (送 in 送货上门) is no claim."""
        cuts = self._cuts(folded)
        return start in cuts and end in cuts

    def _cuts(self, folded: str) -> frozenset[int]:
        """Where the words of a sentence start and end (the last sentence's, remembered:
        a sentence with several claim phrases is cut once)."""
        with self._lock:
            if self._last is not None and self._last[0] == folded:
                return self._last[1]
            if self._tokenizer is None:
                self._tokenizer = _tokenizer(tuple(self._words))
            cuts, position = {0}, 0
            for word in self._tokenizer.cut(folded, HMM=False):
                position += len(word)
                cuts.add(position)
            self._last = (folded, frozenset(cuts))
            return self._last[1]


@lru_cache(maxsize=4)
def _tokenizer(words: tuple[str, ...]) -> Any:
    """jieba's dictionary (loaded once, ~1 s) with every claim phrase as a word."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    for word in words:
        tokenizer.add_word(word, freq=None)
    return tokenizer


@lru_cache(maxsize=4)
def claim_rules(claim_types: tuple[ClaimType, ...]) -> ClaimRules:
    return ClaimRules(claim_types)


def _negated(folded: str, start: int) -> bool:
    before = folded[max(0, start - 12) : start]
    for negator, reach in NEGATORS.items():
        at = before.rfind(negator)
        if at >= 0 and len(_BENEFICIARY.sub("", before[at + len(negator) :])) <= reach:
            return True
    return False


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)
