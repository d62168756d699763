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
