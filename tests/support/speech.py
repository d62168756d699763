"""The committed Mandarin and English speech fixtures and helpers to compare transcripts."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.text import compact, search_form

FIXTURES = Path(__file__).parents[1] / "fixtures" / "speech"


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    return data


def clip(name: str) -> dict[str, Any]:
    info: dict[str, Any] = manifest()["clips"][name]
    return info


def clip_path(name: str) -> Path:
    return FIXTURES / clip(name)["file"]


def normal(text: str) -> str:
    """What recognition is compared on: the search form without punctuation or spaces."""
    return compact(search_form(text))


def similarity(heard: str, said: str) -> float:
    return difflib.SequenceMatcher(None, normal(heard), normal(said)).ratio()


def char_error_rate(heard: str, said: str) -> float:
    """Levenshtein distance over the reference length, on the normal forms."""
    a, b = normal(said), normal(heard)
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] / max(1, len(a))
