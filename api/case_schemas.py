"""What the case routes take and return (api/routes/cases.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CaseIn(BaseModel):
    title: str = Field(min_length=1, max_length=256)
    external_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="The case system's id (unique)."
    )


class CasePatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=256)
    status: Literal["open", "closed"] | None = None
    external_id: str | None = Field(default=None, min_length=1, max_length=128)


class CaseMomentIn(BaseModel):
    stream: str = Field(min_length=1, max_length=64)
    start_offset: float = Field(ge=0, le=10 * 365 * 86400, description="Seconds from start.")
    end_offset: float = Field(ge=0, le=10 * 365 * 86400)
    found_by: str = Field(
        min_length=1, max_length=500, description="What found it: 'search \"包邮\"', a hit."
    )
    matched: list[str] = Field(default_factory=list, max_length=50)


class OverlayIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class OverlayOut(BaseModel):
    id: int
    kind: Literal["note", "tag", "correction"]
    text: str
    author: str
    at: str
    signature_ok: bool = Field(
        description="The overlay's Ed25519 signature (over its text, author and time) checked"
        " on this read. Overlays are not evidence and never replace the transcript."
    )


class CaseMomentOut(BaseModel):
    id: int
    stream: str
    start_offset: float
    end_offset: float
    since: str
    until: str
    found_by: str
    matched: list[str]
    tags: list[str]
    created_at: str
    created_by: str
    moment_url: str
    clip_url: str
    overlays: list[OverlayOut]


class CaseOut(BaseModel):
    id: int
    external_id: str | None
    title: str
    status: Literal["open", "closed"]
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str
    closed_at: str | None
    holds: int = Field(description="Stored blobs this case holds now (legal holds).")
    moments: list[CaseMomentOut]


class CaseSummaryOut(BaseModel):
    id: int
    external_id: str | None
    title: str
    status: Literal["open", "closed"]
    created_at: str
    updated_at: str
    closed_at: str | None
