"""Text clean-up shared by the transcriber and the search side.

- :func:`to_simplified` folds Traditional Chinese output to Simplified (OpenCC).
- :func:`search_form` is the form kept for search: Simplified, half width, lower case,
  and Chinese numerals as digits, so that 九十九 and 99 find each other.
- :func:`is_hallucination` recognises Whisper's known junk on silence and music.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from functools import lru_cache

import opencc

# cn2an warns (on stderr) about every numeral run it leaves as it is, e.g. a lone 百.
warnings.filterwarnings("ignore", category=UserWarning, module="cn2an")
# Every character cn2an's transform reacts to (its numerals and units, 廿, 半, ASCII
# digits; tests/test_text.py checks this against cn2an's tables): text without one is
# left as it is, so cn2an, a quarter of a second to import, is loaded only for numerals.
NUMERAL_CHARS = frozenset(
    "〇一七万三两九二五亿仟伍佰億兩八六十千半叁參四壹幺廿拾捌柒玖百肆萬貳贰陆陸零"
)

# Lines Whisper is known to invent over silence, music and applause (subtitle credits,
# "like and subscribe"), compared after folding so punctuation and spaces do not matter.
# These never occur in real sales talk, so an utterance containing one is dropped.
JUNK_INSIDE = (
    "字幕由amara",
    "amaraorg社区",
    "请不吝点赞订阅转发打赏",
    "明镜与点点栏目",
    "subtitlesbytheamara",
)
# A streamer may really say these, so only an utterance that is nothing else is dropped.
JUNK_WHOLE = (
    "点赞订阅转发打赏",
    "谢谢观看",
    "感谢观看",
    "谢谢大家观看",
    "字幕志愿者",
    "中文字幕",
    "优优独播剧场",
    "thanksforwatching",
    "thankyouforwatching",
    "pleasesubscribe",
    "subtitlesbytheamara.orgcommunity",
)
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return str(_t2s().convert(text))


@lru_cache(maxsize=65536)  # the same words and phrases are folded again and again
def fold(text: str) -> str:
    """Simplified, NFKC (full width to half width), lower case."""
    return to_simplified(unicodedata.normalize("NFKC", text)).lower()


def search_form(text: str) -> str:
    folded = fold(text)
    if not any(c in NUMERAL_CHARS or "0" <= c <= "9" for c in folded):
        return folded
    import cn2an

    try:
        return str(cn2an.transform(folded, "cn2an"))
    except (ValueError, KeyError, IndexError):  # cn2an gives up on odd numeral runs
        return folded


def compact(text: str) -> str:
    return _PUNCT.sub("", fold(text))


def is_hallucination(text: str) -> bool:
    squeezed = compact(text)
    if not squeezed:
        return True
    return squeezed in JUNK_WHOLE or any(junk in squeezed for junk in JUNK_INSIDE)
