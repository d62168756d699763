"""Cases: the moments a reviewer keeps, their signed overlays, and the legal holds they
place on the evidence those moments draw on (docs/cases.md).

A moment holds what an evidence package of its range needs: the covering segments,
the manifest entries from the first of them to the signed head that covers them (event
batches and token references between them included), that head's signature and its
RFC 3161 tokens. Holds are recorded in the catalog first and placed on the blob store at
once; one the store cannot take now is placed by the periodic hold task
(:mod:`storage.holds`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from core.errors import ConflictError, InvalidInputError
from core.timeutil import utc_now
from evidence.moments import check_range_length, segments_covering, stream_offset_to_time
from storage.blob_keys import check_stream_name
from storage.catalog.cases import CASE_STATUSES, CLOSED, OPEN
from storage.holds import apply_holds
from storage.models import Case, CaseMoment, CaseOverlay
from storage.overlays import CheckedOverlay, check_overlay, sign_overlay
from storage.stores import Stores

MAX_TITLE_CHARS = 256
MAX_EXTERNAL_ID_CHARS = 128
MAX_FOUND_BY_CHARS = 500
MAX_MATCHED = 50


@dataclass(frozen=True)
class MomentView:
    moment: CaseMoment
    stream: str
    matched: tuple[str, ...]
    overlays: tuple[CheckedOverlay, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(o.row.text for o in self.overlays if o.row.kind == "tag")


@dataclass(frozen=True)
class CaseView:
    case: Case
    moments: tuple[MomentView, ...]
    holds: int  # blobs the case holds now (unreleased)


def check_title(title: str) -> str:
    cleaned = title.strip()
    if not cleaned or len(cleaned) > MAX_TITLE_CHARS:
        raise InvalidInputError(f"a case title is 1-{MAX_TITLE_CHARS} characters")
    return cleaned


def check_external_id(external_id: str | None) -> str | None:
    if external_id is None:
        return None
    cleaned = external_id.strip()
    if not cleaned or len(cleaned) > MAX_EXTERNAL_ID_CHARS or any(c.isspace() for c in cleaned):
        raise InvalidInputError(
            f"an external case id is 1-{MAX_EXTERNAL_ID_CHARS} characters without spaces"
        )
    return cleaned


def create_case(stores: Stores, title: str, external_id: str | None, actor: str) -> Case:
    return stores.catalog.add_case(check_title(title), check_external_id(external_id), actor)


def update_case(
    stores: Stores,
    case_id: int,
    actor: str,
    *,
    title: str | None = None,
    status: str | None = None,
    external_id: str | None = None,
) -> Case:
    """Change a case; reopening a closed case holds its moments' evidence again."""
    if status is not None and status not in CASE_STATUSES:
        raise InvalidInputError(f"a case is {' or '.join(CASE_STATUSES)}, not {status!r}")
    before = stores.catalog.get_case(case_id)
    case = stores.catalog.update_case(
        case_id,
        actor,
        title=check_title(title) if title is not None else None,
        status=status,
        external_id=check_external_id(external_id),
    )
    if before.status == CLOSED and case.status == OPEN:
        for moment in stores.catalog.case_moments(case_id):
            _hold(stores, case_id, _hold_keys(stores, _stream_name(stores, moment), moment))
    return case


def add_moment(
    stores: Stores,
    case_id: int,
    stream: str,
    start_offset: float,
    end_offset: float,
    found_by: str,
    matched: list[str],
    actor: str,
) -> CaseMoment:
    """Keep [start_offset, end_offset] of a stream in an open case and hold its evidence."""
    _open_case(stores, case_id)
    check_stream_name(stream)
    if not end_offset > start_offset >= 0:
        raise InvalidInputError("a moment runs forwards: 0 <= start_offset < end_offset")
    longest = stores.settings.max_export_seconds
    if end_offset - start_offset > longest:
        raise InvalidInputError(f"a moment is at most {longest:g} s long (one package)")
    check_range_length(end_offset - start_offset)
    found_by = found_by.strip()
    if not found_by or len(found_by) > MAX_FOUND_BY_CHARS:
        raise InvalidInputError(f"found_by is 1-{MAX_FOUND_BY_CHARS} characters")
    words = [w.strip() for w in matched if w.strip()]
    if len(words) > MAX_MATCHED or any(len(w) > 100 for w in words):
        raise InvalidInputError(f"at most {MAX_MATCHED} matched words of 100 characters")
    since = stream_offset_to_time(stores, stream, start_offset)
    until = stream_offset_to_time(stores, stream, end_offset)
    segments_covering(stores, stream, since, until)  # refuses a range with nothing recorded
    row = stores.catalog.add_case_moment(
        CaseMoment(
            case_id=case_id,
            stream_id=stores.catalog.get_stream(stream).id,
            start_offset=start_offset,
            end_offset=end_offset,
            starts_at=since,
            ends_at=until,
            found_by=found_by,
            matched=json.dumps(words, ensure_ascii=False),
            created_at=utc_now(),
            created_by=actor,
        )
    )
    _hold(stores, case_id, _hold_keys(stores, stream, row))
    stores.catalog.touch_case(case_id, actor)
    return row


def add_overlay(
    stores: Stores, case_id: int, moment_id: int, kind: str, text: str, actor: str
) -> CaseOverlay:
    """Sign and keep a note, tag or correction on a moment of an open case."""
    _open_case(stores, case_id)
    moment = stores.catalog.case_moment(case_id, moment_id)
    row = sign_overlay(
        stores.blobs,
        stores.chain.signer,
        moment,
        _stream_name(stores, moment),
        kind,
        text,
        actor,
    )
    added = stores.catalog.add_case_overlay(row)
    stores.catalog.touch_case(case_id, actor)
    return added


def case_view(stores: Stores, case_id: int) -> CaseView:
    """A case with its moments and their overlays, every overlay's signature checked."""
    case = stores.catalog.get_case(case_id)
    overlays = [
        check_overlay(stores.blobs, stores.chain.signer, o)
        for o in stores.catalog.case_overlays(case_id)
    ]
    moments = tuple(
        MomentView(
            moment=m,
            stream=_stream_name(stores, m),
            matched=tuple(json.loads(m.matched)),
            overlays=tuple(o for o in overlays if o.row.moment_id == m.id),
        )
        for m in stores.catalog.case_moments(case_id)
    )
    holds = sum(1 for h in stores.catalog.case_holds(case_id) if h.released_at is None)
    return CaseView(case=case, moments=moments, holds=holds)


def _open_case(stores: Stores, case_id: int) -> Case:
    case = stores.catalog.get_case(case_id)
    if case.status != OPEN:
        raise ConflictError(f"case {case_id} is {case.status}: reopen it to change it")
    return case


def _stream_name(stores: Stores, moment: CaseMoment) -> str:
    return stores.catalog.stream_by_id(moment.stream_id).name


def _hold_keys(stores: Stores, stream: str, moment: CaseMoment) -> list[str]:
    """The blobs an evidence package of the moment's range is made of."""
    row = stores.catalog.get_stream(stream)
    covering = segments_covering(
        stores, stream, moment.starts_at, moment.ends_at + timedelta(microseconds=1)
    )
    keys = [s.blob_key for s in covering]
    first, last = covering[0].entry_idx, covering[-1].entry_idx
    signature = next((s for s in stores.catalog.signatures(row.id) if s.head_idx >= last), None)
    # Not signed yet (a live stream between heads): the entries so far; the covering head
    # is held when the moment is exported or the case reopened.
    upto = signature.head_idx if signature is not None else last
    keys += [e.blob_key for e in stores.catalog.entries(row.id) if first <= e.idx <= upto]
    if signature is not None:
        keys.append(signature.blob_key)
        keys += [t.blob_key for t in stores.catalog.timestamp_tokens(row.id, signature.head_idx)]
    return keys


def _hold(stores: Stores, case_id: int, keys: list[str]) -> None:
    # Recorded first (retention respects the catalog's holds), then placed on the store;
    # what the store cannot take now is placed by the periodic hold task.
    apply_holds(stores.blobs, stores.catalog, stores.catalog.add_holds(case_id, keys))
