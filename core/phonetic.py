"""Toneless pinyin of transcript text, for sound-alike search.

Whisper often writes a homophone (假一陪时 for 假一赔十, 包油 for 包邮, 与荣福 for 羽绒服):
the characters differ, the syllables do not. Every CJK character becomes its toneless
pinyin syllable (pypinyin, read in context for polyphones), a run of digits is read out
as Chinese numerals first (99 → 九十九 → jiu shi jiu), and Latin words stay words. The
retroflex initials and the -ng finals that Mandarin speakers and Whisper often blur are
folded (zh→z, ch→c, sh→s, ing→in, eng→en). Each token keeps the span of the characters
it came from, so a match can be highlighted in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

from core.text import fold

_RUN = re.compile(r"(?P<cjk>[\u3400-\u9fff]+)|(?P<digits>\d+)|(?P<latin>[a-z]+)")


@dataclass(frozen=True)
class Syllable:
    sound: str
    start: int  # span in the folded text
    end: int


def blur(syllable: str) -> str:
    for retroflex, plain in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if syllable.startswith(retroflex):
            syllable = plain + syllable[2:]
            break
    if syllable.endswith(("ing", "eng")):
        syllable = syllable[:-1]
    return syllable


@lru_cache(maxsize=256)  # a hit's text is read twice: its highlight and its words' times
def syllables(text: str) -> list[Syllable]:
    """The text's syllables (a cached list: read it, do not change it)."""
    folded = fold(text)
    out: list[Syllable] = []
    for match in _RUN.finditer(folded):
        start, end = match.span()
        if match.group("cjk"):
            sounds = lazy_pinyin(match.group("cjk"), style=Style.NORMAL)
            out.extend(Syllable(blur(s), start + i, start + i + 1) for i, s in enumerate(sounds))
        elif match.group("digits"):
            import cn2an  # only for digits: a quarter of a second to import

            try:
                spoken = str(cn2an.an2cn(match.group("digits")))
            except (ValueError, KeyError):
                spoken = match.group("digits")
            out.extend(
                Syllable(blur(s), start, end) for s in lazy_pinyin(spoken, style=Style.NORMAL)
            )
        else:
            out.append(Syllable(match.group("latin"), start, end))
    return out


# Initials of blurred toneless pinyin (zh ch sh are folded to z c s already).
INITIALS = frozenset("bpmfdtnlgkhjqxrzcsyw")
# Southern Mandarin's common mergers, for SoundText.find_fuzzy(southern=True).
_SOUTHERN_INITIALS = {"l": "n", "h": "f"}


def split_syllable(sound: str, southern: bool = False) -> tuple[str, str]:
    """A blurred syllable's initial and final; a bare final or a Latin word has no
    initial and so is never a near miss."""
    if not sound.isascii() or not sound.isalpha() or len(sound) > 6:
        return "", sound
    initial = sound[0] if sound[0] in INITIALS and len(sound) > 1 else ""
    final = sound[len(initial) :]
    if southern:
        initial = _SOUTHERN_INITIALS.get(initial, initial)
        if final.endswith("ang"):
            final = final[:-1]  # ang -> an (eng and ing are blurred already)
    return initial, final


def sound_tokens(text: str) -> list[str]:
    return [s.sound for s in syllables(text)]


def find_sounds(haystack: list[Syllable], needle: list[str]) -> tuple[int, int] | None:
    """Character span (in the folded text) of the first run of syllables equal to needle."""
    return SoundText(haystack).find(needle)


class SoundText:
    """A text's syllables joined into one string once, so that looking up many phrases
    (every product and claim phrase, for each utterance) is a substring search each."""

    __slots__ = ("_index_at", "_joined", "syllables")

    def __init__(self, heard: list[Syllable]) -> None:
        self.syllables = heard
        self._index_at: dict[int, int] = {}
        position = 0
        for i, syllable in enumerate(heard):
            self._index_at[position] = i  # where the space before syllable i is
            position += len(syllable.sound) + 1
        self._joined = " " + " ".join(s.sound for s in heard) + " "

    @classmethod
    def of(cls, text: str) -> SoundText:
        return cls(syllables(text))

    @property
    def sounds(self) -> list[str]:
        return [s.sound for s in self.syllables]

    def find_fuzzy(self, needle: list[str], southern: bool = False) -> tuple[int, int] | None:
        """The first run of syllables that is ``needle`` but for one syllable with the
        same initial and another final (面收/面烧 for 面霜: mian shou / shao, shuang),
        for a closed vocabulary (product names) of two syllables or more; with
        ``southern``, also n/l, f/h and an/ang taken as the same (en/eng and in/ing are
        blurred for every search)."""
        if len(needle) < 2:
            return None
        wanted = [split_syllable(s, southern) for s in needle]
        heard = [split_syllable(s.sound, southern) for s in self.syllables]
        for first in range(len(heard) - len(wanted) + 1):
            differing = 0
            for (initial, final), (want_initial, want_final) in zip(
                heard[first : first + len(wanted)], wanted, strict=True
            ):
                if (initial, final) == (want_initial, want_final):
                    continue
                if initial != want_initial or not initial or differing:
                    differing = 2
                    break
                differing = 1
            if differing == 1:
                last = first + len(wanted) - 1
                return self.syllables[first].start, self.syllables[last].end
        return None

    def find(self, needle: list[str]) -> tuple[int, int] | None:
        if not needle:
            return None
        position = self._joined.find(" " + " ".join(needle) + " ")
        if position < 0:
            return None
        first = self._index_at[position]
        return self.syllables[first].start, self.syllables[first + len(needle) - 1].end
