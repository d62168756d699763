"""Open the configured storage stack once: catalog, blob store, signer and chain."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from storage.blobstore import BlobStore, open_blob_store
from storage.catalog import Catalog
from storage.chain import EvidenceChain
from storage.settings import Settings
from storage.signing import Signer
from storage.spool import SpoolingBlobStore

log = logging.getLogger(__name__)


@dataclass
class Evidence:
    settings: Settings
    catalog: Catalog
    blobs: BlobStore
    chain: EvidenceChain

    def close(self, flush_seconds: float = 30.0) -> None:
        """Give a spool a last chance to upload; what stays is uploaded at the next start."""
        if isinstance(self.blobs, SpoolingBlobStore):
            if not self.blobs.flush(flush_seconds):
                log.warning("%d blobs stay spooled until the next start", self.blobs.pending())
            self.blobs.close()
        self.catalog.close()

    def __enter__(self) -> Evidence:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_evidence(settings: Settings) -> Evidence:
    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_dsn)
    blobs = open_blob_store(settings)
    chain = EvidenceChain(catalog, blobs, Signer(settings.keys_dir))
    return Evidence(settings=settings, catalog=catalog, blobs=blobs, chain=chain)
