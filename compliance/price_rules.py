"""Prices in text (said, shown on screen) and the rule a price that differs from the
product card breaks (``price_mismatch``).

A price is a number with a currency mark (¥99, 99元, 99块, 9块9) or right after a price
word (价, 只要, 到手, 秒杀 ...), read in the search form, so 九十九元 and ９９元 are 99. A
sentence may name several prices (原价199，现在只要99): it agrees with the card when any of
them is the card's price.
"""

from __future__ import annotations

import re

from core.text import search_form

PRICE_MISMATCH = "price_mismatch"
PRICE_MISMATCH_SEVERITY = "high"
# Cited as compliance/lexicon.yaml cites its sources: the law, its article, what it says.
PRICE_MISMATCH_SOURCE = (
    "《中华人民共和国价格法》第十三条、第十四条第(四)项与《明码标价和禁止价格欺诈规定》(2022)"
    " 第十九条：经营者应当明码标价，不得利用虚假的或者使人误解的价格手段诱骗消费者"
    "（口播或画面上的价格与商品卡标示的价格不一致）"
)
PRICE_TOLERANCE = 0.005  # prices are compared to the cent

_NUMBER = r"(\d+(?:\.\d+)?)"
_MARKED = re.compile(r"[¥$]\s*" + _NUMBER)
_UNIT = re.compile(_NUMBER + r"\s*(?:元|块|圆|rmb|yuan)(\d(?!\d))?", re.IGNORECASE)
# Only a colon, 是/为 or a currency mark between the word and its number: 最低价假1赔10
# names no price.
_WORDED = re.compile(
    r"(?:价格|价|只要|只需|仅需|仅要|到手|秒杀|券后|折后|特价)[\s:是为¥$]{0,3}" + _NUMBER
)


def price_values(text: str) -> list[float]:
    """The prices a text names, in order (each number once)."""
    form = search_form(text)
    found: dict[int, float] = {}
    for match in _UNIT.finditer(form):
        value = float(match.group(1))
        if match.group(2):  # 9块9: nine yuan and nine jiao
            value += int(match.group(2)) / 10
        found.setdefault(match.start(1), value)
    for pattern in (_MARKED, _WORDED):
        for match in pattern.finditer(form):
            found.setdefault(match.start(1), float(match.group(1)))
    return [found[at] for at in sorted(found)]


def agrees(values: list[float], card: float) -> bool:
    return any(abs(value - card) < PRICE_TOLERANCE for value in values)
