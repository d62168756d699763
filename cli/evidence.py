"""``livewitness clip|package|verify-package``: take moments and evidence away, and check
an evidence package anywhere (``verify-package`` needs no data directory).

``verify-package`` exits 0 when the package is consistent and signed by a trusted key,
1 when evidence does not match or the signer is not the trusted key, 2 on bad input and
3 when the package is consistent but nothing says its signer is trusted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.base import audit_cli, clean_errors, console, open_cli_stores
from cli.export_notice import export_notice
from core.errors import InvalidInputError
from core.settings import Settings
from core.timeutil import iso, parse_iso

if TYPE_CHECKING:
    from evidence.package_verify import TrustAnchor

# A package consistent in itself whose signer nothing vouches for: not OK, not tampered.
UNTRUSTED_EXIT = 3

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
        audit_cli(
            stores,
            "moment.clip",
            {"stream": stream, "offset": offset, "before": before, "after": after},
        )
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
        audit_cli(
            stores,
            "export",
            {"stream": stream, "since": iso(start), "until": iso(end), "sha256": info.sha256},
        )
    console.print(
        f"{output}: {info.size} bytes, sha256 {info.sha256}\n"
        f"segments {_seqs(info.segments)}, manifest entries {info.entries[0]}-{info.entries[1]}"
        f" (head signed by key {info.key_id}), {info.utterances} utterances,"
        f" clip {info.clip.duration:.2f}s from {iso(info.clip.start)}",
        highlight=False,
    )
    console.print(export_notice(output, info.size, info.key_id), highlight=False)


@commands.command("verify-package")
@clean_errors
def verify_package_command(
    file: Annotated[Path, typer.Argument(help="An evidence package (zip).")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="PEM public key the package must be signed with (pins the key)."),
    ] = None,
    key_id: Annotated[
        str | None,
        typer.Option(
            help="Key id (16 hex digits) the package must be signed with, as the"
            " installation's `keys signing` or GET /api/v1/signing-key prints it."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check an evidence package offline: every file against SHA256SUMS and its
    signature, the segments against the manifest, the chain and the signed head; and its
    signer against --public-key, --key-id or the trusted_signing_keys setting. Exit
    codes: 0 consistent and trusted, 1 evidence does not match or another signer, 2 bad
    input, 3 consistent but its signer is not trusted (no key to check it against)."""
    from evidence.package_verify import (
        key_id_anchor,
        public_key_anchor,
        trust_store_anchor,
        verify_package,
    )

    if public_key is not None and key_id is not None:
        raise InvalidInputError("give --public-key or --key-id, not both")
    anchor: TrustAnchor | None
    if public_key is not None:
        anchor = public_key_anchor(public_key)
    elif key_id is not None:
        anchor = key_id_anchor(key_id)
    else:
        store = Settings().trusted_signing_keys
        anchor = trust_store_anchor(store) if store is not None else None
    from evidence.case_package import is_case_package

    if is_case_package(file):  # a case's package: its moments' packages inside
        _verify_case_package(file, anchor, as_json)
        return
    report = verify_package(file, anchor)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.trusted,
                    "consistent": True,
                    "trusted": report.trusted,
                    "anchor": report.anchor,
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
    else:
        what = (
            f"{file}: stream {report.stream}, {iso(report.since)} to {iso(report.until)};"
            f" {report.files} files, segments {_seqs(report.segments)}, manifest entries"
            f" {report.entries[0]}-{report.entries[1]}, head signed by key {report.key_id}"
        )
        if report.trusted:
            console.print(
                f"[bold green]OK[/] {what} (trusted: {report.anchor});"
                f" {report.bytes_checked} bytes checked",
                highlight=False,
            )
        else:
            console.print(
                f"[bold yellow]UNTRUSTED[/] {what}: consistent in itself, but nothing says"
                f" key {report.key_id} is the installation's; pin it with --key-id or"
                " --public-key from its `livewitness keys signing` or GET /api/v1/signing-key",
                highlight=False,
            )
    if not report.trusted:
        raise typer.Exit(UNTRUSTED_EXIT)


def _verify_case_package(file: Path, anchor: TrustAnchor | None, as_json: bool) -> None:
    from evidence.case_package import verify_case_package

    report = verify_case_package(file, anchor)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.trusted,
                    "consistent": True,
                    "trusted": report.trusted,
                    "anchor": report.anchor,
                    "case": report.case_id,
                    "key_id": report.key_id,
                    "packages": [
                        {"stream": p.stream, "since": iso(p.since), "until": iso(p.until)}
                        for p in report.packages
                    ],
                    "overlays": report.overlays,
                    "overlays_signed": report.overlays_ok,
                    "report": report.report,
                },
                ensure_ascii=False,
            )
        )
    else:
        what = (
            f"{file}: case {report.case_id}, {len(report.packages)} evidence packages"
            f" ({', '.join(p.stream for p in report.packages)}), {report.overlays_ok} of"
            f" {report.overlays} overlays signed (not evidence), signed by key {report.key_id}"
        )
        if report.trusted:
            console.print(f"[bold green]OK[/] {what} (trusted: {report.anchor})", highlight=False)
        else:
            console.print(
                f"[bold yellow]UNTRUSTED[/] {what}: consistent in itself; pin the key with"
                " --key-id or --public-key",
                highlight=False,
            )
    if not report.trusted:
        raise typer.Exit(UNTRUSTED_EXIT)


def _seqs(seqs: list[int]) -> str:
    return f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0])
