"""``livewitness cases …`` (cases, their moments and signed overlays, report, package,
holds) and ``livewitness retention`` (what evidence has expired, and what is held).

Every change is audited as the operator, as the API audits a key's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.base import audit_cli, clean_errors, cli_actor, console, open_cli_stores
from core.errors import InvalidInputError
from core.timeutil import iso

if TYPE_CHECKING:
    from evidence.cases import CaseView

cases_app = typer.Typer(help="Cases: moments kept for a dispute, notes, report, package.")
commands = typer.Typer()  # `retention`, registered on the app by cli.main

CaseId = Annotated[int, typer.Argument(help="The case's id (as `cases list` prints it).")]
MomentId = Annotated[int, typer.Argument(help="The moment's id (as `cases show` prints it).")]
Output = Annotated[Path, typer.Option("--output", "-o", help="File to write.")]


def _check_id(value: int, what: str) -> int:
    if not 1 <= value <= 2**31 - 1:
        raise InvalidInputError(f"a {what} id is a positive number, not {value}")
    return value


@cases_app.command("create")
@clean_errors
def create_command(
    title: Annotated[str, typer.Argument(help="What the case is about.")],
    external_id: Annotated[
        str | None, typer.Option(help="The case system's id for it (unique).")
    ] = None,
) -> None:
    """Open a case."""
    from evidence.cases import create_case

    with open_cli_stores() as stores:
        case = create_case(stores, title, external_id, cli_actor())
        audit_cli(
            stores,
            "case.create",
            {"case": case.id, "title": case.title, "external_id": case.external_id},
        )
    console.print(f"case {case.id} opened: {case.title}", highlight=False)


@cases_app.command("list")
@clean_errors
def list_command(
    status: Annotated[str | None, typer.Option(help="open or closed.")] = None,
) -> None:
    """The cases, oldest first."""
    if status not in (None, "open", "closed"):
        raise InvalidInputError("--status is open or closed")
    with open_cli_stores() as stores:
        found = stores.catalog.cases(status)
    for case in found:
        external = f" [{case.external_id}]" if case.external_id else ""
        # Plain tab-separated lines: read by people and by scripts alike.
        print(f"{case.id}\t{case.status}\t{iso(case.updated_at)}\t{case.title}{external}")


@cases_app.command("show")
@clean_errors
def show_command(
    case_id: CaseId,
    as_json: Annotated[bool, typer.Option("--json", help="Print the case as JSON.")] = False,
) -> None:
    """A case: its moments, and beside each its notes, tags and corrections (each
    signature checked; they are not evidence)."""
    from evidence.case_package import case_json
    from evidence.cases import case_view

    with open_cli_stores() as stores:
        view = case_view(stores, _check_id(case_id, "case"))
        audit_cli(stores, "case.read", {"case": case_id})
        key_id = stores.chain.signer.key_id
    if as_json:
        print(json.dumps(case_json(view, key_id), ensure_ascii=False, indent=2))
        return
    _print_case(view)


def _print_case(view: CaseView) -> None:
    case = view.case
    external = f" [{case.external_id}]" if case.external_id else ""
    console.print(
        f"case {case.id}{external}: {case.title} ({case.status}; {view.holds} blobs held)",
        highlight=False,
        markup=False,
    )
    for m in view.moments:
        console.print(
            f"  moment {m.moment.id}: {m.stream} {m.moment.start_offset:.1f}-"
            f"{m.moment.end_offset:.1f}s ({iso(m.moment.starts_at)}), found by"
            f" {m.moment.found_by}",
            highlight=False,
            markup=False,
        )
        for o in m.overlays:
            mark = "signed" if o.signature_ok else "SIGNATURE DOES NOT VERIFY"
            console.print(
                f"    {o.row.kind} by {o.row.author} at {iso(o.row.at)} ({mark}): {o.row.text}",
                highlight=False,
                markup=False,
            )


@cases_app.command("add-moment")
@clean_errors
def add_moment_command(
    case_id: CaseId,
    stream: Annotated[str, typer.Option(help="Stream name.")],
    start: Annotated[float, typer.Option(help="Seconds from the stream start.")],
    end: Annotated[float, typer.Option(help="Seconds from the stream start.")],
    found_by: Annotated[str, typer.Option(help="What found it, e.g. 'search \"包邮\"'.")] = "cli",
    matched: Annotated[
        list[str] | None, typer.Option(help="A matched word (repeat for more).")
    ] = None,
) -> None:
    """Keep a stream's time range in a case and hold the evidence it draws on."""
    from evidence.cases import add_moment

    with open_cli_stores() as stores:
        moment = add_moment(
            stores,
            _check_id(case_id, "case"),
            stream,
            start,
            end,
            found_by,
            matched or [],
            cli_actor(),
        )
        audit_cli(
            stores,
            "case.moment.add",
            {
                "case": case_id,
                "moment": moment.id,
                "stream": stream,
                "start_offset": start,
                "end_offset": end,
                "found_by": moment.found_by,
            },
        )
        held = sum(1 for h in stores.catalog.case_holds(case_id) if h.released_at is None)
    console.print(f"moment {moment.id} added to case {case_id}; {held} blobs held", highlight=False)


def _overlay(kind: str, case_id: int, moment_id: int, text: str) -> None:
    from evidence.cases import add_overlay

    with open_cli_stores() as stores:
        row = add_overlay(
            stores,
            _check_id(case_id, "case"),
            _check_id(moment_id, "moment"),
            kind,
            text,
            cli_actor(),
        )
        audit_cli(
            stores,
            f"case.{kind}",
            {"case": case_id, "moment": moment_id, "overlay": row.id, "sha256": row.sha256},
        )
    console.print(
        f"{kind} {row.id} signed and kept beside moment {moment_id} (not evidence)",
        highlight=False,
    )


@cases_app.command("note")
@clean_errors
def note_command(case_id: CaseId, moment_id: MomentId, text: str) -> None:
    """A note on a moment (signed, kept apart from the evidence)."""
    _overlay("note", case_id, moment_id, text)


@cases_app.command("tag")
@clean_errors
def tag_command(case_id: CaseId, moment_id: MomentId, tag: str) -> None:
    """A tag on a moment (one word)."""
    _overlay("tag", case_id, moment_id, tag)


@cases_app.command("correct")
@clean_errors
def correct_command(
    case_id: CaseId,
    moment_id: MomentId,
    text: Annotated[str, typer.Argument(help='What was actually said, e.g. "包邮".')],
) -> None:
    """A transcript correction: shown beside the machine transcript, never replacing it."""
    _overlay("correction", case_id, moment_id, text)


def _set_status(case_id: int, status: str) -> None:
    from evidence.cases import update_case

    with open_cli_stores() as stores:
        update_case(stores, _check_id(case_id, "case"), cli_actor(), status=status)
        audit_cli(stores, "case.update", {"case": case_id, "status": status})
        delay = stores.settings.case_hold_release_delay_seconds
    if status == "closed":
        console.print(
            f"case {case_id} closed; its holds are released after {delay:g} s unless another"
            " case holds the same evidence",
            highlight=False,
        )
    else:
        console.print(f"case {case_id} reopened; its moments' evidence is held again")


@cases_app.command("close")
@clean_errors
def close_command(case_id: CaseId) -> None:
    """Close a case (its holds are released after case_hold_release_delay_seconds)."""
    _set_status(case_id, "closed")


@cases_app.command("reopen")
@clean_errors
def reopen_command(case_id: CaseId) -> None:
    """Reopen a closed case (its evidence is held again)."""
    _set_status(case_id, "open")


@cases_app.command("report")
@clean_errors
def report_command(case_id: CaseId, output: Output) -> None:
    """Write the case's signed PDF report."""
    from evidence.case_report import case_report_pdf

    with open_cli_stores() as stores:
        pdf = case_report_pdf(stores, _check_id(case_id, "case"), generated_by=cli_actor())
        output.write_bytes(pdf)
        audit_cli(stores, "case.report", {"case": case_id, "bytes": len(pdf)})
    console.print(f"{output}: {len(pdf)} bytes (signed PDF)", highlight=False)


@cases_app.command("export")
@clean_errors
def export_command(case_id: CaseId, output: Output) -> None:
    """Write the case package: each moment's evidence package, the signed overlays
    (case.json) and report.pdf. Check it with `livewitness verify-package FILE`."""
    from cli.export_notice import export_notice
    from evidence.case_package import build_case_package, require_moments

    with open_cli_stores() as stores:
        require_moments(stores, _check_id(case_id, "case"))
        from evidence.case_report import case_report_pdf  # pyHanko: a second to import

        pdf = case_report_pdf(stores, case_id, generated_by=cli_actor())
        info = build_case_package(stores, case_id, output, cli_actor(), report_pdf=pdf)
        audit_cli(
            stores, "case.export", {"case": case_id, "moments": info.moments, "sha256": info.sha256}
        )
    console.print(
        f"{info.moments} evidence packages, {info.overlays} signed overlays, report.pdf;"
        f" sha256 {info.sha256}",
        highlight=False,
    )
    console.print(export_notice(output, info.size, info.key_id), highlight=False)


@cases_app.command("holds")
@clean_errors
def holds_command() -> None:
    """Place the holds still to be placed and release those of cases closed longer
    than case_hold_release_delay_seconds (`serve` does this every minute)."""
    from storage.holds import run_holds

    with open_cli_stores() as stores:
        done = run_holds(
            stores.blobs, stores.catalog, stores.settings.case_hold_release_delay_seconds
        )
    console.print(
        f"holds: {done.applied} placed, {done.pending} still to place, {done.released}"
        f" released, {done.kept} kept for another case",
        highlight=False,
    )


@commands.command("retention")
@clean_errors
def retention_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON.")] = False,
) -> None:
    """Report the evidence older than retention_days and which of it cases hold.
    Report only: deleting a chained segment would break `verify` of its stream."""
    from storage.retention import retention_report

    with open_cli_stores() as stores:
        report = retention_report(stores.catalog, stores.settings.retention_days)
    if as_json:
        print(
            json.dumps(
                {
                    "cutoff": iso(report.cutoff) if report.cutoff else None,
                    "expired": list(report.expired),
                    "held": list(report.held),
                    "expired_bytes": report.expired_bytes,
                    "deleted": 0,
                }
            )
        )
        return
    if report.cutoff is None:
        console.print("retention_days is 0: evidence never expires; nothing to report")
        return
    console.print(
        f"before {iso(report.cutoff)}: {len(report.expired)} blobs expired"
        f" ({report.expired_bytes} bytes), {len(report.held)} held by cases and kept."
        " Nothing deleted: retention is report-only (deleting chained evidence would"
        " break verify)",
        highlight=False,
    )
