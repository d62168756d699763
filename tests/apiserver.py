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
from api.keys import ROLES, create_key
from indexer.service import open_search_index
from storage.runtime import Evidence
from tests.webhook_receiver import free_port


@dataclass
class ApiServer:
    url: str
    ev: Evidence
    keys: dict[str, str]

    def client(self, role: str | None = None, **options: object) -> httpx.Client:
        headers = {"X-API-Key": self.keys[role]} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **options)  # type: ignore[arg-type]


@contextmanager
def running_api(ev: Evidence) -> Iterator[ApiServer]:
    index = open_search_index(ev)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ev, index), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    keys = {role: create_key(ev.catalog, role, f"test {role}")[0] for role in ROLES}
    try:
        yield ApiServer(url, ev, keys)
    finally:
        server.should_exit = True
        thread.join(10)
        index.close()
