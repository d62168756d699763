"""Claim counts for the compliance overview: claims live in the search index only, so
they are counted through the SearchIndex Protocol (one browse per claim type and stream,
page size 1: only its total is read), whichever engine holds the index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from compliance.overview import ClaimTally
from indexer.claims import ClaimType, load_claim_types
from indexer.protocol import SearchIndex, SearchQuery


class IndexClaimCounter:
    """A :class:`compliance.overview.ClaimCounter` over a search index."""

    def __init__(self, index: SearchIndex, claim_types: Sequence[ClaimType] | None = None):
        self.index = index
        self.types = tuple(claim_types) if claim_types is not None else load_claim_types()

    def claim_types(self) -> Sequence[tuple[str, str]]:
        return [(c.name, c.label) for c in self.types]

    def count(self, stream: str, since: datetime, until: datetime) -> ClaimTally:
        """Utterances of ``stream`` said in the range holding each claim type (an engine
        counts up to its cap, then says the total is a lower bound)."""
        counts, at_least = {}, False
        for claim in self.types:
            found = self.index.search(
                SearchQuery(
                    text="", stream=stream, claim=claim.name, since=since, until=until, size=1
                )
            )
            if found.total:
                counts[claim.name] = found.total
            at_least = at_least or found.total_relation == "gte"
        return ClaimTally(counts, at_least)
