"""Open the configured storage stack once: catalog, blob store, signer and chain."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from core.errors import ConfigError
from core.settings import Settings
from storage.blobs.factory import open_blob_store
from storage.blobs.protocol import BlobStore
from storage.blobs.spool import SpoolingBlobStore
from storage.catalog import Catalog
from storage.chain import EvidenceChain
from storage.signing import PRIVATE_NAME, PUBLIC_NAME, Signer

log = logging.getLogger(__name__)


@dataclass
class Stores:
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

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_stores(settings: Settings) -> Stores:
    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_dsn)
    blobs = open_blob_store(settings)
    try:
        signer = open_signer(settings, catalog, blobs)
    except BaseException:
        if isinstance(blobs, SpoolingBlobStore):
            blobs.close()
        catalog.close()
        raise
    chain = EvidenceChain(catalog, blobs, signer)
    return Stores(settings=settings, catalog=catalog, blobs=blobs, chain=chain)


def open_signer(settings: Settings, catalog: Catalog, blobs: BlobStore) -> Signer:
    """The data directory's signing key, made anew only while nothing is signed yet: a
    stage started on a new host without the deployment's key would otherwise sign with,
    and check against, a key of its own that no earlier signature matches."""
    if not (settings.signing_keys_dir / PRIVATE_NAME).exists():
        signed = catalog.last_signature()
        if signed is not None:
            record = json.loads(blobs.get_bytes(signed.blob_key))
            raise ConfigError(
                f"no signing key in {settings.signing_keys_dir}, but the catalog's chains are"
                f" signed with key {record['payload'].get('key_id', '?')}: copy the deployment's"
                f" keys directory ({PRIVATE_NAME}, {PUBLIC_NAME}) there"
            )
    return Signer(settings.signing_keys_dir)
