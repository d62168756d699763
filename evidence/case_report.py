"""A catalog case as the report renders it (:class:`evidence.report.ReportCase`), and
its PDF: the case routes, CLI and case packages call :func:`case_report_pdf`."""

from __future__ import annotations

from evidence.cases import CaseView, case_view
from evidence.report import ReportCase, ReportMoment, ReportNote, render_case_report
from storage.stores import Stores


def report_case(view: CaseView) -> ReportCase:
    return ReportCase(
        id=view.case.id,
        external_id=view.case.external_id,
        title=view.case.title,
        status=view.case.status,
        moments=tuple(
            ReportMoment(
                stream=m.stream,
                start_offset=m.moment.start_offset,
                end_offset=m.moment.end_offset,
                found_by=m.moment.found_by,
                matched=m.matched,
                tags=m.tags,
                notes=tuple(
                    ReportNote(
                        kind=o.row.kind,
                        text=o.row.text,
                        author=o.row.author,
                        at=o.row.at,
                        signature_ok=o.signature_ok,
                    )
                    for o in m.overlays
                    if o.row.kind != "tag"
                ),
            )
            for m in view.moments
        ),
    )


def case_report_pdf(stores: Stores, case_id: int, generated_by: str) -> bytes:
    """The case's signed PDF report (the caller audits the read)."""
    return render_case_report(
        stores, report_case(case_view(stores, case_id)), generated_by=generated_by
    )
