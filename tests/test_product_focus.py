"""A claim is about the product being presented: the product named in its sentence, else
the one named last within ``product_focus_seconds`` (marked inferred), so that a product
filter finds a price promised for it even when the sentence never names it."""

from __future__ import annotations

import json
from pathlib import Path

from core.settings import Settings
from core.transcript import SegmentTranscript
from indexer.documents import last_named_product, utterance_docs
from indexer.factory import open_search_index
from indexer.protocol import SearchQuery
from indexer.service import Indexer
from storage.products import parse_products
from storage.stores import open_stores
from tests.support.searchdata import T0, add_stream

TALK = [
    [(1.0, "这款面霜特别滋润")],
    [(2.0, "原价三百九今天直播间只要九十九")],  # names no product: 面霜, inferred
    [(1.0, "这个手镯是纯银的"), (6.0, "今天买一送一")],  # 手镯 named, then inferred
]


def browse(home: Path, focus_seconds: float, **filters: str) -> list[str]:
    with open_stores(Settings(home=home, product_focus_seconds=focus_seconds)) as stores:
        if not stores.catalog.list_streams():
            add_stream(stores, home.parent, "shop", TALK, T0)
            products = parse_products([{"name": "面霜"}, {"name": "手镯"}])
            stores.catalog.set_products(stores.catalog.get_stream("shop").id, products)
        index = open_search_index(stores)
        try:
            Indexer(stores, index).reindex()
            result = index.search(SearchQuery(text="", sort="time", **filters))  # type: ignore[arg-type]
        finally:
            index.close()
    return [hit.text for hit in result.hits]


def test_a_price_said_after_a_product_was_presented_is_found_under_that_product(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    assert browse(home, 180.0, product="面霜", claim="price") == ["原价三百九今天直播间只要九十九"]
    assert browse(home, 180.0, product="手镯", claim="giveaway") == ["今天买一送一"]
    assert browse(home, 180.0, product="手镯", claim="material") == ["这个手镯是纯银的"]
    assert browse(home, 180.0, product="面霜", claim="giveaway") == []  # 手镯 took the focus
    # Named 10+ s before, outside a 5 s window: no product is inferred.
    assert browse(home, 5.0, product="面霜", claim="price") == []


def test_each_claim_carries_its_product_and_whether_it_was_named(tmp_path: Path) -> None:
    with open_stores(Settings(home=tmp_path / "home")) as stores:
        add_stream(stores, tmp_path, "shop", TALK, T0)
        stream_id = stores.catalog.get_stream("shop").id
        products = parse_products([{"name": "面霜"}, {"name": "手镯"}])
        first, second, third = (
            SegmentTranscript.from_json(json.loads(row.body))
            for row in stores.catalog.transcripts(stream_id)
        )
    named = last_named_product(first, products)
    assert named is not None and named.product == "面霜"
    (price,) = utterance_docs(second, None, products, focus=named)
    assert [(c.key, c.product, c.inferred) for c in price.claims] == [("price", "面霜", True)]
    (inferred,) = price.products
    assert (inferred.key, inferred.match, inferred.heard) == ("面霜", "inferred", "")
    assert inferred.offset == price.claims[0].offset  # where the claim was said
    silver, giveaway = utterance_docs(third, None, products, focus=named)
    assert [(c.key, c.product, c.inferred) for c in silver.claims] == [("material", "手镯", False)]
    assert [(c.key, c.product, c.inferred) for c in giveaway.claims] == [("giveaway", "手镯", True)]
    # Beyond the window, or with nothing named before, a claim has no product.
    (alone,) = utterance_docs(second, None, products, focus=named, focus_seconds=1.0)
    assert [(c.product, c.inferred) for c in alone.claims] == [(None, False)] and not alone.products
