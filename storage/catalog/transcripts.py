"""Transcripts (write-once, followed by the indexer), the speech chunks they are made
from, and a stream's product list."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from core.jobs import TRANSCRIBE_CHUNK_JOB, TRANSCRIBE_EARLY_JOB
from storage.catalog.engine import JOBS_QUEUED, TRANSCRIPTS_STORED, CatalogBase
from storage.models import Job, Product, SpeechChunk, Transcript


class TranscriptsMixin(CatalogBase):
    """Transcripts per segment (and part), speech chunks, and products per stream."""

    def add_transcript(self, transcript: Transcript) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Transcript).where(
                    Transcript.stream_id == transcript.stream_id,
                    Transcript.segment_seq == transcript.segment_seq,
                    Transcript.part == (transcript.part or 0),
                )
            )
            if found is None:
                s.add(transcript)
        self.changes.mark(TRANSCRIPTS_STORED)

    def transcripts(
        self, stream_id: int, seqs: Collection[int] | None = None
    ) -> Sequence[Transcript]:
        """A stream's transcripts in segment and part order (only those of the segments
        ``seqs`` if given); a segment transcribed as speech chunks has one per chunk."""
        with self.session() as s:
            query = select(Transcript).where(Transcript.stream_id == stream_id)
            if seqs is not None:
                query = query.where(Transcript.segment_seq.in_(list(seqs)))
            return s.scalars(query.order_by(Transcript.segment_seq, Transcript.part)).all()

    def transcript_keys(self, after_id: int = 0) -> Sequence[tuple[int, int, int, int]]:
        """(id, stream id, segment seq, part) of the transcripts stored after ``after_id``:
        transcripts are write-once, so a follower keeps the last id as its cursor."""
        with self.session() as s:
            rows = s.execute(
                select(Transcript.id, Transcript.stream_id, Transcript.segment_seq, Transcript.part)
                .where(Transcript.id > after_id)
                .order_by(Transcript.id)
            ).all()
            return [(int(a), int(b), int(c), int(d)) for a, b, c, d in rows]

    def add_speech_chunk(self, chunk: SpeechChunk) -> SpeechChunk:
        """Catalogue a stored chunk under the stream's next chunk number and queue its
        transcription, in one transaction (only the stream's recorder adds chunks); a
        chunk already catalogued (the same blob) is returned as it is."""
        for _ in range(3):
            try:
                with self.session() as s:
                    stored = s.scalar(
                        select(SpeechChunk).where(
                            SpeechChunk.stream_id == chunk.stream_id,
                            SpeechChunk.blob_key == chunk.blob_key,
                        )
                    )
                    if stored is not None:  # catalogued by an earlier run of an ingest
                        return stored
                    last = s.scalar(
                        select(func.max(SpeechChunk.seq)).where(
                            SpeechChunk.stream_id == chunk.stream_id
                        )
                    )
                    chunk.seq = 0 if last is None else int(last) + 1
                    s.add(chunk)
                    kind = TRANSCRIBE_EARLY_JOB if chunk.provisional else TRANSCRIBE_CHUNK_JOB
                    s.add(Job(kind=kind, stream_id=chunk.stream_id, segment_seq=chunk.seq))
                break
            except SAIntegrityError:
                continue  # a number taken meanwhile (a recorder that lost its lease)
        self.changes.mark(JOBS_QUEUED)
        return chunk

    def speech_chunk(self, stream_id: int, seq: int) -> SpeechChunk | None:
        with self.session() as s:
            return s.scalar(
                select(SpeechChunk).where(
                    SpeechChunk.stream_id == stream_id, SpeechChunk.seq == seq
                )
            )

    def chunk_closed_after(self, stream_id: int, seq: int) -> bool:
        """Whether a (final) chunk was cut after chunk ``seq``: an early piece's own chunk
        has closed, and its transcript will replace the piece's words."""
        with self.session() as s:
            found = s.scalar(
                select(SpeechChunk.id)
                .where(
                    SpeechChunk.stream_id == stream_id,
                    SpeechChunk.seq > seq,
                    SpeechChunk.provisional.is_(False),
                )
                .limit(1)
            )
            return found is not None

    def speech_chunks(self, stream_id: int) -> Sequence[SpeechChunk]:
        with self.session() as s:
            return s.scalars(
                select(SpeechChunk)
                .where(SpeechChunk.stream_id == stream_id)
                .order_by(SpeechChunk.seq)
            ).all()

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
