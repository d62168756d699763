"""A real S3 server for tests: moto's server mode over HTTP on 127.0.0.1.

moto keeps its state in this process, so the server can be stopped (the port then
refuses connections, as a dead S3 endpoint does) and started again on the same port with
every bucket and object still there. Tests use that to simulate an outage.

Load the fixtures with ``pytest_plugins = ["tests.support.s3server"]``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from mypy_boto3_s3 import S3Client
from werkzeug.serving import BaseWSGIServer, make_server

from core.settings import Settings

# moto accepts any credentials; they only have to be present and consistent.
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"


class _QuietHandler(MotoRequestHandler):
    """moto's handler without one access-log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class MotoS3Server:
    """moto's S3 on a fixed port that can be taken down and brought back."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        # Bound here, not in the thread, so a busy port fails loudly instead of hanging.
        server = make_server(
            self.host,
            self.port,
            DomainDispatcherApplication(create_backend_app),
            threaded=True,
            request_handler=_QuietHandler,
        )
        self.port = server.server_address[1]
        self._server = server
        # A short poll interval makes stop() (an "outage") take effect at once.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        # Close the listening socket too: otherwise the kernel still accepts connections
        # and clients hang until their read timeout instead of being refused at once.
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def client(self) -> S3Client:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


@pytest.fixture(scope="session")
def moto_s3_server() -> Iterator[MotoS3Server]:
    server = MotoS3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_server(moto_s3_server: MotoS3Server) -> Iterator[MotoS3Server]:
    """The session's server, guaranteed up before and after the test (outage tests stop it)."""
    moto_s3_server.start()
    yield moto_s3_server
    moto_s3_server.start()


@pytest.fixture
def s3_client(s3_server: MotoS3Server) -> S3Client:
    return s3_server.client()


@pytest.fixture
def s3_bucket(s3_client: S3Client) -> str:
    """A fresh, empty bucket with Object Lock enabled (and so versioning)."""
    name = f"lw-test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture
def s3_settings(s3_server: MotoS3Server, s3_bucket: str) -> Callable[..., Settings]:
    """Build Settings for the test bucket; keyword arguments override any field."""

    def make(**overrides: Any) -> Settings:
        fields: dict[str, Any] = {
            "blob_backend": "s3",
            "s3_endpoint_url": s3_server.url,
            "s3_bucket": s3_bucket,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            # Few tries: an outage should reach the spool quickly in tests.
            "upload_attempts": 2,
            "spool_retry_seconds": 0.2,
        }
        fields.update(overrides)
        # _env_file=None: a developer's .env must not redirect tests to a real bucket.
        return Settings(_env_file=None, **fields)  # type: ignore[call-arg]

    return make
