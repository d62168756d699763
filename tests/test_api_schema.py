"""Schemathesis against the OpenAPI schema over real HTTP: generated requests to every
operation, with a key of a role the operation serves, must never get a 5xx and every
response must match the schema (status code, content type, headers, body)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from core.settings import Settings
from indexer.factory import open_search_index
from indexer.service import Indexer
from storage.stores import open_stores
from tests.support.apiserver import ApiServer, running_api
from tests.support.searchdata import MISHEARD, SHOP, add_stream


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("schema-home")
    # Generous limits: the generator sends many requests a second with one key.
    chosen = Settings(home=home, rate_limit_per_second=10_000, rate_limit_burst=10_000)
    with open_stores(chosen) as stores:
        add_stream(stores, tmp_path_factory.mktemp("segments"), "shop", SHOP)
        add_stream(stores, tmp_path_factory.mktemp("segments"), "misheard", MISHEARD)
        index = open_search_index(stores)
        Indexer(stores, index).index_pending()
        index.close()
        with running_api(stores) as running:
            yield running


def generated_requests(operation: Any, url: str, headers: dict[str, str]) -> Any:
    """A hypothesis test of one operation: generated requests, checked responses."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same requests on every run
        database=None,
    )
    def check(case: Any) -> None:
        response = case.call(base_url=url, headers=headers)
        assert response.status_code < 500, (case.method, case.path, response.text[:300])
        # Requests the schema allows may still be refused with a 4xx for what a schema
        # cannot say (a source host on a private network, an unknown stream): that is
        # correct behaviour, so "positive data acceptance" is not checked.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    return check


def test_no_server_errors_and_responses_match_the_schema(server: ApiServer) -> None:
    """Each operation in turn (schemathesis' pytest plugin does not load on pytest 9),
    with a key of the first role it serves."""
    loaded = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    tested = []
    for result in loaded.get_all_operations():
        operation = result.ok()
        key = server.keys[(operation.definition.raw.get("x-roles") or ["admin"])[0]]
        headers = {"X-API-Key": key, "Authorization": f"Bearer {key}"}
        generated_requests(operation, server.url, headers)()
        tested.append(operation.label)
    assert len(tested) >= 20


def test_the_schema_documents_every_route(server: ApiServer, tmp_path: Path) -> None:
    import httpx

    paths = httpx.get(f"{server.url}/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/search", "/api/v1/exports", "/api/v1/streams/{name}/clip"} <= set(paths)


# Times at the edges of the calendar: east of UTC before year 1, west of it after 9999
# (OverflowError once), and the UTC edges themselves; and ranges too short to cut.
EDGE_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00"]
UTC_EDGES = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"]
SHOP_START = "2026-11-20T12:00:05Z"
ONE_MS_LATER = "2026-11-20T12:00:05.001Z"
BOUNDARY_CASES: list[tuple[str, dict[str, Any], bool]] = [
    # (operation, case fields, whether it must be a 400 rather than any non-5xx)
    *[("GET /api/v1/search", {"query": {"q": "羽绒服", "since": t}}, True) for t in EDGE_TIMES],
    *[("GET /api/v1/search", {"query": {"q": "羽绒服", "until": t}}, True) for t in EDGE_TIMES],
    *[("GET /api/v1/search", {"query": {"q": "羽绒服", "since": t}}, False) for t in UTC_EDGES],
    *[("GET /api/v1/search", {"query": {"q": "羽绒服", "until": t}}, False) for t in UTC_EDGES],
    *[("GET /api/v1/compliance/report", {"query": {"since": t}}, True) for t in EDGE_TIMES],
    *[("GET /api/v1/compliance/report", {"query": {"until": t}}, False) for t in UTC_EDGES],
    *[
        ("POST /api/v1/exports", {"body": {"stream": "shop", "since": t, "until": u}}, True)
        for t, u in [(EDGE_TIMES[0], SHOP_START), (SHOP_START, EDGE_TIMES[1])]
    ],
    *[
        ("POST /api/v1/exports", {"body": {"stream": "shop", "since": t, "until": u}}, False)
        for t, u in [(UTC_EDGES[0], SHOP_START), (SHOP_START, UTC_EDGES[1])]
    ],
    (
        "POST /api/v1/exports",
        {"body": {"stream": "shop", "since": SHOP_START, "until": ONE_MS_LATER}},
        True,
    ),
    (
        "GET /api/v1/streams/{name}/clip",
        {"path_parameters": {"name": "shop"}, "query": {"offset": 5, "before": 0, "after": 0.001}},
        True,
    ),
]


def test_boundary_values_are_refused_with_one_json_line(server: ApiServer) -> None:
    loaded = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    operations = {r.ok().label: r.ok() for r in loaded.get_all_operations()}
    for label, fields, must_refuse in BOUNDARY_CASES:
        operation = operations[label]
        key = server.keys[operation.definition.raw["x-roles"][0]]
        if "body" in fields:
            fields = {**fields, "media_type": "application/json"}
        case = operation.Case(**fields)
        response = case.call(base_url=server.url, headers={"X-API-Key": key})
        assert response.status_code < 500, (label, fields, response.text[:300])
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        if must_refuse:
            assert response.status_code == 400, (label, fields, response.text[:300])
            error = response.json()["error"]
            assert error and "\n" not in error and "Traceback" not in error
            if "001Z" in str(fields) or "0.001" in str(fields):
                assert error.startswith("range shorter than"), error
