"""Cases: moments kept for a dispute, their signed notes, tags and corrections, and the
case's report and package. Every change and every read is audited."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Path, Query
from fastapi.responses import FileResponse, Response

from api.case_schemas import (
    CaseIn,
    CaseMomentIn,
    CaseMomentOut,
    CaseOut,
    CasePatch,
    CaseSummaryOut,
    OverlayIn,
    OverlayOut,
)
from api.deps import CaseManager, CaseReader, EvidenceViewer, ServicesDep, log_action
from api.links import moment_links
from core.timeutil import iso
from evidence.case_package import build_case_package, require_moments
from evidence.case_report import case_report_pdf
from evidence.cases import CaseView, add_moment, add_overlay, case_view, create_case, update_case
from storage.models import Case
from storage.scratch import new_scratch

router = APIRouter(tags=["cases"])
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MomentId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _summary(case: Case) -> CaseSummaryOut:
    return CaseSummaryOut(
        id=case.id,
        external_id=case.external_id,
        title=case.title,
        status=case.status,  # type: ignore[arg-type]  # "open" | "closed" by the catalog
        created_at=iso(case.created_at),
        updated_at=iso(case.updated_at),
        closed_at=iso(case.closed_at) if case.closed_at else None,
    )


def _case_out(view: CaseView) -> CaseOut:
    case = view.case
    moments = []
    for m in view.moments:
        moment_url, clip_url = moment_links(m.stream, m.moment.start_offset)
        moments.append(
            CaseMomentOut(
                id=m.moment.id,
                stream=m.stream,
                start_offset=m.moment.start_offset,
                end_offset=m.moment.end_offset,
                since=iso(m.moment.starts_at),
                until=iso(m.moment.ends_at),
                found_by=m.moment.found_by,
                matched=list(m.matched),
                tags=list(m.tags),
                created_at=iso(m.moment.created_at),
                created_by=m.moment.created_by,
                moment_url=moment_url,
                clip_url=clip_url,
                overlays=[
                    OverlayOut(
                        id=o.row.id,
                        kind=o.row.kind,  # type: ignore[arg-type]  # checked when signed
                        text=o.row.text,
                        author=o.row.author,
                        at=iso(o.row.at),
                        signature_ok=o.signature_ok,
                    )
                    for o in m.overlays
                ],
            )
        )
    summary = _summary(case)
    return CaseOut(
        **summary.model_dump(),
        created_by=case.created_by,
        updated_by=case.updated_by,
        holds=view.holds,
        moments=moments,
    )


@router.post("/cases", response_model=CaseOut, status_code=201)
def create(body: CaseIn, caller: CaseManager, services: ServicesDep) -> CaseOut:
    """Open a case (its moments' evidence is held while it is open)."""
    stores = services.stores
    case = create_case(stores, body.title, body.external_id, caller.actor)
    log_action(
        services,
        caller,
        "case.create",
        {"case": case.id, "title": case.title, "external_id": case.external_id},
    )
    return _case_out(case_view(stores, case.id))


@router.get("/cases", response_model=list[CaseSummaryOut])
def list_cases(
    caller: CaseReader,
    services: ServicesDep,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
) -> list[CaseSummaryOut]:
    return [_summary(c) for c in services.stores.catalog.cases(status)]


@router.get("/cases/{case_id}", response_model=CaseOut)
def show(case_id: CaseId, caller: CaseReader, services: ServicesDep) -> CaseOut:
    """A case, its moments and their overlays (each overlay's signature checked)."""
    view = case_view(services.stores, case_id)
    log_action(services, caller, "case.read", {"case": case_id})
    return _case_out(view)


@router.patch("/cases/{case_id}", response_model=CaseOut)
def patch(case_id: CaseId, body: CasePatch, caller: CaseManager, services: ServicesDep) -> CaseOut:
    """Change the title, status or external id. Closing releases the case's holds after
    case_hold_release_delay_seconds (unless another case holds the same evidence)."""
    stores = services.stores
    update_case(
        stores,
        case_id,
        caller.actor,
        title=body.title,
        status=body.status,
        external_id=body.external_id,
    )
    log_action(
        services, caller, "case.update", {"case": case_id, **body.model_dump(exclude_none=True)}
    )
    return _case_out(case_view(stores, case_id))


@router.post("/cases/{case_id}/moments", response_model=CaseOut, status_code=201)
def moment(
    case_id: CaseId, body: CaseMomentIn, caller: CaseManager, services: ServicesDep
) -> CaseOut:
    """Keep a stream's time range in the case and hold the evidence it draws on."""
    stores = services.stores
    added = add_moment(
        stores,
        case_id,
        body.stream,
        body.start_offset,
        body.end_offset,
        body.found_by,
        body.matched,
        caller.actor,
    )
    log_action(
        services,
        caller,
        "case.moment.add",
        {
            "case": case_id,
            "moment": added.id,
            "stream": body.stream,
            "start_offset": body.start_offset,
            "end_offset": body.end_offset,
            "found_by": added.found_by,
        },
    )
    return _case_out(case_view(stores, case_id))


def _overlay(
    kind: Literal["note", "tag", "correction"],
    case_id: int,
    moment_id: int,
    body: OverlayIn,
    caller: CaseManager,
    services: ServicesDep,
) -> OverlayOut:
    row = add_overlay(services.stores, case_id, moment_id, kind, body.text, caller.actor)
    log_action(
        services,
        caller,
        f"case.{kind}",
        {"case": case_id, "moment": moment_id, "overlay": row.id, "sha256": row.sha256},
    )
    return OverlayOut(
        id=row.id,
        kind=kind,
        text=row.text,
        author=row.author,
        at=iso(row.at),
        signature_ok=True,  # just signed
    )


@router.post(
    "/cases/{case_id}/moments/{moment_id}/notes", response_model=OverlayOut, status_code=201
)
def note(
    case_id: CaseId,
    moment_id: MomentId,
    body: OverlayIn,
    caller: CaseManager,
    services: ServicesDep,
) -> OverlayOut:
    """A reviewer's note on a moment: signed, kept apart from the evidence."""
    return _overlay("note", case_id, moment_id, body, caller, services)


@router.post(
    "/cases/{case_id}/moments/{moment_id}/tags", response_model=OverlayOut, status_code=201
)
def tag(
    case_id: CaseId,
    moment_id: MomentId,
    body: OverlayIn,
    caller: CaseManager,
    services: ServicesDep,
) -> OverlayOut:
    """A tag (one word, at most 64 characters) on a moment."""
    return _overlay("tag", case_id, moment_id, body, caller, services)


@router.post(
    "/cases/{case_id}/moments/{moment_id}/corrections",
    response_model=OverlayOut,
    status_code=201,
)
def correction(
    case_id: CaseId,
    moment_id: MomentId,
    body: OverlayIn,
    caller: CaseManager,
    services: ServicesDep,
) -> OverlayOut:
    """What a person hears was actually said ("actually said: 包邮"): shown beside the
    machine transcript, never replacing it."""
    return _overlay("correction", case_id, moment_id, body, caller, services)


@router.get(
    "/cases/{case_id}/report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The signed report."}},
)
def report(case_id: CaseId, caller: EvidenceViewer, services: ServicesDep) -> Response:
    """The case's signed PDF report (cover, then one page or more per moment)."""
    pdf = case_report_pdf(services.stores, case_id, generated_by=caller.actor)
    log_action(services, caller, "case.report", {"case": case_id, "bytes": len(pdf)})
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="case-{case_id}.pdf"'},
    )


@router.get(
    "/cases/{case_id}/package",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The package."}},
)
def package(
    case_id: CaseId, caller: EvidenceViewer, services: ServicesDep, background: BackgroundTasks
) -> FileResponse:
    """The case package: each moment's evidence package, the case's signed overlays
    (case.json) and report.pdf; `livewitness verify-package` checks it."""
    stores = services.stores
    require_moments(stores, case_id)  # 404 or 400 before any work
    workdir = new_scratch(stores.settings, "case-")
    out = workdir / f"case-{case_id}.zip"
    try:
        pdf = case_report_pdf(stores, case_id, generated_by=caller.actor)
        info = build_case_package(stores, case_id, out, caller.actor, report_pdf=pdf)
    except BaseException:
        _remove(workdir)
        raise
    background.add_task(_remove, workdir)
    log_action(
        services,
        caller,
        "case.export",
        {"case": case_id, "moments": info.moments, "sha256": info.sha256},
    )
    return FileResponse(info.path, media_type="application/zip", filename=out.name)


def _remove(path: FsPath) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
