"""The HTTP service: FastAPI under /api/v1 and the reviewer web page at /.

Every route names the roles it serves through one dependency (:class:`RoleCheck`); the
OpenAPI schema lists them as ``x-roles`` on each operation, which the tests use to walk
every route with no key (401) and with each wrong role (403). Errors from the one
exception tree become JSON ``{"error", "type"}`` with a 4xx status (503 when storage or
the search cluster is down), never a traceback. Requests are limited per key (token
bucket), by body size, and by the query limits of each route.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

from api.deps import API, HttpError, RoleCheck, Services, TokenBuckets
from api.docs_page import add_docs_page
from api.schemas import ErrorOut
from core.errors import (
    ConflictError,
    DamagedFileError,
    IntegrityError,
    InvalidInputError,
    LiveWitnessError,
    NotFoundError,
    SourceError,
    StorageUnavailableError,
    disk_full_error,
    is_disk_full,
)
from indexer.factory import damaged_index_line
from indexer.protocol import SearchIndex
from storage.stores import Stores

WEB_DIR = Path(__file__).with_name("web")


ERROR_STATUS: list[tuple[type[LiveWitnessError], int]] = [
    (IntegrityError, 409),
    (InvalidInputError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (SourceError, 422),
    (StorageUnavailableError, 503),
    (DamagedFileError, 503),
]
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "Bad input"),
        (401, "No key, or an unknown or revoked one"),
        (403, "The key's role may not do this"),
        (404, "Not found"),
        (409, "Conflict"),
        (413, "Body too large"),
        (429, "Too many requests for this key"),
        (503, "Storage, its disk or the search index is unavailable or damaged"),
    )
}


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Any:
    return JSONResponse({"error": message, "type": kind}, status_code=status, headers=headers)


def _validation_line(error: Any) -> str:
    """``query.size: Input should be less than or equal to 100``."""
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


def _status_of(exc: LiveWitnessError) -> int:
    for kind, status in ERROR_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


class BodyLimit:
    """Refuse bodies over ``limit`` bytes (by Content-Length, and while reading)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = _error(413, f"the body is larger than {self.limit} bytes", "TooLarge")
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HttpError(413, f"the body is larger than {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


def _roles_of(route: BaseRoute) -> list[str] | None:
    dependant = getattr(route, "dependant", None)
    stack = list(dependant.dependencies) if dependant else []
    while stack:
        dep = stack.pop()
        check = getattr(dep.call, "role_check", None)
        if isinstance(check, RoleCheck):
            return list(check.roles)
        stack.extend(dep.dependencies)
    return None


def create_app(stores: Stores, index: SearchIndex) -> FastAPI:
    from api.routes import (
        admin,
        cases,
        compliance,
        events,
        evidence,
        prices,
        screen,
        search,
        streams,
    )

    try:
        app_version = version("livewitness")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        app_version = "0"

    app = FastAPI(
        title="LiveWitness",
        version=app_version,
        description="Livestream evidence: search what was said, play and export the moment.",
        docs_url=None,  # served by api/docs_page.py, without a CDN
        openapi_url=f"{API}/openapi.json",
        redoc_url=None,
    )
    app.state.services = Services(
        stores,
        index,
        TokenBuckets(stores.settings.rate_limit_per_second, stores.settings.rate_limit_burst),
    )
    app.state.version = app_version
    modules = (streams, events, search, evidence, screen, prices, cases, compliance, admin)
    for module in modules:
        app.include_router(module.router, prefix=API, responses=ERROR_RESPONSES)

    @app.exception_handler(LiveWitnessError)
    async def livewitness_error(_request: Request, exc: LiveWitnessError) -> Any:
        return _error(_status_of(exc), str(exc), type(exc).__name__)

    @app.exception_handler(HttpError)
    async def http_error(_request: Request, exc: HttpError) -> Any:
        return _error(exc.status, str(exc), "HttpError", exc.headers)

    @app.exception_handler(OverflowError)
    async def out_of_range(_request: Request, exc: OverflowError) -> Any:
        # A time at the edge of the calendar (0001-01-01 east of UTC) or a number too
        # large for the arithmetic done on it: bad input, not a server fault.
        return _error(400, f"a time or number is out of range: {exc}", "InvalidInputError")

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> Any:
        if is_disk_full(exc):
            home = request.app.state.services.stores.settings.home
            return _error(503, str(disk_full_error(exc, home)), "DiskFullError")
        return _error(500, f"the server could not read or write a file: {exc}", "OSError")

    @app.exception_handler(sqlite3.DatabaseError)
    async def index_error(request: Request, exc: sqlite3.DatabaseError) -> Any:
        # Raw sqlite3 errors come from the embedded search index (the catalog's come
        # through SQLAlchemy, as DamagedFileError); the index is derived data.
        path = getattr(request.app.state.services.index, "path", "file")
        return _error(503, damaged_index_line(path, exc), "DamagedFileError")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Any:
        # The same one-line "error" as every other refusal, plus FastAPI's usual list.
        errors = exc.errors()
        return JSONResponse(
            {
                "error": "; ".join(_validation_line(e) for e in errors) or "invalid request",
                "type": "RequestValidationError",
                "detail": jsonable_encoder(errors),
            },
            status_code=422,
        )

    @app.get("/", include_in_schema=False)
    async def web_page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    add_docs_page(app, f"{API}/openapi.json")
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        # The routers' own routes (the app wraps included ones): path = API + route path.
        for route in (r for module in modules for r in module.router.routes):
            roles = _roles_of(route)
            path = API + str(getattr(route, "path", ""))
            if roles is None or path not in schema["paths"]:
                continue
            for method in getattr(route, "methods", set()):
                operation = schema["paths"][path].get(method.lower())
                if operation is not None:
                    operation["x-roles"] = roles
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, limit=stores.settings.max_body_bytes)
    return app
