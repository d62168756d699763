"""Stream events in an evidence package: ``events.jsonl`` (the range's events, each line
byte for byte a line of a chained batch) and ``events/<entry>.jsonl`` (those batches as
stored, each named by its manifest entry). Built by evidence/package.py, checked by
evidence/package_verify.py, explained in the README (step 3)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import IntegrityError, InvalidInputError, NotFoundError
from core.timeutil import iso, parse_iso
from evidence.event_batches import check_batch_bytes, events_body
from evidence.package_format import _EVENT_BATCH_NAME, EVENTS_JSONL, event_batch_file
from storage.chain import EVENTS_KIND
from storage.models import EventBatch
from storage.stores import Stores


def batches_in_range(
    stores: Stores, stream_id: int, since: datetime, until: datetime
) -> list[EventBatch]:
    """The stream's sealed batches holding an event timed in [since, until)."""
    return [
        b
        for b in stores.catalog.event_batches(stream_id)
        if b.first_at < until and b.last_at >= since
    ]


def event_files(
    stores: Stores, batches: Sequence[EventBatch], since: datetime, until: datetime
) -> tuple[dict[str, bytes | Path], int]:
    """The batch files and events.jsonl (by time; none when no event is in the range);
    returns them and how many events the range has."""
    files: dict[str, bytes | Path] = {}
    lines: list[tuple[datetime, int, bytes]] = []
    for batch in batches:
        try:
            data = stores.blobs.get_bytes(batch.blob_key)
        except NotFoundError:
            raise IntegrityError(batch.blob_key, "event batch is missing") from None
        if hashlib.sha256(data).hexdigest() != batch.sha256:
            raise IntegrityError(batch.blob_key, "event batch does not match its SHA-256")
        files[event_batch_file(batch.entry_idx)] = data
        for number, line in enumerate(data.split(b"\n")[:-1]):
            at = parse_iso(json.loads(line)["at"])
            if since <= at < until:
                lines.append((at, batch.entry_idx * 1_000_000 + number, line))
    if lines:
        files[EVENTS_JSONL] = b"".join(line + b"\n" for _, _, line in sorted(lines))
    return files, len(lines)


def events_description(batches: Sequence[EventBatch], count: int) -> dict[str, Any]:
    """What package.json says of the events."""
    return {
        "file": EVENTS_JSONL if count else None,
        "count": count,
        "batches": [
            {
                "file": event_batch_file(b.entry_idx),
                "entry": b.entry_idx,
                "sha256": b.sha256,
                "count": b.count,
                "from": iso(b.first_at),
                "to": iso(b.last_at),
            }
            for b in batches
        ],
    }


def readme_rows(batches: Sequence[EventBatch], count: int) -> list[tuple[str, str]]:
    if not batches:
        return []
    return [
        (
            EVENTS_JSONL,
            f"the {count} stream events (chat, product cards, orders, notices) timed in"
            " the range, one JSON object a line, each line byte for byte a line of a"
            " batch below; 'at' is the platform's time, 'late' marks an event sealed"
            " after its time window was",
        ),
        (
            "events/*.jsonl",
            "the chained batches holding them, as stored: each named by its manifest"
            " entry, which gives its SHA-256, count and time range",
        ),
    ]


def readme_commands(batches: Sequence[EventBatch]) -> str:
    """Step 3's commands for the events (none without events)."""
    if not batches:
        return ""
    patterns = " ".join(f"-f {event_batch_file(b.entry_idx)}" for b in batches)
    return (
        "\n   The event batches are chained ones, and events.jsonl holds only their lines:\n\n"
        '    $ ok=1; for f in events/*.jsonl; do h=$(sha256sum "$f" | cut -c1-64);'
        ' grep -qF "\\"sha256\\":\\"$h\\"" manifest/*.json'
        ' || { echo "$f is NOT in the manifest"; ok=0; }; done;'
        ' [ $ok = 1 ] && echo "event batches OK"\n'
        f'    $ grep -vxF {patterns} {EVENTS_JSONL}; [ $? = 1 ] && echo "events OK"\n'
    )


def check_package_events(
    archive: zipfile.ZipFile,
    names: Sequence[str],
    digests: dict[str, str],
    description: dict[str, Any],
    entries: dict[int, Any],
    max_bytes: int,
) -> int:
    """Each batch file matches its entry; every batch of the package's entries holding an
    event of the range is there; events.jsonl holds exactly those events' lines. Returns
    the number of events."""
    since, until = parse_iso(description["since"]), parse_iso(description["until"])
    batch_names = [n for n in names if n.startswith("events/")]
    present: dict[int, str] = {}
    for name in batch_names:
        matched = _EVENT_BATCH_NAME.match(name)
        idx = int(matched.group(1)) if matched else -1
        if idx not in entries or entries[idx].get("kind") != EVENTS_KIND:
            raise IntegrityError(name, "has no events entry in this package")
        present[idx] = name
    wanted: set[bytes] = set()
    expected = 0
    for idx, record in sorted(entries.items()):
        if record.get("kind") != EVENTS_KIND:
            continue
        body = events_body(f"manifest/{idx:08d}.json", record)
        holds = parse_iso(body["from"]) < until and parse_iso(body["to"]) >= since
        if idx not in present:
            if holds:
                raise IntegrityError(
                    event_batch_file(idx), "is missing (it holds events of the range)"
                )
            continue
        name = present[idx]
        if archive.getinfo(name).file_size > max_bytes:
            raise InvalidInputError(f"{name} is larger than {max_bytes} bytes")
        with archive.open(name) as member:
            data = member.read()
        for event in check_batch_bytes(name, data, body):
            if since <= event.at < until:
                expected += 1
        for line in data.split(b"\n")[:-1]:
            if since <= parse_iso(json.loads(line)["at"]) < until:
                wanted.add(hashlib.sha256(line).digest())
    if EVENTS_JSONL not in digests:
        if expected:
            raise IntegrityError(EVENTS_JSONL, "is missing (the range has events)")
        return 0
    seen = 0
    with archive.open(EVENTS_JSONL) as listing:
        for number, line in enumerate(listing, start=1):
            if hashlib.sha256(line.rstrip(b"\n")).digest() not in wanted:
                raise IntegrityError(EVENTS_JSONL, f"line {number} is not an event of a batch")
            seen += 1
    if seen != expected:
        raise IntegrityError(
            EVENTS_JSONL, f"holds {seen} events; the batches hold {expected} in the range"
        )
    return seen
