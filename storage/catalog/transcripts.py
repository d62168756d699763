"""Transcripts (write-once, followed by the indexer) and a stream's product list."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select

from storage.catalog.engine import TRANSCRIPTS_STORED, CatalogBase
from storage.models import Product, Transcript


class TranscriptsMixin(CatalogBase):
    """Transcripts per segment and products per stream."""

    def add_transcript(self, transcript: Transcript) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Transcript).where(
                    Transcript.stream_id == transcript.stream_id,
                    Transcript.segment_seq == transcript.segment_seq,
                )
            )
            if found is None:
                s.add(transcript)
        self.changes.mark(TRANSCRIPTS_STORED)

    def transcripts(
        self, stream_id: int, seqs: Collection[int] | None = None
    ) -> Sequence[Transcript]:
        """A stream's transcripts in segment order (only those of ``seqs`` if given)."""
        with self.session() as s:
            query = select(Transcript).where(Transcript.stream_id == stream_id)
            if seqs is not None:
                query = query.where(Transcript.segment_seq.in_(list(seqs)))
            return s.scalars(query.order_by(Transcript.segment_seq)).all()

    def transcript_keys(self, after_id: int = 0) -> Sequence[tuple[int, int, int]]:
        """(id, stream id, segment seq) of the transcripts stored after ``after_id``:
        transcripts are write-once, so a follower keeps the last id as its cursor."""
        with self.session() as s:
            rows = s.execute(
                select(Transcript.id, Transcript.stream_id, Transcript.segment_seq)
                .where(Transcript.id > after_id)
                .order_by(Transcript.id)
            ).all()
            return [(int(a), int(b), int(c)) for a, b, c in rows]

    def products(self, stream_id: int) -> Sequence[Product]:
        with self.session() as s:
            return s.scalars(
                select(Product).where(Product.stream_id == stream_id).order_by(Product.name)
            ).all()

    def set_products(self, stream_id: int, products: Sequence[Product]) -> None:
        """Replace a stream's product list."""
        with self.session() as s:
            for old in s.scalars(select(Product).where(Product.stream_id == stream_id)):
                s.delete(old)
            s.flush()
            for product in products:
                product.stream_id = stream_id
                s.add(product)
