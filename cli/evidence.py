"""``livewitness clip|package|verify-package``: take moments and evidence away, and check
an evidence package anywhere (``verify-package`` needs no data directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cli.base import clean_errors, console, open_cli_stores
from core.errors import InvalidInputError
from core.timeutil import iso, parse_iso

Output = Annotated[Path, typer.Option("--output", "-o", help="File to write.")]
StreamName = Annotated[str, typer.Option("--stream", help="Stream name.")]


commands = typer.Typer()  # registered on the app by cli.main


@commands.command("clip")
@clean_errors
def clip_command(
    stream: StreamName,
    offset: Annotated[float, typer.Option(help="The moment: seconds from the stream start.")],
    output: Output,
    before: Annotated[float, typer.Option(help="Seconds before the moment.")] = 10.0,
    after: Annotated[float, typer.Option(help="Seconds after the moment.")] = 20.0,
    reencode: Annotated[
        bool, typer.Option(help="Re-encode to start exactly where asked, not on a key frame.")
    ] = False,
) -> None:
    """Cut a playable MP4 around a moment from the original segments."""
    from evidence.moments import cut_clip, stream_offset_to_time, time_to_stream_offset

    with open_cli_stores() as stores:
        at = stream_offset_to_time(stores, stream, offset)
        info = cut_clip(stores, stream, at, before, after, output, reencode=reencode)
        start_offset = time_to_stream_offset(stores, stream, info.start)
    how = "re-encoded" if info.reencoded else "stream copy"
    console.print(
        f"{output}: {info.duration:.2f}s ({how}) from {iso(info.start)} (offset"
        f" {start_offset:.3f}s), segments {_seqs(info.segments)}; the moment is"
        f" {info.at_offset:.3f}s in",
        highlight=False,
    )


@commands.command("package")
@clean_errors
def package_command(
    stream: StreamName,
    since: Annotated[str, typer.Option(help="From this time (ISO 8601 with zone).")],
    until: Annotated[str, typer.Option(help="Until this time (ISO 8601 with zone).")],
    output: Output,
    requested_by: Annotated[
        str | None, typer.Option(help="Who asked for it (recorded in the package).")
    ] = None,
) -> None:
    """Export an evidence package (zip): clip, original segments, transcript, manifest
    entries, signatures and a README on checking it with sha256sum and openssl."""
    from evidence.package import build_package

    start, end = parse_iso(since), parse_iso(until)
    with open_cli_stores() as stores:
        info = build_package(stores, stream, start, end, output, requested_by=requested_by)
    console.print(
        f"{output}: {info.size} bytes, sha256 {info.sha256}\n"
        f"segments {_seqs(info.segments)}, manifest entries {info.entries[0]}-{info.entries[1]}"
        f" (head signed by key {info.key_id}), {info.utterances} utterances,"
        f" clip {info.clip.duration:.2f}s from {iso(info.clip.start)}",
        highlight=False,
    )


@commands.command("verify-package")
@clean_errors
def verify_package_command(
    file: Annotated[Path, typer.Argument(help="An evidence package (zip).")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="PEM public key the package must be signed with (pins the key)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check an evidence package offline: every file against SHA256SUMS and its
    signature, the segments against the manifest, the chain and the signed head."""
    from evidence.package_verify import verify_package

    report = verify_package(file, _load_public_key(public_key) if public_key else None)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "stream": report.stream,
                    "since": iso(report.since),
                    "until": iso(report.until),
                    "created_at": iso(report.created_at),
                    "requested_by": report.requested_by,
                    "files": report.files,
                    "segments": report.segments,
                    "entries": list(report.entries),
                    "head_sha256": report.head_sha256,
                    "key_id": report.key_id,
                    "bytes_checked": report.bytes_checked,
                },
                ensure_ascii=False,
            )
        )
        return
    console.print(
        f"[bold green]OK[/] {file}: stream {report.stream}, {iso(report.since)} to"
        f" {iso(report.until)}; {report.files} files, segments {_seqs(report.segments)},"
        f" manifest entries {report.entries[0]}-{report.entries[1]}, head signed by key"
        f" {report.key_id}; {report.bytes_checked} bytes checked",
        highlight=False,
    )


def _seqs(seqs: list[int]) -> str:
    return f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0])


def _load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        loaded = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError):
        raise InvalidInputError(f"cannot read a PEM public key from {path}") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise InvalidInputError(f"{path} is not an Ed25519 public key")
    return loaded
