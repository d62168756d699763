"""Keep the search index in step with the stored transcripts.

The indexer follows the catalog's transcripts (near real time: a transcript is
searchable at the next poll) and can rebuild the whole index from them, since stored
transcripts are the system of record. Which transcripts are indexed is remembered in the
index's own directory; replaying one is harmless (deterministic document ids).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from indexer.documents import utterance_docs
from indexer.protocol import SearchIndex
from storage.errors import ConfigError
from storage.models import Stream, Transcript
from storage.runtime import Evidence
from storage.settings import Settings


def open_search_index(evidence: Evidence) -> SearchIndex:
    return search_index_for(evidence.settings)


def search_index_for(settings: Settings) -> SearchIndex:
    """The configured backend: the embedded engine, or an Elasticsearch cluster."""
    if settings.search_backend == "elasticsearch":
        if not settings.es_url:
            raise ConfigError("the elasticsearch search backend needs LIVEWITNESS_ES_URL")
        try:
            from indexer.elastic import ElasticSearchIndex
        except ImportError as exc:
            if (exc.name or "").split(".")[0] not in ("elasticsearch", "elastic_transport"):
                raise
            raise ConfigError(
                "the elasticsearch search backend needs: pip install 'livewitness[elasticsearch]'"
            ) from None
        return ElasticSearchIndex(
            settings.es_url,
            settings.es_index_prefix,
            api_key=settings.es_api_key,
            username=settings.es_username,
            password=settings.es_password,
            verify_certs=settings.es_verify_certs,
            ca_certs=str(settings.es_ca_certs) if settings.es_ca_certs else None,
            request_timeout=settings.es_request_timeout_seconds,
            shards=settings.es_shards,
            replicas=settings.es_replicas,
        )
    from indexer.embedded import EmbeddedSearchIndex

    return EmbeddedSearchIndex(settings.home / "search" / "utterances.sqlite3")


class Indexer:
    def __init__(self, evidence: Evidence, index: SearchIndex) -> None:
        self.evidence = evidence
        self.index = index
        self._state_path = evidence.settings.home / "search" / "indexed.json"
        # Kept on this host whichever backend holds the index; only the embedded engine
        # creates this directory itself.
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        self._indexed: set[tuple[int, int]] = self._load_state()

    def _load_state(self) -> set[tuple[int, int]]:
        try:
            pairs = json.loads(self._state_path.read_text())
            return {(int(a), int(b)) for a, b in pairs}
        except (FileNotFoundError, ValueError):
            return set()

    def _save_state(self) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(self._indexed)))
        tmp.replace(self._state_path)

    def index_pending(self) -> int:
        """Index every stored transcript not yet indexed; returns how many."""
        done = 0
        for stream in self.evidence.catalog.list_streams():
            transcripts = self.evidence.catalog.transcripts(stream.id)
            by_seq = {t.segment_seq: t for t in transcripts}
            for transcript in transcripts:
                if (stream.id, transcript.segment_seq) in self._indexed:
                    continue
                self._index_one(stream, transcript, by_seq)
                done += 1
        if done:
            self._save_state()
        return done

    def _index_one(
        self, stream: Stream, transcript: Transcript, by_seq: dict[int, Transcript]
    ) -> None:
        products = self.evidence.catalog.products(stream.id)
        body = json.loads(transcript.body)
        following = by_seq.get(transcript.segment_seq + 1)
        cutoff = json.loads(following.body)["from_offset"] if following else None
        self._replace(stream, body, cutoff, products)
        # This transcript takes over the previous segment's last words: rebuild those.
        previous = by_seq.get(transcript.segment_seq - 1)
        if previous is not None:
            self._replace(stream, json.loads(previous.body), body["from_offset"], products)
        self._indexed.add((stream.id, transcript.segment_seq))

    def _replace(
        self, stream: Stream, body: dict[str, Any], cutoff: float | None, products: Any
    ) -> None:
        docs = utterance_docs(body, cutoff, products, streamer=stream.streamer)
        self.index.replace_segment(stream.name, body["segment"], docs)

    def reindex(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuild the index from the stored transcripts."""
        self.index.clear()
        self._indexed.clear()
        streams = self.evidence.catalog.list_streams()
        total = sum(len(self.evidence.catalog.transcripts(s.id)) for s in streams)
        done = 0
        for stream in streams:
            transcripts = self.evidence.catalog.transcripts(stream.id)
            products = self.evidence.catalog.products(stream.id)
            # From the blob store, the system of record, not the catalog's copies.
            bodies = [json.loads(self.evidence.blobs.get_bytes(t.blob_key)) for t in transcripts]
            for position, body in enumerate(bodies):
                following = bodies[position + 1] if position + 1 < len(bodies) else None
                cutoff = (
                    following["from_offset"]
                    if following and following["segment"] == body["segment"] + 1
                    else None
                )
                self._replace(stream, body, cutoff, products)
                self._indexed.add((stream.id, body["segment"]))
                done += 1
                if progress:
                    progress(done, total)
        self._save_state()
        return done

    def follow(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        while not stop.is_set():
            self.index_pending()
            stop.wait(poll_seconds)
