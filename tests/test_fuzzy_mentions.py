"""Near misses of product names (one syllable with its initial and another final: 保温包
for 保温杯): found for names of four syllables or more by default, marked fuzzy and
ranked after sound-alikes (bench/fuzzy_mentions.py has the precision that set the bound)."""

from __future__ import annotations

from pathlib import Path

from core.phonetic import SoundText, sound_tokens
from core.settings import Settings
from indexer.documents import FuzzyMatching, claims_in
from indexer.factory import open_search_index
from indexer.protocol import SearchQuery
from indexer.service import Indexer
from storage.products import parse_products
from storage.stores import open_stores
from tests.support.searchdata import T0, add_stream


def near(heard: str, name: str, southern: bool = False) -> str | None:
    span = SoundText.of(heard).find_fuzzy(sound_tokens(name), southern)
    return None if span is None else heard[span[0] : span[1]]


def test_one_syllable_with_the_same_initial_and_another_final() -> None:
    assert near("这款面收很好", "面霜") == "面收"  # mian shou ~ mian shuang
    assert near("手著很漂亮", "手镯") == "手著"
    assert near("这个保温包保温二十四小时", "保温杯") == "保温包"
    assert near("这个手机很好", "手镯") is None  # another initial
    assert near("面霜很好", "面霜") is None  # heard as said: not a near miss
    assert near("收霜", "面霜") is None  # both syllables off
    assert near("面", "面霜") is None


def test_southern_confusions_are_a_setting() -> None:
    assert near("今天的发生米", "花生米") is None  # f/h: another initial
    assert near("今天的发生米", "花生米", southern=True) == "发生米"


def test_fuzzy_product_mentions_in_the_index(tmp_path: Path) -> None:
    talk = [[(1.0, "这个保温包保温二十四小时")], [(1.0, "这款面烧特别滋润")]]
    assert Settings().fuzzy_mention_min_syllables == 4
    for bound, found in ((3, {"保温杯"}), (2, {"保温杯", "面霜"}), (0, set()), (4, set())):
        home = tmp_path / f"home-{bound}"
        settings = Settings(home=home, fuzzy_mention_min_syllables=bound)
        with open_stores(settings) as stores:
            add_stream(stores, tmp_path, "shop", talk, T0)
            products = parse_products([{"name": "保温杯"}, {"name": "面霜"}])
            stores.catalog.set_products(stores.catalog.get_stream("shop").id, products)
            index = open_search_index(stores)
            try:
                Indexer(stores, index).index_pending()
                hits = {
                    name: index.search(SearchQuery(text="", product=name)).hits
                    for name in ("保温杯", "面霜")
                }
            finally:
                index.close()
        assert {name for name, got in hits.items() if got} == found, bound
        assert all(hit.match == "fuzzy" for got in hits.values() for hit in got)
    assert FuzzyMatching.of(0, False) is None
    assert claims_in("这个保温包保温二十四小时") == []  # claims are not looked for fuzzily


def test_near_misses_of_long_banned_terms_are_fuzzy_hits_ranked_below_sound_alikes() -> None:
    from compliance.matcher import BannedWordMatcher, load_lexicon

    lexicon = load_lexicon()
    plain, fuzzy = BannedWordMatcher(lexicon), BannedWordMatcher(lexicon, 4)
    heard = "今天全网最低就，快来拍"  # 全网最低价 with jia heard as jiu
    assert not [h for h in plain.find(heard) if h.term == "全网最低价"]
    (hit,) = [h for h in fuzzy.find(heard) if h.term == "全网最低价"]
    assert (hit.match, hit.heard) == ("fuzzy", "全网最低就")
    # A sound-alike of the same term wins over a near miss of it.
    (alike,) = [h for h in fuzzy.find("今天全网最低假") if h.term == "全网最低价"]
    assert alike.match == "sound-alike"
    # Terms shorter than the bound are not guessed at: 最低价 heard as 最低就 is only the
    # 最低 it says.
    assert [(h.term, h.match) for h in fuzzy.find("这款最低就")] == [("最低", "exact")]
