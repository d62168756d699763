"""Job kinds: the names stages agree on when they queue and claim work in the catalog.

Storage queues the kinds in :func:`segment_jobs` for every chained segment without
knowing who works on them; a worker claims its own kind.
"""

from __future__ import annotations

TRANSCRIBE_JOB = "transcribe"  # a chained segment's audio (when it has no speech chunks)
# A speech chunk the recorder cut at a pause (recorder/speech.py); claimed before segment
# jobs, since a phrase said seconds ago waits on it.
TRANSCRIBE_CHUNK_JOB = "transcribe-chunk"
# A clause of a chunk still open, transcribed at once as provisional words (the fast
# pass): claimed first, skipped once stale (transcriber/worker.py).
TRANSCRIBE_EARLY_JOB = "transcribe-early"
TRANSCRIPTION_JOBS: tuple[str, ...] = (TRANSCRIBE_EARLY_JOB, TRANSCRIBE_CHUNK_JOB, TRANSCRIBE_JOB)
"""What a transcription worker claims, in this order."""
OCR_JOB = "ocr"  # on-screen text of a segment's sampled frames (transcriber/ocr)

SEGMENT_JOBS: tuple[str, ...] = (TRANSCRIBE_JOB,)
"""What is queued for each new segment whatever the settings."""


def segment_jobs(ocr_enabled: bool, transcribe: bool = True) -> tuple[str, ...]:
    """What is queued for each new segment: OCR only where it is switched on, and no
    transcription of a segment whose speech arrives as chunks."""
    kinds = SEGMENT_JOBS if transcribe else ()
    return (*kinds, OCR_JOB) if ocr_enabled else kinds
