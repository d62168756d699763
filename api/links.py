"""Links to a moment and to its clip, as the API serves them (hits and moments carry them)."""

from __future__ import annotations

from urllib.parse import quote

from api.deps import API

CLIP_BEFORE, CLIP_AFTER = 10.0, 20.0


def moment_links(stream: str, offset: float) -> tuple[str, str]:
    base = f"{API}/streams/{quote(stream)}"
    return (
        f"{base}/moment?offset={offset:.3f}",
        f"{base}/clip?offset={offset:.3f}&before={CLIP_BEFORE:g}&after={CLIP_AFTER:g}",
    )
