"""The HTTP API over real HTTP: roles on every route (walked from the OpenAPI schema),
keys, the audit log, limits, refused sources, search with links to the moment."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from indexer.factory import open_search_index
from indexer.service import Indexer
from recorder.supervisor import RecordingSupervisor
from storage.api_keys import ROLES
from storage.stores import Stores, open_stores
from tests.support.apiserver import ApiServer, running_api
from tests.support.cli import run_cli
from tests.support.livesource import LiveHlsSource
from tests.support.searchdata import SHOP, add_stream

PARAMS = {
    "name": "shop",
    "seq": "0",
    "key_id": "1",
    "webhook_id": "1",
    "case_id": "1",
    "moment_id": "1",
    "sha256": "0" * 64,
}
# Routes anyone may call: the health check, and the public key packages are pinned to.
PUBLIC = {("GET", "/api/v1/health"), ("GET", "/api/v1/signing-key")}


@pytest.fixture
def api(stores: Stores, tmp_path: Path) -> Iterator[ApiServer]:
    add_stream(stores, tmp_path, "shop", SHOP)
    index = open_search_index(stores)
    Indexer(stores, index).index_pending()
    index.close()
    with running_api(stores) as server:
        yield server


def operations(server: ApiServer) -> list[tuple[str, str, list[str]]]:
    schema = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            found.append((method.upper(), path, operation.get("x-roles")))
    return found


def test_every_route_needs_a_key_and_the_right_role(api: ApiServer) -> None:
    walked = 0
    for method, path, roles in operations(api):
        url = path.format(**PARAMS)
        if roles is None:
            assert (method, path) in PUBLIC, f"{method} {path} has no role check"
            with api.client() as anonymous:
                assert anonymous.request(method, url).status_code == 200, (method, path)
            continue
        assert set(roles) <= set(ROLES)
        with api.client() as anonymous:
            refused = anonymous.request(method, url)
            assert refused.status_code == 401, (method, path, refused.text)
            assert "API key" in refused.json()["error"]
            forged = anonymous.request(method, url, headers={"X-API-Key": "lw_not-a-real-key"})
            assert forged.status_code == 401
        for role in set(ROLES) - set(roles):
            with api.client(role) as wrong:
                answer = wrong.request(method, url)
                assert answer.status_code == 403, (method, path, role, answer.text)
        walked += 1
    assert walked >= 20


def test_bearer_and_header_keys_and_revocation(api: ApiServer) -> None:
    made = run_cli(
        api.stores.settings.home, "keys", "create", "--role", "reviewer", "--name", "anna"
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("lw_")
    bearer = httpx.get(
        f"{api.url}/api/v1/search", params={"q": "包邮"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert bearer.status_code == 200 and bearer.json()["total"] >= 1
    both = {"X-API-Key": api.keys["reviewer"], "Authorization": f"Bearer {key}"}
    conflicting = httpx.get(f"{api.url}/api/v1/streams", headers=both)
    assert conflicting.status_code == 401 and "two different" in conflicting.json()["error"]
    me = httpx.get(f"{api.url}/api/v1/me", headers={"X-API-Key": key}).json()
    assert (me["role"], me["name"], me["revoked_at"]) == ("reviewer", "anna", None)
    listed = run_cli(api.stores.settings.home, "keys", "list")
    assert "anna" in listed.stdout and key not in listed.stdout  # only its hash is kept
    key_id = next(k.id for k in api.stores.catalog.api_keys() if k.name == "anna")
    with api.client("admin") as admin:
        assert admin.delete(f"/api/v1/keys/{key_id}").json()["revoked_at"]
    revoked = httpx.get(
        f"{api.url}/api/v1/search", params={"q": "包邮"}, headers={"X-API-Key": key}
    )
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]


def test_search_hits_link_to_their_moment_and_every_access_is_audited(api: ApiServer) -> None:
    with api.client("reviewer") as reviewer:
        found = reviewer.get("/api/v1/search", params={"q": "假一赔十", "stream": "shop"}).json()
        (hit,) = [h for h in found["hits"] if h["match"] == "exact"]
        assert hit["text"] == "全网最低价假一赔十" and "<mark>" in hit["highlighted"]
        assert hit["banned"] == ["false_price"] and found["total_relation"] == "eq"
        # The moment is where 假一赔十 itself is said: the utterance's 6th word, 0.2 s apart.
        assert hit["match_offset"] == pytest.approx(hit["offset"] + 1.0)
        assert hit["match_end_offset"] == pytest.approx(hit["offset"] + 1.6 + 0.18)
        assert f"offset={hit['match_offset']:.3f}" in hit["moment_url"]
        moment = reviewer.get(hit["moment_url"])
        assert moment.status_code == 200, moment.text
        body = moment.json()
        assert body["at"] == hit["match_start"]
        assert "全网最低价假一赔十" in [u["text"] for u in body["transcript"]]
    with api.client("admin") as admin:
        events = admin.get("/api/v1/audit").json()
        actions = [(e["action"], e["role"]) for e in events]
        assert ("search", "reviewer") in actions and ("moment.view", "reviewer") in actions
        search_event = next(e for e in events if e["action"] == "search")
        assert search_event["details"]["q"] == "假一赔十"
        assert admin.get("/api/v1/audit/verify").json() == {
            "events": len(events),
            "ok": True,
            "first_bad_seq": None,
            "problem": None,
            "heads": 0,  # fewer events than audit_sign_every_events: none signed yet
            "signed_seq": None,
            "timestamps": 0,  # no TSA configured
        }
    # Someone with database access rewrites what was searched: the chain shows it.
    with sqlite3.connect(api.stores.settings.home / "catalog.sqlite3") as db:
        db.execute(
            "UPDATE audit_events SET details = ? WHERE seq = ?",
            (json.dumps({"q": "别的"}), search_event["seq"]),
        )
    with api.client("admin") as admin:
        check = admin.get("/api/v1/audit/verify").json()
        assert check["ok"] is False and check["first_bad_seq"] == search_event["seq"]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"q": "包邮" * 101}, 422, "at most 200"),
        ({"q": "包邮", "size": 101}, 422, "less than or equal to 100"),
        ({"q": "包邮", "page": 11, "size": 100}, 400, "first 1000 hits"),
        ({"q": "x"}, 400, "at least two"),
        (
            {"q": "包邮", "since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            400,
            "at most 366 days",
        ),
        ({"q": "包邮", "since": "yesterday"}, 400, "not an ISO 8601 time"),
        ({"q": "包邮", "since": "2026-01-01T00:00:00"}, 400, "no time zone"),
    ],
)
def test_bad_searches_get_a_clear_4xx(
    api: ApiServer, params: dict[str, Any], status: int, message: str
) -> None:
    with api.client("reviewer") as reviewer:
        answer = reviewer.get("/api/v1/search", params=params)
    assert answer.status_code == status, answer.text
    assert message in answer.text


def test_bodies_are_limited(api: ApiServer) -> None:
    with api.client("admin") as admin:
        huge = {"name": "x", "source": "rtmp://1.1.1.1/live/" + "a" * 400_000}
        answer = admin.post("/api/v1/streams", json=huge)
        assert answer.status_code == 413 and "larger than" in answer.json()["error"]
        broken = admin.post(
            "/api/v1/streams", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 422


def test_each_key_is_rate_limited(home: Path, tmp_path: Path) -> None:
    settings = Settings(home=home, rate_limit_per_second=0.5, rate_limit_burst=3)
    with open_stores(settings) as stores, running_api(stores) as server:
        with server.client("reviewer") as reviewer:
            answers = [reviewer.get("/api/v1/streams").status_code for _ in range(5)]
            assert answers[:3] == [200, 200, 200] and answers[3:] == [429, 429]
            limited = reviewer.get("/api/v1/streams")
            assert int(limited.headers["Retry-After"]) >= 1
        with server.client("admin") as admin:  # another key has its own bucket
            assert admin.get("/api/v1/streams").status_code == 200


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://127.0.0.1:8080/live.m3u8", "loopback"),
        ("rtmp://localhost/live/x", "loopback"),
        ("rtmp://10.1.2.3/live/x", "private"),
        ("http://192.168.1.20/x.flv", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:8080/x.m3u8", "loopback"),
        ("http://[::ffff:127.0.0.1]/x.m3u8", "loopback"),
        ("http://100.100.100.200/x.flv", "shared address"),
        ("/etc/passwd", "only network sources"),
        ("file:///etc/passwd", "cannot be recorded from the API"),
        ("gopher://127.0.0.1:6379/_INFO", "cannot be recorded from the API"),
        ("concat:/etc/passwd|/etc/hosts", "cannot be recorded from the API"),
    ],
)
def test_sources_inside_our_network_are_refused(home: Path, source: str, message: str) -> None:
    # The default egress policy (the tests' own settings allow loopback: conftest.py).
    with (
        open_stores(Settings(home=home, egress_allow=[])) as stores,
        running_api(stores) as api,
        api.client("admin") as admin,
    ):
        answer = admin.post("/api/v1/streams", json={"name": "probe", "source": source})
        assert answer.status_code == 400, answer.text
        assert message in answer.json()["error"]
        assert "probe" not in [s.name for s in api.stores.catalog.list_streams()]


def test_starting_and_stopping_marks_what_recorders_must_do(api: ApiServer) -> None:
    with api.client("admin") as admin:
        started = admin.post(
            "/api/v1/streams",
            json={
                "name": "room-1",
                "source": "rtmp://1.1.1.1/live/room-1",
                "streamer": "小美",
                "language": "zh",
                "products": [{"name": "羽绒服", "aliases": ["羽绒外套"], "price": 99}],
            },
        )
        assert started.status_code == 201, started.text
        assert started.json()["wanted"] is True and started.json()["streamer"] == "小美"
        products = admin.get("/api/v1/streams/room-1/products").json()
        assert products[0]["aliases"] == ["羽绒外套"]
        stopped = admin.post("/api/v1/streams/room-1/stop").json()
        assert stopped["wanted"] is False
        assert admin.post("/api/v1/streams/nope/stop").status_code == 404
        bad_name = admin.post(
            "/api/v1/streams", json={"name": "../x", "source": "rtmp://1.1.1.1/a"}
        )
        assert bad_name.status_code == 422 and bad_name.json()["detail"][0]["loc"][-1] == "name"
        actions = [e["action"] for e in admin.get("/api/v1/audit").json()]
        assert actions.count("stream.start") == 1 and "stream.stop" in actions


@pytest.mark.slow
def test_a_stream_started_through_the_api_is_recorded_and_stopped(
    home: Path, live_source: LiveHlsSource
) -> None:
    settings = Settings(home=home, allow_loopback_sources=True, segment_seconds=2.0)
    with open_stores(settings) as stores, running_api(stores) as server:
        stop = threading.Event()
        supervisor = threading.Thread(
            target=RecordingSupervisor(stores).follow, args=(stop, 0.2), daemon=True
        )
        supervisor.start()
        try:
            with server.client("admin") as admin:
                answer = admin.post(
                    "/api/v1/streams", json={"name": "live", "source": live_source.url}
                )
                assert answer.status_code == 201, answer.text
                deadline = time.time() + 60
                state: dict[str, Any] = {}
                while time.time() < deadline:
                    state = admin.get("/api/v1/streams/live").json()
                    if state["segments"] >= 2 and state["status"] == "recording":
                        break
                    time.sleep(0.5)
                assert state["segments"] >= 2 and state["status"] == "recording", state
                admin.post("/api/v1/streams/live/stop")
                while time.time() < deadline + 30:
                    state = admin.get("/api/v1/streams/live").json()
                    if state["status"] == "stopped":
                        break
                    time.sleep(0.5)
                assert state["status"] == "stopped" and state["wanted"] is False
        finally:
            stop.set()
            supervisor.join(60)
    verified = run_cli(home, "verify", "--stream", "live")
    assert verified.returncode == 0, verified.stdout + verified.stderr
