"""The real HTTP service on a free local port, with one key per role (tests, bench/)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from api.app import create_app
from indexer.factory import open_search_index
from storage.api_keys import ROLES, create_api_key
from storage.stores import Stores
from tests.support.media import free_port


@dataclass
class ApiServer:
    url: str
    stores: Stores
    keys: dict[str, str]

    def client(self, role: str | None = None, **options: object) -> httpx.Client:
        headers = {"X-API-Key": self.keys[role]} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **options)  # type: ignore[arg-type]


@contextmanager
def running_api(stores: Stores) -> Iterator[ApiServer]:
    index = open_search_index(stores)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(stores, index), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            # 503 is an answer too: the server is up, and some check of /health failed.
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code in (200, 503):
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    keys = {role: create_api_key(stores.catalog, role, f"test {role}")[0] for role in ROLES}
    try:
        yield ApiServer(url, stores, keys)
    finally:
        server.should_exit = True
        thread.join(10)
        index.close()
