"""Cases (evidence/cases.py, api/routes/cases.py, cli/cases.py): moments kept for a
dispute, signed overlays that never touch evidence, legal holds and their release, the
audit of every change, the roles, and bad input as one readable line.

The API and CLI tests use synthetic transcripts stored the real way (tests/support/
searchdata.py); the package and report test records the real test video; the S3 test
runs against moto's server over HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client
from sqlalchemy import update

from core.settings import Settings
from core.timeutil import utc_now
from storage.blobs.protocol import sha256_file
from storage.blobs.s3 import S3BlobStore
from storage.blobs.spool import SpoolingBlobStore
from storage.chain import ClosedSegment
from storage.events import EventService
from storage.holds import apply_holds, run_holds
from storage.models import CaseOverlay
from storage.retention import retention_report
from storage.stores import Stores, open_stores
from tests.support.apiserver import ApiServer, running_api
from tests.support.cli import cli_in_process, run_cli
from tests.support.moments import record as record_video
from tests.support.s3server import MotoS3Server
from tests.support.searchdata import SEGMENT, T0

# Stream shop: three 10 s segments from T0 (bytes only: cases need no transcript).
SHOP = 3


def add_stream(stores: Stores, tmp: Path, name: str, count: int) -> None:
    stream_id = stores.chain.open_stream(name)
    for seq in range(count):
        path = tmp / f"{name}-{seq}.ts"
        path.write_bytes(os.urandom(256))
        start = T0 + timedelta(seconds=SEGMENT * seq)
        closed = ClosedSegment(path, sha256_file(path), 256, start, SEGMENT, f"t/{name}-{seq}")
        stores.chain.append_segment(stream_id, name, closed)


API = "/api/v1"


@pytest.fixture
def api(stores: Stores, tmp_path: Path) -> Iterator[ApiServer]:
    add_stream(stores, tmp_path, "shop", SHOP)
    with running_api(stores) as server:
        yield server


def audited(stores: Stores) -> list[tuple[str, str, dict[str, object]]]:
    return [(e.actor, e.action, json.loads(e.details)) for e in stores.catalog.audit_events()]


def test_a_case_keeps_moments_signed_notes_and_holds_over_the_api(api: ApiServer) -> None:
    stores = api.stores
    with api.client("reviewer") as reviewer:
        made = reviewer.post(f"{API}/cases", json={"title": "包邮 纠纷", "external_id": "AS-1"})
        assert made.status_code == 201, made.text
        case = made.json()
        assert (case["status"], case["moments"], case["holds"]) == ("open", [], 0)
        cid = case["id"]
        added = reviewer.post(
            f"{API}/cases/{cid}/moments",
            json={
                "stream": "shop",
                "start_offset": 21.0,
                "end_offset": 24.0,
                "found_by": 'search "包邮"',
                "matched": ["包邮"],
            },
        )
        assert added.status_code == 201, added.text
        (moment,) = added.json()["moments"]
        assert moment["since"] == "2026-11-20T12:00:21.000Z" and moment["matched"] == ["包邮"]
        assert moment["moment_url"].endswith("/streams/shop/moment?offset=21.000")
        mid = moment["id"]
        # The covering segment (seq 2), its manifest entry up to the signed head: held.
        segment = stores.catalog.segment(stores.catalog.get_stream("shop").id, 2)
        assert segment is not None and stores.blobs.held(segment.blob_key)
        first = stores.catalog.segment(stores.catalog.get_stream("shop").id, 0)
        assert first is not None and not stores.blobs.held(first.blob_key)
        assert added.json()["holds"] >= 2

        for kind, path, text in [
            ("note", "notes", "买家截图与此一致"),
            ("tag", "tags", "shipping"),
            ("correction", "corrections", "actually said: 包邮到家"),
        ]:
            answer = reviewer.post(f"{API}/cases/{cid}/moments/{mid}/{path}", json={"text": text})
            assert answer.status_code == 201, answer.text
            assert (answer.json()["kind"], answer.json()["text"]) == (kind, text)
        shown = reviewer.get(f"{API}/cases/{cid}").json()
        (moment,) = shown["moments"]
        assert moment["tags"] == ["shipping"]
        assert [(o["kind"], o["signature_ok"]) for o in moment["overlays"]] == [
            ("note", True),
            ("tag", True),
            ("correction", True),
        ]
        assert "reviewer" in moment["overlays"][0]["author"]

    # Overlays live under overlays/, apart from the evidence, and the transcript is as it was.
    overlay_keys = list(stores.blobs.list("overlays/"))
    assert len(overlay_keys) == 3 and not any(
        "overlays" in k for k in stores.blobs.list("streams/")
    )
    record = json.loads(stores.blobs.get_bytes(overlay_keys[0]))
    assert record["payload"]["author"] and record["payload"]["at"] and record["signature"]
    # A row changed behind the signature's back reads as not verified.
    with stores.catalog.session() as s:
        s.execute(update(CaseOverlay).where(CaseOverlay.kind == "note").values(text="改过的"))
    with api.client("compliance") as compliance:
        shown = compliance.get(f"{API}/cases/{cid}").json()
        assert [o["signature_ok"] for o in shown["moments"][0]["overlays"]] == [False, True, True]
        assert compliance.get(f"{API}/cases", params={"status": "open"}).json()[0]["id"] == cid
        # compliance reads, never writes; the admin does neither
        assert compliance.post(f"{API}/cases", json={"title": "x"}).status_code == 403
    with api.client("admin") as admin:
        assert admin.get(f"{API}/cases/{cid}").status_code == 403

    with api.client("case-system") as system:
        closed = system.patch(f"{API}/cases/{cid}", json={"status": "closed"})
        assert closed.status_code == 200 and closed.json()["closed_at"]
        refused = system.post(f"{API}/cases/{cid}/moments/{mid}/notes", json={"text": "late"})
        assert refused.status_code == 409 and "closed" in refused.json()["error"]
        assert system.get(f"{API}/cases", params={"status": "open"}).json() == []

    actions = [(action, details.get("case")) for _, action, details in audited(stores)]
    for action in (
        "case.create",
        "case.moment.add",
        "case.note",
        "case.tag",
        "case.correction",
        "case.read",
        "case.update",
    ):
        assert (action, cid) in actions, action


def test_bad_case_requests_get_one_json_line(api: ApiServer) -> None:
    with api.client("reviewer") as reviewer:
        cid = reviewer.post(f"{API}/cases", json={"title": "t", "external_id": "X-1"}).json()["id"]
        twice = reviewer.post(f"{API}/cases", json={"title": "t", "external_id": "X-1"})
        assert twice.status_code == 409 and "X-1" in twice.json()["error"]
        cases: list[tuple[str, str, dict[str, object], int]] = [
            ("POST", f"{API}/cases", {"title": "   "}, 400),
            ("POST", f"{API}/cases", {"title": "t", "external_id": "has space"}, 400),
            ("GET", f"{API}/cases/999", {}, 404),
            ("PATCH", f"{API}/cases/{cid}", {"status": "lost"}, 422),
            (
                "POST",
                f"{API}/cases/{cid}/moments",
                {"stream": "shop", "start_offset": 5, "end_offset": 2, "found_by": "x"},
                400,
            ),
            (
                "POST",
                f"{API}/cases/{cid}/moments",
                {"stream": "nope", "start_offset": 1, "end_offset": 2, "found_by": "x"},
                404,
            ),
            (
                "POST",
                f"{API}/cases/{cid}/moments",
                {"stream": "shop", "start_offset": 500, "end_offset": 510, "found_by": "x"},
                400,
            ),
            ("POST", f"{API}/cases/{cid}/moments/1/notes", {"text": "no moment"}, 404),
        ]
        for method, url, body, status in cases:
            answer = reviewer.request(method, url, json=body or None)
            assert answer.status_code == status, (method, url, body, answer.text)
            error = answer.json()["error"]
            assert error and "\n" not in error and "Traceback" not in error
        mid = reviewer.post(
            f"{API}/cases/{cid}/moments",
            json={"stream": "shop", "start_offset": 1, "end_offset": 2, "found_by": "x"},
        ).json()["moments"][0]["id"]
        spaced = reviewer.post(f"{API}/cases/{cid}/moments/{mid}/tags", json={"text": "a b"})
        assert spaced.status_code == 400


def test_holds_are_released_after_the_delay_unless_another_case_holds_them(
    stores: Stores, tmp_path: Path
) -> None:
    from evidence.cases import add_moment, create_case, update_case

    add_stream(stores, tmp_path, "shop", SHOP)
    one = create_case(stores, "one", None, "test")
    two = create_case(stores, "two", None, "test")
    add_moment(stores, one.id, "shop", 1.0, 12.0, "x", [], "test")  # segments 0 and 1
    add_moment(stores, two.id, "shop", 11.0, 12.0, "x", [], "test")  # segment 1
    seg0, seg1 = (stores.catalog.segment(stores.catalog.get_stream("shop").id, n) for n in (0, 1))
    assert seg0 is not None and seg1 is not None
    assert stores.blobs.held(seg0.blob_key) and stores.blobs.held(seg1.blob_key)
    # Retention (report only) keeps what is held and deletes nothing.
    old = retention_report(stores.catalog, 1.0, now=utc_now() + timedelta(days=3650))
    assert seg0.blob_key in old.held and seg1.blob_key in old.held
    unheld = stores.catalog.segment(stores.catalog.get_stream("shop").id, 2)
    assert unheld is not None and unheld.blob_key in old.expired
    assert stores.blobs.stat(unheld.blob_key) is not None
    assert retention_report(stores.catalog, 0.0).cutoff is None

    update_case(stores, one.id, "test", status="closed")
    delay = 3600.0
    early = run_holds(stores.blobs, stores.catalog, delay)
    assert (early.released, early.kept) == (0, 0) and stores.blobs.held(seg0.blob_key)
    later = run_holds(stores.blobs, stores.catalog, delay, now=utc_now() + timedelta(hours=2))
    assert not stores.blobs.held(seg0.blob_key)
    assert stores.blobs.held(seg1.blob_key)  # case two still holds it
    assert later.kept >= 1 and later.released >= 1
    # Reopening holds again.
    update_case(stores, one.id, "test", status="open")
    assert stores.blobs.held(seg0.blob_key)


def test_cases_cli(stores: Stores, tmp_path: Path) -> None:
    add_stream(stores, tmp_path, "shop", SHOP)
    home = stores.settings.home

    def cli(*args: str) -> str:
        result = cli_in_process(home, "cases", *args)
        assert result.exit_code == 0, (args, result.output)
        return result.output

    assert "case 1 opened" in cli("create", "羽绒服 纠纷", "--external-id", "AS-9")
    assert "1\topen" in cli("list", "--status", "open")
    out = cli(
        "add-moment", "1", "--stream", "shop", "--start", "3", "--end", "6",
        "--found-by", 'search "羽绒服"', "--matched", "羽绒服",
    )  # fmt: skip
    assert "moment 1 added to case 1" in out and "blobs held" in out
    assert "note 1 signed" in cli("note", "1", "1", "主播说了九十九元")
    cli("tag", "1", "1", "price")
    cli("correct", "1", "1", "actually said: 九十九")
    shown = cli("show", "1")
    assert "note by cli " in shown and "(signed): 主播说了九十九元" in shown
    assert "correction" in shown and "tag" in shown
    as_json = json.loads(cli("show", "1", "--json"))
    assert [o["signature_ok"] for o in as_json["moments"][0]["overlays"]] == [True] * 3
    assert "closed" in cli("close", "1")
    cli("create", "empty")
    assert "holds:" in cli("holds")
    assert "never expires" in cli_in_process(home, "retention").output
    for args, words in [
        (("show", "99"), "no case 99"),
        (("note", "1", "1", "late"), "closed"),
        (("add-moment", "0", "--stream", "shop", "--start", "1", "--end", "2"), "positive"),
        (("list", "--status", "lost"), "open or closed"),
        (("export", "2", "-o", str(tmp_path / "x.zip")), "no moments"),
    ]:
        result = cli_in_process(home, "cases", *args)
        assert result.exit_code == 2, (args, result.output)
        line = result.output.strip()
        assert words in line and "\n" not in line and "Traceback" not in line
    actions = [a for _, a, _ in audited(stores)]
    assert actions.count("case.update") == 1 and "case.note" in actions
    assert all(actor.startswith("cli ") for actor, a, _ in audited(stores) if a.startswith("case"))


def test_a_legal_hold_on_s3_refuses_deletion_until_the_closed_case_is_released(
    s3_settings: Callable[..., Settings], s3_client: S3Client, s3_bucket: str, tmp_path: Path
) -> None:
    from evidence.cases import add_moment, create_case, update_case

    settings = s3_settings(home=tmp_path / "home", case_hold_release_delay_seconds=600.0)
    with open_stores(settings) as stores:
        add_stream(stores, tmp_path, "shop", SHOP)
        case = create_case(stores, "s3", None, "test")
        add_moment(stores, case.id, "shop", 12.0, 14.0, 'search "包邮"', ["包邮"], "test")
        segment = stores.catalog.segment(stores.catalog.get_stream("shop").id, 1)
        assert segment is not None
        version = s3_client.head_object(Bucket=s3_bucket, Key=segment.blob_key)["VersionId"]
        hold = s3_client.get_object_legal_hold(
            Bucket=s3_bucket, Key=segment.blob_key, VersionId=version
        )
        assert hold["LegalHold"]["Status"] == "ON"
        with pytest.raises(ClientError) as refused:
            s3_client.delete_object(Bucket=s3_bucket, Key=segment.blob_key, VersionId=version)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"

        update_case(stores, case.id, "test", status="closed")
        # Within the delay nothing is released: still refused.
        assert run_holds(stores.blobs, stores.catalog, 600.0).released == 0
        with pytest.raises(ClientError):
            s3_client.delete_object(Bucket=s3_bucket, Key=segment.blob_key, VersionId=version)
        # The delay passed: released, and the version can be deleted.
        done = run_holds(stores.blobs, stores.catalog, 600.0, now=utc_now() + timedelta(hours=1))
        assert done.released >= 2  # the segment and its manifest entry, at least
        assert not stores.blobs.held(segment.blob_key)
        s3_client.delete_object(Bucket=s3_bucket, Key=segment.blob_key, VersionId=version)
        assert stores.blobs.stat(segment.blob_key) is None


def test_the_case_package_holds_each_moment_the_overlays_and_the_report(
    stores: Stores, test_video: Path, tmp_path: Path
) -> None:
    record_video(stores, test_video)
    # The live room around the first moment (7-10 s): a product card and a chat exchange.
    events = EventService(stores)
    events.limits = replace(events.limits, max_past=timedelta(days=36500))  # T0 is fixed
    at = [(T0 + timedelta(seconds=s)).isoformat() for s in (2, 6, 8)]
    report = events.ingest_values(
        stores.catalog.get_stream("shop").id,
        [
            {"id": "c1", "kind": "product_card", "at": at[0], "action": "shown",
             "title": "羽绒服", "price": 99, "sku": "A1"},
            {"id": "m1", "kind": "chat", "at": at[1], "user": "买家甲", "text": "包邮吗?"},
            {"id": "m2", "kind": "chat", "at": at[2], "user": "主播", "text": "包邮!"},
        ],
        limited=False,
    )  # fmt: skip
    assert report.accepted == 3, report
    with running_api(stores) as server, server.client("reviewer") as reviewer:
        cid = reviewer.post(f"{API}/cases", json={"title": "包邮 承诺"}).json()["id"]
        for start, end in [(7.0, 10.0), (13.4, 15.0)]:
            body = {"stream": "shop", "start_offset": start, "end_offset": end, "found_by": "x"}
            assert reviewer.post(f"{API}/cases/{cid}/moments", json=body).status_code == 201
        mid = reviewer.get(f"{API}/cases/{cid}").json()["moments"][0]["id"]
        note = {"text": "actually said: 包邮到家"}
        reviewer.post(f"{API}/cases/{cid}/moments/{mid}/corrections", json=note)
        pdf = reviewer.get(f"{API}/cases/{cid}/report.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        package = reviewer.get(f"{API}/cases/{cid}/package")
        assert package.status_code == 200, package.text
        with server.client("compliance") as compliance:  # reads cases, exports nothing
            assert compliance.get(f"{API}/cases/{cid}/package").status_code == 403
    zipped = tmp_path / "case.zip"
    zipped.write_bytes(package.content)
    with zipfile.ZipFile(zipped) as archive:
        names = set(archive.namelist())
        described = json.loads(archive.read("case.json"))
        assert archive.read("report.pdf").startswith(b"%PDF")
    assert {"case.json", "report.pdf", "moments/001.zip", "moments/002.zip"} <= names
    (overlay,) = described["moments"][0]["overlays"]
    assert overlay["kind"] == "correction" and overlay["signature_ok"] is True
    assert overlay["signed"]["payload"]["text"] == "actually said: 包邮到家"
    key_id = stores.chain.signer.key_id
    checked = run_cli(stores.settings.home, "verify-package", str(zipped), "--key-id", key_id)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout and "2 evidence packages" in checked.stdout
    assert "1 of 1 overlays signed" in checked.stdout
    # A changed note (re-listed in SHA256SUMS but not re-signed) is caught.
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(forged, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "case.json":
                data = data.replace("包邮到家".encode(), "不包邮".encode())
            dst.writestr(info, data)
    refused = run_cli(stores.settings.home, "verify-package", str(forged), "--key-id", key_id)
    assert refused.returncode == 1 and "case.json" in refused.stderr
    made = cli_in_process(
        stores.settings.home, "cases", "report", "1", "-o", str(tmp_path / "c.pdf")
    )
    assert made.exit_code == 0, made.output
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    exported = cli_in_process(stores.settings.home, "cases", "export", "1", "-o", str(zipped))
    assert exported.exit_code == 0, exported.output
    assert f"verify-package --key-id {key_id} {zipped}" in exported.output
    with zipfile.ZipFile(zipped) as archive:
        assert {"case.json", "report.pdf", "moments/002.zip"} <= set(archive.namelist())
    actions = [a for _, a, _ in audited(stores)]
    assert actions.count("case.report") == 2 and actions.count("case.export") == 2
    # The report shows the room beside the first moment: the card on screen, the chat.
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not found (apt-get install poppler-utils): room events unread")
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "c.pdf"), "-"], capture_output=True, check=True
    ).stdout.decode()
    assert "羽绒服 ¥99 (SKU A1)" in text and "买家甲: 包邮吗?" in text and "主播: 包邮!" in text


def test_a_hold_the_store_cannot_take_yet_is_placed_by_the_hold_task(
    stores: Stores,
    s3_settings: Callable[..., Settings],
    s3_server: MotoS3Server,
    s3_client: S3Client,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    key = "streams/shop/segments/00000001.ts"
    s3 = S3BlobStore.from_settings(s3_settings(), backoff_seconds=0.01)
    spool = SpoolingBlobStore(s3, tmp_path / "spool", retry_seconds=0.05)
    try:
        s3_server.stop()
        spool.put_bytes(key, b"evidence")  # S3 is down: spooled
        case = stores.catalog.add_case("outage", None, "test")
        pending = stores.catalog.add_holds(case.id, [key])
        assert apply_holds(spool, stores.catalog, pending) == 0  # kept to retry
        assert len(stores.catalog.unapplied_holds()) == 1
        s3_server.start()
        assert spool.flush(20)
        done = run_holds(spool, stores.catalog, 60.0)
        assert (done.applied, done.pending) == (1, 0)
        assert (
            s3_client.get_object_legal_hold(Bucket=s3_bucket, Key=key)["LegalHold"]["Status"]
            == "ON"
        )
    finally:
        s3_server.start()
        spool.close()


def test_on_a_bucket_without_object_lock_holds_stay_recorded_and_are_released(
    stores: Stores, s3_settings: Callable[..., Settings], s3_client: S3Client
) -> None:
    bucket = f"lw-nolock-{os.urandom(6).hex()}"
    s3_client.create_bucket(Bucket=bucket)
    s3 = S3BlobStore.from_settings(s3_settings(s3_bucket=bucket), backoff_seconds=0.01)
    key = "streams/shop/segments/00000001.ts"
    s3.put_bytes(key, b"evidence")
    case = stores.catalog.add_case("no lock", None, "test")
    assert apply_holds(s3, stores.catalog, stores.catalog.add_holds(case.id, [key])) == 0
    assert stores.catalog.held_blob_keys() == {key}  # retention still keeps it
    stores.catalog.update_case(case.id, "test", status="closed")
    done = run_holds(s3, stores.catalog, 0.0, now=utc_now() + timedelta(seconds=1))
    assert done.released == 1 and stores.catalog.held_blob_keys() == set()
