"""Evidence packages: one zip proving what a stream showed and said in a time range,
checkable by an outsider with sha256sum and openssl alone.

For the segments of the range (manifest entries ``a`` to ``b``) and the nearest signed
chain head ``H >= b``, a package holds::

    clip.mp4               the range as a playable MP4 (evidence.moments.cut_segments)
    segments/<seq>.ts      the original stored segments, byte for byte
    transcript.json        what was said in the range: each utterance and word with its
                           UTC time, stream offset and offset into clip.mp4
    transcript.srt         the same as subtitles for clip.mp4
    manifest/<idx>.json    the stored manifest entries a..H, byte for byte
    signatures/<H>.json    the stored signature record of head H
    signatures/<H>.msg     the exact bytes it signs: canonical JSON of its payload
                           (RFC 8785 for "v": 2; docs/formats.md)
    signatures/<H>.sig     the raw 64-byte Ed25519 signature
    timestamps/<H>.<n>.tsr RFC 3161 tokens of TSAs over signatures/<H>.msg, as stored
    timestamps/tsa-ca.pem  the TSA CA certificates the installation trusts (if set)
    public_key.pem         the installation's public key
    package.json           what the package holds and where the proofs are
    README.txt             how to check it by hand, command by command
    SHA256SUMS             ``sha256sum`` lines for every file above
    SHA256SUMS.sig         the installation's Ed25519 signature of SHA256SUMS

The proof runs backwards from the signature: the signed payload names H's SHA-256, each
entry names the SHA-256 of the one before it, and each segment entry names its
segment's SHA-256, so entries before ``a`` are not needed. A live stream whose head has
not been signed since the range is signed now. The clip and the transcript are made at
export time, so no chain entry covers them; SHA256SUMS.sig does, as it covers every file.

:func:`verify_package` re-checks all of it offline and names the first file that does not
match in an :class:`~core.errors.IntegrityError`. When SHA256SUMS's signature fails it
cannot tell on its own which of the two changed; it blames SHA256SUMS when its sums
disagree with the files and the signature when they agree.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import textwrap
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import (
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    TimestampError,
)
from core.timeutil import iso, parse_iso, utc_now
from evidence.moments import (
    ClipInfo,
    cut_segments,
    download_segments,
    require_aware,
    segments_covering,
    transcripts_around,
    utterances_overlapping,
)
from evidence.package_events import (
    batches_in_range,
    event_files,
    events_description,
    readme_commands,
    readme_rows,
)
from evidence.package_format import (
    _MEDIA,
    CLIP,
    FORMAT,
    PACKAGE_JSON,
    PUBLIC_KEY,
    README,
    README_WIDTH,
    SUMS,
    SUMS_SIG,
    TRANSCRIPT_JSON,
    TRANSCRIPT_SRT,
    TSA_CA,
    PackageInfo,
    entry_file,
    segment_file,
    signature_files,
    token_file,
)
from evidence.package_keyframes import (
    README_STEP as KEYFRAMES_STEP,
)
from evidence.package_keyframes import (
    keyframe_files,
    keyframes_description,
    keyframes_of,
)
from evidence.package_verify import verify_package
from storage.blobs.protocol import CHUNK, sha256_bytes, sha256_file
from storage.models import EventBatch, Keyframe, ManifestEntry, Segment, Signature, Stream
from storage.scratch import process_scratch
from storage.signing import check_signature, signed_message, signing_key_id
from storage.stores import Stores
from storage.timestamping import check_token, load_ca_bundle, stamped_bytes


@dataclass(frozen=True)
class _Contents:
    """What package.json and the README describe (times as ISO 8601 text)."""

    stream: str
    since: str
    until: str
    created_at: str
    requested_by: str | None
    stream_start: str
    key_id: str
    clip: ClipInfo
    covering: Sequence[Segment]
    entries: Sequence[ManifestEntry]
    signature: Signature
    utterances: int
    stamps: _Stamps | None = None
    batches: Sequence[EventBatch] = ()  # chained batches of stream events in the range
    events: int = 0  # stream events timed in the range (events.jsonl)
    keyframes: Sequence[Keyframe] = ()  # chained keyframes of the segments (OCR)


@dataclass(frozen=True)
class _Token:
    """A packaged RFC 3161 token and what it says."""

    file: str
    tsa: str
    gen_time: str
    serial: str


@dataclass(frozen=True)
class _Stamps:
    """The tokens over the signed head and the TSA CA certificates packaged with them."""

    files: dict[str, bytes | Path]
    tokens: Sequence[_Token]
    ca: Sequence[str]  # each packaged CA certificate: its subject and SHA-256 fingerprint


# -- building ----------------------------------------------------------------------------
def build_package(
    stores: Stores,
    stream: str,
    since: datetime,
    until: datetime,
    out: Path,
    requested_by: str | None = None,
) -> PackageInfo:
    """Write the evidence package of [since, until) of a stream to ``out`` (a zip)."""
    require_aware("since", since)
    require_aware("until", until)
    longest = stores.settings.max_export_seconds
    if (until - since).total_seconds() > longest:
        raise InvalidInputError(
            f"an evidence package covers at most {longest:g}s, not"
            f" {(until - since).total_seconds():g}s; split the range"
        )
    covering = segments_covering(stores, stream, since, until)
    row = stores.catalog.get_stream(stream)
    first = stores.catalog.first_segment(row.id)
    if first is None:  # pragma: no cover - segments_covering found some
        raise NotFoundError(f"stream {stream!r} has no recorded segments")
    # Stream events of the range may sit in batches chained before or after its
    # segments (a late batch): the entries and the signed head cover those too.
    batches = batches_in_range(stores, row.id, since, until)
    indices = [covering[0].entry_idx, covering[-1].entry_idx, *(b.entry_idx for b in batches)]
    # The segments' keyframes are chained after them: the signed head covers those too.
    keyframes = keyframes_of(stores, row.id, covering)
    indices += [k.entry_idx for k in keyframes]
    signature = _signature_covering(stores, row, max(indices))
    entries = [
        e for e in stores.catalog.entries(row.id) if min(indices) <= e.idx <= signature.head_idx
    ]
    public_key = stores.chain.signer.public_key
    created_at = utc_now()
    work = process_scratch(stores.settings)  # the data home's disk, cleaned at start
    with tempfile.TemporaryDirectory(prefix="package-", dir=work) as tmp:
        root = Path(tmp)
        (root / "segments").mkdir()
        paths = download_segments(stores, covering, root / "segments")
        clip = cut_segments(
            stores.settings.ffmpeg, covering, paths, since, until, since, root / CLIP
        )
        files: dict[str, bytes | Path] = {CLIP: root / CLIP}
        files.update({segment_file(s.seq): p for s, p in zip(covering, paths, strict=True)})
        files.update(_entry_files(stores, entries))
        events, event_count = event_files(stores, batches, since, until)
        files.update(events)
        files.update(keyframe_files(stores, keyframes))
        files.update(_signature_files(stores, signature, entries[-1], public_key))
        stamps = _timestamp_files(stores, row, signature)
        files.update(stamps.files)
        files[PUBLIC_KEY] = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        transcript = _transcript(stores, row, covering, since, until, first.starts_at, clip)
        files[TRANSCRIPT_JSON] = _json_bytes(transcript)
        files[TRANSCRIPT_SRT] = _srt(transcript["utterances"]).encode()
        contents = _Contents(
            stream=stream,
            since=iso(since),
            until=iso(until),
            created_at=iso(created_at),
            requested_by=requested_by,
            stream_start=iso(first.starts_at),
            key_id=signing_key_id(public_key),
            clip=clip,
            covering=covering,
            entries=entries,
            signature=signature,
            utterances=len(transcript["utterances"]),
            stamps=stamps,
            batches=batches,
            events=event_count,
            keyframes=keyframes,
        )
        files[README] = _readme(contents).encode()
        names = sorted([*files, SUMS, SUMS_SIG])
        files[PACKAGE_JSON] = _json_bytes(_description(contents, names))
        sums = "".join(f"{_digest(files[n])}  {n}\n" for n in sorted(files)).encode()
        files[SUMS] = sums
        files[SUMS_SIG] = stores.chain.signer.private_key.sign(sums)
        _write_zip(out, files, created_at)
    try:
        report = verify_package(out, public_key)  # nothing leaves that would not check out
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return PackageInfo(
        path=out,
        sha256=sha256_file(out),
        size=out.stat().st_size,
        stream=stream,
        since=since,
        until=until,
        segments=report.segments,
        entries=report.entries,
        head_sha256=report.head_sha256,
        key_id=report.key_id,
        clip=replace(clip, path=Path(CLIP)),  # its place in the zip; the cut file is gone
        utterances=len(transcript["utterances"]),
        files=sorted(files),
    )


def _signature_covering(stores: Stores, row: Stream, entry_idx: int) -> Signature:
    """The first signed head at or after an entry; a head is signed now if none is yet."""
    for signature in stores.catalog.signatures(row.id):
        if signature.head_idx >= entry_idx:
            return signature
    signed = stores.chain.sign_head(row.id, row.name)
    if signed is None or signed.head_idx < entry_idx:  # pragma: no cover - the entry exists
        raise StorageError(f"could not sign the chain head of stream {row.name!r}")
    return signed


def _stored(stores: Stores, key: str, what: str) -> bytes:
    try:
        return stores.blobs.get_bytes(key)
    except NotFoundError:
        raise IntegrityError(key, f"{what} is missing") from None


def _entry_files(stores: Stores, entries: Sequence[ManifestEntry]) -> dict[str, bytes | Path]:
    files: dict[str, bytes | Path] = {}
    previous: ManifestEntry | None = None
    for entry in entries:
        raw = _stored(stores, entry.blob_key, "manifest entry")
        if sha256_bytes(raw) != entry.sha256:
            raise IntegrityError(entry.blob_key, "manifest entry does not match its SHA-256")
        if previous is not None and entry.prev_sha256 != previous.sha256:
            raise IntegrityError(entry.blob_key, "manifest entry does not link to the one before")
        files[entry_file(entry.idx)] = raw
        previous = entry
    return files


def _signature_files(
    stores: Stores, signature: Signature, head: ManifestEntry, public_key: Ed25519PublicKey
) -> dict[str, bytes | Path]:
    raw = _stored(stores, signature.blob_key, "signature")
    try:
        record = json.loads(raw)
        message = signed_message(record["payload"])
        signed = base64.b64decode(record["signature"], validate=True)
    except (ValueError, TypeError, KeyError):
        raise IntegrityError(signature.blob_key, "signature record is malformed") from None
    if not check_signature(record, public_key):
        raise IntegrityError(signature.blob_key, "signature does not verify with this key")
    if record["payload"].get("head_sha256") != head.sha256:
        raise IntegrityError(signature.blob_key, "signature does not cover this chain")
    record_name, message_name, signature_name = signature_files(signature.head_idx)
    return {record_name: raw, message_name: message, signature_name: signed}


def _timestamp_files(stores: Stores, row: Stream, signature: Signature) -> _Stamps:
    """The RFC 3161 tokens over the signed head, each checked, and the TSA CA certificates
    they chain to (when the installation has them configured)."""
    tokens = stores.catalog.timestamp_tokens(row.id, signature.head_idx)
    if not tokens:
        return _Stamps({}, (), ())
    bundle = stores.settings.tsa_ca_bundle
    ca = load_ca_bundle(bundle) if bundle else []
    message = stamped_bytes(_stored(stores, signature.blob_key, "signature"))
    files: dict[str, bytes | Path] = {}
    packaged = []
    for number, token in enumerate(tokens, start=1):
        raw = _stored(stores, token.blob_key, "time-stamp token")
        try:
            info = check_token(raw, message, ca)
        except TimestampError as exc:
            # Old tokens stay checkable only while the bundle keeps their TSA's CA.
            raise IntegrityError(token.blob_key, f"time-stamp token {exc}") from None
        name = token_file(signature.head_idx, number)
        files[name] = raw
        packaged.append(_Token(name, token.tsa_url, iso(info.gen_time), str(info.serial)))
    if ca:
        files[TSA_CA] = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ca)
    described = [
        f"{c.subject.rfc4514_string()}\n  SHA-256 {c.fingerprint(hashes.SHA256()).hex(':').upper()}"
        for c in ca
    ]
    return _Stamps(files, packaged, described)


def _transcript(
    stores: Stores,
    row: Stream,
    covering: Sequence[Segment],
    since: datetime,
    until: datetime,
    stream_start: datetime,
    clip: ClipInfo,
) -> dict[str, Any]:
    """Utterances said in [since, until) (see utterances_overlapping)."""
    low = (since - stream_start).total_seconds()
    high = (until - stream_start).total_seconds()
    transcripts = transcripts_around(stores, row.id, covering)
    stored = {t.segment_seq: t for t in transcripts}
    utterances = []
    for utterance in utterances_overlapping(transcripts, low, high):
        shown = utterance.to_json()
        del shown["search"]  # the index's form of the text, not part of what was said
        shown["words"] = [
            _on_clip(word.to_json(), clip, word.start, word.end) for word in utterance.words
        ]
        utterances.append(_on_clip(shown, clip, utterance.start, utterance.end))
    return {
        "stream": row.name,
        "since": iso(since),
        "until": iso(until),
        "stream_start": iso(stream_start),
        "clip": {"file": CLIP, "start": iso(clip.start)},
        "times": "start/end: UTC; offset: seconds from stream_start;"
        " clip_offset: seconds into clip.mp4",
        "segments": [
            {
                "seq": s.seq,
                "sha256": s.sha256,
                "transcribed": s.seq in stored,
                "model": stored[s.seq].model if s.seq in stored else None,
                "language": stored[s.seq].language if s.seq in stored else None,
            }
            for s in covering
        ],
        "text": "".join(u["text"] for u in utterances),
        "utterances": utterances,
    }


def _on_clip(record: dict[str, Any], clip: ClipInfo, start: str, end: str) -> dict[str, Any]:
    """An utterance's or word's JSON with where clip.mp4 shows it, after its stream times."""
    return {
        **record,
        "clip_offset": round(clip.offset_of(parse_iso(start)), 3),
        "clip_end_offset": round(clip.offset_of(parse_iso(end)), 3),
    }


def _srt_time(seconds: float) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d},{rest % 1000:03d}"


def _srt(utterances: Sequence[dict[str, Any]]) -> str:
    blocks = []
    for number, utterance in enumerate(utterances, start=1):
        start = utterance["clip_offset"]
        end = max(utterance["clip_end_offset"], start + 0.1)
        blocks.append(f"{number}\n{_srt_time(start)} --> {_srt_time(end)}\n{utterance['text']}\n")
    return "\n".join(blocks)


def _description(contents: _Contents, names: Sequence[str]) -> dict[str, Any]:
    clip, entries, signature = contents.clip, contents.entries, contents.signature
    record, message, raw = signature_files(signature.head_idx)
    return {
        "format": FORMAT,
        "version": 1,
        "stream": contents.stream,
        "since": contents.since,
        "until": contents.until,
        "created_at": contents.created_at,
        "requested_by": contents.requested_by,
        "stream_start": contents.stream_start,
        "clip": {
            "file": CLIP,
            "start": iso(clip.start),
            "duration": clip.duration,
            "reencoded": clip.reencoded,
            "segments": clip.segments,
            "pieces": [
                {"seq": p.seq, "start": iso(p.starts_at), "clip_offset": round(p.clip_offset, 6)}
                for p in clip.pieces
            ],
        },
        "segments": [
            {
                "seq": s.seq,
                "file": segment_file(s.seq),
                "sha256": s.sha256,
                "size": s.size,
                "start": iso(s.starts_at),
                "duration": s.duration,
                "entry": s.entry_idx,
            }
            for s in contents.covering
        ],
        "manifest": {
            "first_index": entries[0].idx,
            "first_covering_index": contents.covering[0].entry_idx,
            "last_covering_index": contents.covering[-1].entry_idx,
            "files": [entry_file(e.idx) for e in entries],
        },
        "signed_head": {
            "index": signature.head_idx,
            "sha256": signature.head_sha256,
            "signed_at": iso(signature.signed_at),
            "record": record,
            "message": message,
            "signature": raw,
        },
        "key_id": contents.key_id,
        "public_key": PUBLIC_KEY,
        "timestamps": _timestamps_description(contents.stamps),
        "transcript": {
            "json": TRANSCRIPT_JSON,
            "srt": TRANSCRIPT_SRT,
            "utterances": contents.utterances,
        },
        "events": events_description(contents.batches, contents.events),
        "keyframes": keyframes_description(contents.keyframes),
        "files": [n for n in names if n != PACKAGE_JSON],
    }


def _timestamps_description(stamps: _Stamps | None) -> dict[str, Any]:
    tokens = stamps.tokens if stamps else ()
    return {
        "tsa_ca": TSA_CA if stamps and stamps.ca else None,
        "tokens": [
            {"file": t.file, "tsa": t.tsa, "gen_time": t.gen_time, "serial": t.serial}
            for t in tokens
        ],
    }


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode()


def _digest(content: bytes | Path) -> str:
    return sha256_bytes(content) if isinstance(content, bytes) else sha256_file(content)


def _write_zip(out: Path, files: dict[str, bytes | Path], created_at: datetime) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    stamp = created_at.timetuple()[:6]
    # The guide first, the proofs next, the bulky media last.
    order = sorted(files, key=lambda n: (n != README, n.endswith(_MEDIA), n))
    try:
        with zipfile.ZipFile(partial, "w") as archive:
            for name in order:
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.external_attr = 0o644 << 16
                content = files[name]
                info.compress_type = (
                    zipfile.ZIP_STORED if name.endswith(_MEDIA) else zipfile.ZIP_DEFLATED
                )
                if isinstance(content, bytes):
                    archive.writestr(info, content)
                    continue
                large = content.stat().st_size > zipfile.ZIP64_LIMIT
                with content.open("rb") as src, archive.open(info, "w", force_zip64=large) as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


# -- the README --------------------------------------------------------------------------
def _file_list(contents: _Contents) -> str:
    """The "What is in it" list: each file name, then what it is, in aligned columns."""
    clip, entries = contents.clip, contents.entries
    record, message, raw = signature_files(contents.signature.head_idx)
    how = "re-encoded, as copying failed" if clip.reencoded else "without re-encoding"
    rows = [
        (
            CLIP,
            f"the time range as a video, cut from the segments below {how}; its first"
            f" frame is at {iso(clip.start)}",
        ),
        ("segments/*.ts", "the original recorded segments (MPEG-TS), byte for byte as stored:"),
        (
            TRANSCRIPT_JSON,
            "what was said in the range, whole utterances: each utterance and"
            " word with its UTC time, its offset in seconds from the stream start"
            f" ({contents.stream_start}) and its offset into clip.mp4",
        ),
        (TRANSCRIPT_SRT, "the same as subtitles for clip.mp4"),
        *readme_rows(contents.batches, contents.events),
        *(
            [("keyframes/*/*.jpg", "moments where on-screen text was read, as chained")]
            if contents.keyframes
            else []
        ),
        (
            "manifest/*.json",
            f"the stream's hash-chain entries {entries[0].idx} to"
            f" {entries[-1].idx}: each names the SHA-256 of its segment (or a gap in the"
            " recording, or the end of a recording session, with its reason) and, as"
            ' "prev", the SHA-256 of the entry before it',
        ),
        (record, "the signature of the chain head (the last entry), as stored"),
        (
            message,
            'the exact bytes it signs: its "payload" as canonical JSON (RFC 8785 when its'
            ' "v" is 2; records without "v": compact, keys sorted)',
        ),
        (raw, 'the raw Ed25519 signature: 64 bytes, its base64 "signature" decoded'),
        *_timestamp_rows(contents),
        (PUBLIC_KEY, "the public key of the LiveWitness installation that recorded it"),
        (PACKAGE_JSON, "a machine-readable description of all of this"),
        (SUMS, "the SHA-256 of every other file"),
        (SUMS_SIG, "the installation's Ed25519 signature of SHA256SUMS"),
    ]
    width = max(len(name) for name, _ in rows) + 2
    lines = []
    for name, text in rows:
        wrapped = textwrap.wrap(text, README_WIDTH - width) or [""]
        lines += [f"{name:<{width}}{wrapped[0]}", *(" " * width + more for more in wrapped[1:])]
        if name == "segments/*.ts":
            lines += [
                " " * width + f"{segment_file(s.seq)}  {iso(s.starts_at)}  {s.duration:.3f}s"
                for s in contents.covering
            ]
    return "\n".join(lines)


def _readme(contents: _Contents) -> str:
    signature = contents.signature
    _record, message, raw = signature_files(signature.head_idx)
    last = entry_file(signature.head_idx)
    return f"""LiveWitness evidence package
============================

Stream:        {contents.stream}
Time range:    {contents.since} to {contents.until} (UTC)
Created:       {contents.created_at}
Requested by:  {contents.requested_by or "-"}
Signing key:   {contents.key_id} (public_key.pem)

What is in it
-------------
{_file_list(contents)}

How to check it
---------------
You need sha256sum (GNU coreutils), grep, a POSIX shell and OpenSSL 3.0 or later. Unzip
the package, change into its directory and run each command shown after "$". Each
prints OK (or "Signature Verified Successfully") and exits with status 0 when the check
passes; when it fails it says what is wrong and exits with a non-zero status.

1. The key: pin it first. Steps 2 to 5 only show that the files agree with
   public_key.pem, which travels inside the package: whoever changes a package can sign
   it again with a key of their own (and rewrite this README). So get the signing key
   of the installation that recorded the stream apart from this package: its
   administrator runs `livewitness keys signing`, or anyone asks its API for
   GET /api/v1/signing-key (no API key needed). Its "key_id" must equal what this
   command prints (the first 16 hex digits of the SHA-256 of the raw 32-byte key, here
   {contents.key_id}), or its "public_key_pem" must equal public_key.pem. If they
   differ, the installation did not sign this package: stop, the checks below prove
   nothing about it.

    $ openssl pkey -pubin -in public_key.pem -outform DER | tail -c 32 | sha256sum | cut -c1-16

2. Every file is the one that was packaged: the installation signed the list of
   SHA-256 sums, and every file matches its sum.

    $ {_openssl_verify(SUMS, SUMS_SIG)}
    $ sha256sum -c SHA256SUMS

3. The segments are the recorded ones: the SHA-256 of each appears in a manifest entry.

    $ {_SEGMENTS_CHECK}
{readme_commands(contents.batches)}{KEYFRAMES_STEP if contents.keyframes else ""}
4. The entries form one chain: each holds, as "prev", the SHA-256 of the entry before it
   (the first one's "prev" is that of the entry before the package's range).

    $ {_CHAIN_CHECK}

5. The last entry is the signed chain head: its SHA-256 is the "head_sha256" in the
   signed message, and the signature of that message verifies with the key.

    $ {_head_check(last, message)}
    $ {_openssl_verify(message, raw)}
{_timestamp_step(contents)}
Together: the signature (made {iso(signature.signed_at)}) covers the head, the head's
links cover every entry before it, and the entries name every segment's SHA-256, so no
segment can have been changed, dropped or reordered since. The clip and the transcript
were made from these segments when the package was built; SHA256SUMS.sig covers them.

LiveWitness does all of this, the key included, with:
    livewitness verify-package --key-id <the installation's key id> <this zip>
"""


def _timestamp_rows(contents: _Contents) -> list[tuple[str, str]]:
    stamps = contents.stamps
    if stamps is None or not stamps.tokens:
        return []
    rows = [
        (
            t.file,
            f"an RFC 3161 time-stamp token over the signed message: {t.tsa} stamped it at"
            f" {t.gen_time} (serial {t.serial})",
        )
        for t in stamps.tokens
    ]
    if stamps.ca:
        rows.append((TSA_CA, "the CA certificates of the time-stamping authorities"))
    return rows


def _timestamp_step(contents: _Contents) -> str:
    """Step 6, when time-stamping authorities stamped the signed head."""
    stamps = contents.stamps
    if stamps is None or not stamps.tokens:
        return ""
    message = signature_files(contents.signature.head_idx)[1]
    intro = (
        "6. Trusted time. Time-stamping authorities (TSAs) outside the installation stamped"
        f" the signed message under RFC 3161: each token proves that the signed head, and"
        " through the chain every entry and segment before it, existed at the TSA's time."
        f" Each command checks that a token stamps the SHA-256 of {message} and that its"
        " signature and certificate chain verify against the TSAs' CA certificates; it"
        ' prints "Verification: OK". (openssl ts -reply -in <token> -text shows its'
        ' "Time stamp".)'
    )
    lines = textwrap.wrap(intro, README_WIDTH - 3, subsequent_indent="   ")
    if stamps.ca:
        lines += [
            "",
            f"   Make sure the certificates in {TSA_CA} are those the TSAs publish",
            "   (compare the fingerprints):",
            *("     " + line for cert in stamps.ca for line in cert.split("\n")),
            "",
            *(f"    $ {_ts_verify(message, t.file, TSA_CA)}" for t in stamps.tokens),
        ]
    else:
        lines += [
            "",
            "   The installation had no TSA CA certificates configured: get the TSA's CA",
            "   certificate from the TSA, save it as tsa-ca.pem and run for each token:",
            "",
            *(f"      {_ts_verify(message, t.file, 'tsa-ca.pem')}" for t in stamps.tokens),
        ]
    return "\n" + "\n".join(lines) + "\n"


def _ts_verify(message: str, token: str, ca: str) -> str:
    return f"openssl ts -verify -data {message} -in {token} -CAfile {ca}"


_SEGMENTS_CHECK = (
    'ok=1; for f in segments/*.ts; do h=$(sha256sum "$f" | cut -c1-64);'
    ' grep -qF "\\"sha256\\":\\"$h\\"" manifest/*.json'
    ' || { echo "$f is NOT in the manifest"; ok=0; }; done; [ $ok = 1 ] && echo "segments OK"'
)


def _openssl_verify(message: str, signature: str) -> str:
    return (
        f"openssl pkeyutl -verify -pubin -inkey {PUBLIC_KEY} -rawin -in {message}"
        f" -sigfile {signature}"
    )


def _head_check(head: str, message: str) -> str:
    return (
        f'grep -qF "\\"head_sha256\\":\\"$(sha256sum {head} | cut -c1-64)\\"" {message}'
        ' && echo "signed head OK"'
    )


_CHAIN_CHECK = (
    'ok=1; prev=; for e in manifest/*.json; do if [ -n "$prev" ]'
    ' && ! grep -qF "\\"prev\\":\\"$prev\\"" "$e"; then'
    ' echo "$e does NOT link to the entry before it"; ok=0; fi;'
    ' prev=$(sha256sum "$e" | cut -c1-64); done; [ $ok = 1 ] && echo "chain OK"'
)
