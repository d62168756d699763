"""The shipped, editable taxonomy of claim types (``claims.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")


@dataclass(frozen=True)
class ClaimType:
    name: str
    label: str
    phrases: tuple[str, ...]


@lru_cache(maxsize=4)
def load_claim_types(path: Path = CLAIMS_FILE) -> tuple[ClaimType, ...]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(
        ClaimType(name=name, label=str(body["label"]), phrases=tuple(map(str, body["phrases"])))
        for name, body in data["types"].items()
    )
