"""Job kinds: the names stages agree on when they queue and claim work in the catalog.

Storage queues the kinds in :data:`SEGMENT_JOBS` for every chained segment without
knowing who works on them; a worker claims its own kind.
"""

from __future__ import annotations

TRANSCRIBE_JOB = "transcribe"

SEGMENT_JOBS: tuple[str, ...] = (TRANSCRIBE_JOB,)
"""What is queued for each new segment."""
