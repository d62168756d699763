"""Claims are found as promises, not as substrings: word boundaries, exceptions, a figure
after price words and negation, measured on a labelled table of sales-talk sentences
(tests/fixtures/claims_labelled.tsv: claims, look-alikes and negations)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from indexer.claims import load_claim_types
from indexer.documents import FuzzyMatching, claims_in

TABLE = Path(__file__).parent / "fixtures" / "claims_labelled.tsv"
GOAL = 0.95  # precision and recall per claim type, on correct text


def labelled() -> list[tuple[str, set[str]]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, labels = line.split("\t")
        rows.append((text, set() if labels == "-" else set(labels.split(","))))
    return rows


@pytest.mark.parametrize("fuzzy", [None, FuzzyMatching(4)], ids=["plain", "fuzzy"])
def test_precision_and_recall_per_claim_type_on_the_labelled_table(
    fuzzy: FuzzyMatching | None,
) -> None:
    """On correct text, near misses of long claim phrases (as the indexer looks for them)
    add no false claim either."""
    rows = labelled()
    known = {c.name for c in load_claim_types()}
    assert len(rows) >= 150
    assert all(labels <= known for _, labels in rows), "labels name known types only"
    positives = Counter(label for _, labels in rows for label in labels)
    assert set(positives) == known and min(positives.values()) >= 4, positives
    assert sum(1 for _, labels in rows if not labels) >= 40  # look-alikes and negations
    hits, false, missed = Counter(), Counter(), Counter()
    wrong = []
    for text, want in rows:
        got = {mention.key for mention in claims_in(text, fuzzy=fuzzy)}
        hits.update(got & want)
        false.update(got - want)
        missed.update(want - got)
        if got != want:
            wrong.append(f"{text}: got {sorted(got)}, labelled {sorted(want)}")
    for name in sorted(known):
        precision = hits[name] / ((hits[name] + false[name]) or 1)
        recall = hits[name] / ((hits[name] + missed[name]) or 1)
        assert precision >= GOAL and recall >= GOAL, (name, precision, recall, wrong)


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        ("我们送货上门", set()),  # 送 inside 送货上门: a word of its own
        ("买一送一", {"giveaway"}),
        ("这个有效期两年", set()),  # 有效 inside 有效期
        ("祛痘非常有效", {"efficacy"}),
        ("今天不包邮哦", set()),  # negated
        ("我们不会给你包邮的", set()),
        ("质量不错，包邮", {"free_shipping"}),  # 不错 is no negation of it
        ("只要你喜欢就拍", set()),  # no figure after 只要
        ("今天直播间只要九十九", {"price"}),
        ("下单后四十八小时内发货", {"delivery"}),
        ("赠品数量有限", {"giveaway"}),  # 赠品 is said, not a misheard 正品
    ],
)
def test_what_makes_a_phrase_a_claim(text: str, claims: set[str]) -> None:
    assert {mention.key for mention in claims_in(text)} == claims


def test_a_claim_is_found_after_a_look_alike_in_the_same_sentence() -> None:
    (giveaway,) = claims_in("送货上门，今天买一件送一件")
    assert (giveaway.key, giveaway.phrase, giveaway.match) == ("giveaway", "送", "exact")


def test_a_misheard_long_claim_phrase_is_a_fuzzy_claim() -> None:
    heard = "假一赔深"  # 假一赔十 with shi heard as shen: same initial, another final
    assert not claims_in(heard)
    (claim,) = claims_in(heard, fuzzy=FuzzyMatching(4))
    assert (claim.key, claim.match) == ("authenticity", "fuzzy")
    # Another phrase of the same claim heard by its sound ranks above the near miss.
    (better,) = claims_in("保证假一赔深", fuzzy=FuzzyMatching(4))
    assert better.match == "sound-alike"
