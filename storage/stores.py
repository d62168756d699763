"""Open the configured storage stack once: catalog, blob store, signer and chain."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from core.errors import ConfigError, StorageError
from core.jobs import segment_jobs
from core.settings import Settings
from storage.blobs.factory import open_blob_store
from storage.blobs.protocol import BlobStore
from storage.blobs.spool import SpoolingBlobStore
from storage.catalog import Catalog
from storage.chain import EvidenceChain
from storage.file_modes import exposed_line, make_private_dir
from storage.scratch import clean_scratch
from storage.signing import PRIVATE_NAME, PUBLIC_NAME, Signer
from storage.webhook_secrets import WebhookSecrets

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
    make_private_dir(settings.home)
    make_private_dir(settings.signing_keys_dir)
    exposed = exposed_line(settings.home, settings.signing_keys_dir)
    if exposed:
        log.warning("%s", exposed)
    clean_scratch(settings)  # work files of killed exports, clips and packages
    catalog = Catalog(settings.catalog_dsn)
    catalog.webhook_secrets = WebhookSecrets(settings.signing_keys_dir)
    blobs = open_blob_store(settings)
    try:
        signer = open_signer(settings, catalog, blobs)
    except BaseException:
        if isinstance(blobs, SpoolingBlobStore):
            blobs.close()
        catalog.close()
        raise
    chain = EvidenceChain(catalog, blobs, signer, segment_jobs(settings.ocr_enabled))
    try:
        # Secrets an earlier release stored in plain text: sealed now, beside the keys.
        catalog.seal_webhook_secrets()
    except StorageError as exc:  # a read-only copy of a catalog: they still sign
        log.warning("could not seal the webhook secrets stored in plain text: %s", exc)
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
