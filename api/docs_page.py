"""The API's documentation page (Swagger UI at /api/v1/docs), served whole by the API.

FastAPI's own page loads Swagger UI's script and style from a public CDN, so it is blank
on a machine without internet access. The same files come from the ``fastapi-offline``
wheel (Swagger UI 5) and are served under ``/api/v1/docs/assets``; the favicon is the web
page's own.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.deps import API

DOCS_URL = f"{API}/docs"
ASSETS_URL = f"{DOCS_URL}/assets"
FAVICON_URL = "/static/favicon.svg"


def swagger_assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def add_docs_page(app: FastAPI, openapi_url: str) -> None:
    """Serve the docs page and its files; the app is made with ``docs_url=None``."""
    app.mount(ASSETS_URL, StaticFiles(directory=swagger_assets_dir()), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=FAVICON_URL,
            # No badge from the public validator service: nothing leaves the machine.
            swagger_ui_parameters={"validatorUrl": None},
        )
