"""The hash chain's index: manifest entries, segments and signed chain heads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from core.errors import StorageError
from storage.catalog.engine import CatalogBase
from storage.models import ManifestEntry, Segment, Signature


class ChainMixin(CatalogBase):
    """Manifest entries, segments and signatures; adding one already stored is a no-op."""

    # Manifest and segments
    def entries(self, stream_id: int) -> Sequence[ManifestEntry]:
        with self.session() as s:
            return s.scalars(
                select(ManifestEntry)
                .where(ManifestEntry.stream_id == stream_id)
                .order_by(ManifestEntry.idx)
            ).all()

    def head(self, stream_id: int) -> ManifestEntry | None:
        with self.session() as s:
            return s.scalar(
                select(ManifestEntry)
                .where(ManifestEntry.stream_id == stream_id)
                .order_by(ManifestEntry.idx.desc())
                .limit(1)
            )

    def entry(self, stream_id: int, idx: int) -> ManifestEntry | None:
        with self.session() as s:
            return s.scalar(
                select(ManifestEntry).where(
                    ManifestEntry.stream_id == stream_id, ManifestEntry.idx == idx
                )
            )

    def add_entry(self, entry: ManifestEntry) -> None:
        """Idempotent: an entry already indexed at the same place is left as it is."""
        with self.session() as s:
            found = s.scalar(
                select(ManifestEntry).where(
                    ManifestEntry.stream_id == entry.stream_id, ManifestEntry.idx == entry.idx
                )
            )
            if found is None:
                s.add(entry)
            elif found.sha256 != entry.sha256:
                raise StorageError(f"catalog already indexes another entry at {entry.blob_key}")

    def segments(self, stream_id: int) -> Sequence[Segment]:
        with self.session() as s:
            return s.scalars(
                select(Segment).where(Segment.stream_id == stream_id).order_by(Segment.seq)
            ).all()

    def segment_by_capture(self, stream_id: int, capture: str) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment).where(Segment.stream_id == stream_id, Segment.capture == capture)
            )

    def segment_by_sha256(self, stream_id: int, sha256: str) -> Segment | None:
        """The first segment of a stream with these exact bytes, if any."""
        with self.session() as s:
            return s.scalar(
                select(Segment)
                .where(Segment.stream_id == stream_id, Segment.sha256 == sha256)
                .order_by(Segment.seq)
                .limit(1)
            )

    def last_segment(self, stream_id: int) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment)
                .where(Segment.stream_id == stream_id)
                .order_by(Segment.seq.desc())
                .limit(1)
            )

    def segment(self, stream_id: int, seq: int) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment).where(Segment.stream_id == stream_id, Segment.seq == seq)
            )

    def first_segment(self, stream_id: int) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment).where(Segment.stream_id == stream_id).order_by(Segment.seq).limit(1)
            )

    def add_segment(self, segment: Segment) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Segment).where(
                    Segment.stream_id == segment.stream_id, Segment.seq == segment.seq
                )
            )
            if found is None:
                s.add(segment)

    # Signatures
    def signatures(self, stream_id: int) -> Sequence[Signature]:
        with self.session() as s:
            return s.scalars(
                select(Signature)
                .where(Signature.stream_id == stream_id)
                .order_by(Signature.head_idx)
            ).all()

    def last_signature(self) -> Signature | None:
        """The most recently stored signature of any stream."""
        with self.session() as s:
            return s.scalar(select(Signature).order_by(Signature.id.desc()).limit(1))

    def add_signature(self, signature: Signature) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Signature).where(
                    Signature.stream_id == signature.stream_id,
                    Signature.head_idx == signature.head_idx,
                )
            )
            if found is None:
                s.add(signature)
