"""Asking the installation to record a stream, or to stop: what ``POST /streams`` and
``livewitness add-stream`` both do. Nothing is recorded here: the request is kept in the
catalog, and whichever recorder stage runs (``serve``, ``livewitness recorder``, on any
host sharing the catalog) takes the stream up within a second."""

from __future__ import annotations

from collections.abc import Sequence

from recorder.sources import check_source_allowed
from storage.blob_keys import check_stream_name
from storage.models import Product, Stream
from storage.stores import Stores


def start_wanted(
    stores: Stores,
    name: str,
    source: str,
    *,
    streamer: str | None = None,
    language: str | None = None,
    products: Sequence[Product] = (),
) -> Stream:
    """Check the name and the source (the egress policy), open the stream and mark it
    wanted; raises InvalidInputError (a bad name or a source the policy refuses)."""
    name = check_stream_name(name)
    source = source.strip()
    check_source_allowed(source, stores.settings)
    stream_id = stores.chain.open_stream(name, source)
    stores.catalog.set_stream_details(stream_id, language=language, streamer=streamer)
    if products:
        stores.catalog.set_products(stream_id, products)
    stores.catalog.want_recording(stream_id, True, source)
    return stores.catalog.stream_by_id(stream_id)


def stop_wanted(stores: Stores, name: str) -> Stream:
    """Mark the stream not wanted: its recorder closes the session with an ``end`` entry."""
    stream = stores.catalog.get_stream(check_stream_name(name))
    stores.catalog.want_recording(stream.id, False)
    return stores.catalog.stream_by_id(stream.id)
