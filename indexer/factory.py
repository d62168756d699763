"""The search index factory: the configured SearchIndex backend."""

from __future__ import annotations

from core.errors import ConfigError
from core.settings import Settings
from indexer.embedded import EmbeddedSearchIndex
from indexer.protocol import SearchIndex
from storage.stores import Stores


def open_search_index(stores: Stores) -> SearchIndex:
    return search_index_for(stores.settings)


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
    return EmbeddedSearchIndex(settings.home / "search" / "utterances.sqlite3")
