"""PostgreSQL for tests that run on it as well as on SQLite: it runs where
``LIVEWITNESS_TEST_POSTGRES_URL`` names a database the tests may create schemas in
(``eval "$(.ci/postgres.sh)"`` starts a throwaway one), and each test gets a schema of
its own, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text

POSTGRES_URL_VARIABLE = "LIVEWITNESS_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"PostgreSQL tests not run: set {POSTGRES_URL_VARIABLE} (postgresql+psycopg://…)"


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A URL like ``base_url`` whose connections work in a new, empty schema (their
    ``search_path``), so tests never see each other's tables; the schema is dropped after."""
    schema = f"lw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
