"""Utterances end at sentence ends inside Whisper's long segments, so that a hit's
utterance rarely holds more than one sentence (core/transcript.py split_sentences)."""

from __future__ import annotations

from core.transcript import TranscriptWord, utterances_of


def said(*parts: tuple[str, float], gap: float = 0.05, step: float = 0.25) -> list[TranscriptWord]:
    """Words of one decoder segment: each part's characters ``step`` apart from its start."""
    words = []
    for text, start in parts:
        for i, char in enumerate(text):
            at = start + step * i
            words.append(TranscriptWord(char, "", "", at, at + step - gap, 0.9, 0, False, 0))
    return words


def texts(words: list[TranscriptWord]) -> list[str]:
    return [u.text for u in utterances_of(words)]


def test_a_pause_between_two_sentences_ends_the_first() -> None:
    # 8.2 s in one decoder segment: a price claim, a 0.7 s pause, a shipping promise.
    words = said(("原价三百九今天只要九十九元", 0.0), ("下单包邮全国都包邮", 3.95 + 0.7))
    assert texts(words) == ["原价三百九今天只要九十九元", "下单包邮全国都包邮"]


def test_punctuation_ends_a_sentence_without_a_pause() -> None:
    words = said(("全网最低价。", 0.0), ("假一赔十放心买", 1.5))
    assert texts(words) == ["全网最低价。", "假一赔十放心买"]


def test_word_gaps_and_short_pieces_do_not_split() -> None:
    assert texts(said(("今天这款羽绒服", 0.0), ("只要九十九", 1.75 + 0.3))) == [
        "今天这款羽绒服只要九十九"
    ]
    # A breath after one word leaves a piece under a second: kept with the rest.
    assert texts(said(("好", 0.0), ("家人们看过来", 0.9))) == ["好家人们看过来"]
