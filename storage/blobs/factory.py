"""The blob store factory: the configured BlobStore for a Settings."""

from __future__ import annotations

from core.settings import Settings
from storage.blobs.local import LocalBlobStore
from storage.blobs.protocol import BlobStore


def open_blob_store(settings: Settings) -> BlobStore:
    """The configured blob store; S3 writes fall back to a local spool while S3 is down."""
    if settings.blob_backend == "s3":
        # Imported here: boto3 takes a while to import and most installations never use it.
        from storage.blobs.s3 import S3BlobStore
        from storage.blobs.spool import SpoolingBlobStore

        return SpoolingBlobStore(
            S3BlobStore.from_settings(settings), settings.spool_dir, settings.spool_retry_seconds
        )
    return LocalBlobStore(settings.blobs_dir)
