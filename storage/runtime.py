"""Open the configured storage stack once: catalog, blob store, signer and chain."""

from __future__ import annotations

from dataclasses import dataclass

from storage.blobstore import BlobStore, open_blob_store
from storage.catalog import Catalog
from storage.chain import EvidenceChain
from storage.settings import Settings
from storage.signing import Signer


@dataclass
class Evidence:
    settings: Settings
    catalog: Catalog
    blobs: BlobStore
    chain: EvidenceChain

    def close(self) -> None:
        close = getattr(self.blobs, "close", None)
        if close is not None:
            close()
        self.catalog.close()


def open_evidence(settings: Settings) -> Evidence:
    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_dsn)
    blobs = open_blob_store(settings)
    chain = EvidenceChain(catalog, blobs, Signer(settings.keys_dir))
    return Evidence(settings=settings, catalog=catalog, blobs=blobs, chain=chain)
