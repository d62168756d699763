"""BlobStore on any S3-compatible service (AWS S3, MinIO, moto) through boto3.

Every upload carries its SHA-256 (``ChecksumSHA256``) so the server checks the bytes it
received, and ``stat`` reads that checksum back instead of downloading the blob. Writes
are write-once: a ``head`` first, then a conditional ``put`` (``If-None-Match: *``) so two
writers racing on one key cannot overwrite each other. With Object Lock configured every
object is put with a retention date (and optionally a legal hold), so not even the
bucket owner can delete a version before it expires in compliance mode.

Outages are reported quickly and uniformly: botocore's own timeouts are short and its
own retries off, this module retries transient failures with bounded exponential
backoff, then raises :class:`~core.errors.StorageUnavailableError` so the caller (the
spool) can keep the bytes locally.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)

from core.errors import (
    ConfigError,
    ImmutableBlobError,
    IntegrityError,
    NotFoundError,
    StorageError,
    StorageUnavailableError,
)
from storage.blobs.protocol import CHUNK, BlobInfo, sha256_bytes, sha256_file, validate_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from core.settings import Settings

T = TypeVar("T")
LockMode = Literal["none", "governance", "compliance"]

# Short socket timeouts: an unreachable endpoint must be noticed in seconds, not minutes,
# so the recorder can spool and carry on. Reads are per socket read, not per transfer.
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0

_TRANSIENT_NETWORK = (ConnectionError, HTTPClientError, IncompleteReadError)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "ConditionalRequestConflict",  # a concurrent conditional write; try again
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_ACCESS_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_NETWORK):
        return True
    if isinstance(exc, ClientError):
        return _status(exc) >= 500 or _status(exc) == 429 or _error_code(exc) in _TRANSIENT_CODES
    return False


def _b64_to_hex(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == hashlib.sha256().digest_size else None


class S3BlobStore:
    """Blobs as objects ``<prefix><key>`` in one bucket."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "",
        object_lock_mode: LockMode = "none",
        object_lock_days: int = 0,
        object_lock_legal_hold: bool = False,
        attempts: int = 4,
        backoff_seconds: float = 0.25,
        backoff_max_seconds: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ConfigError("S3 upload attempts must be at least 1")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.object_lock_mode = object_lock_mode
        self.object_lock_days = object_lock_days
        self.object_lock_legal_hold = object_lock_legal_hold
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._sleep = sleep
        self.page_size = 1000  # S3's own maximum; tests lower it to exercise paging
        # Cleared when the server answers a conditional put with 501 NotImplemented.
        self._conditional_put = True

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        backoff_seconds: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
    ) -> S3BlobStore:
        config = Config(
            region_name=settings.s3_region,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            # One try per call: this class owns retrying, so an outage costs exactly
            # `upload_attempts` tries before the caller hears about it.
            retries={"mode": "standard", "total_max_attempts": 1},
            # Custom endpoints (MinIO, moto) rarely have wildcard DNS for bucket hosts.
            s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
        )
        # A session per store: boto3's default session is not thread-safe to create from.
        session = boto3.session.Session(
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            region_name=settings.s3_region,
        )
        client = session.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
        return cls(
            client,
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            object_lock_mode=settings.object_lock_mode,
            object_lock_days=settings.object_lock_days,
            object_lock_legal_hold=settings.object_lock_legal_hold,
            attempts=settings.upload_attempts,
            backoff_seconds=backoff_seconds,
            sleep=sleep,
        )

    # -- setup -------------------------------------------------------------------------

    def ensure_bucket(self, object_lock: bool) -> None:
        """Create the bucket if missing (setup and tests only; ``put`` never creates it).

        An existing bucket is never reconfigured: one without Object Lock is reported as a
        configuration error when ``object_lock`` is asked for.
        """
        try:
            self._call("head bucket", lambda: self.client.head_bucket(Bucket=self.bucket))
        except NotFoundError:
            region = self.client.meta.region_name
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if object_lock:
                kwargs["ObjectLockEnabledForBucket"] = True
            if region and region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self._call("create bucket", lambda: self.client.create_bucket(**kwargs))
            return
        if object_lock and not self._bucket_has_lock():
            raise ConfigError(f"bucket {self.bucket} exists without Object Lock")

    def _bucket_has_lock(self) -> bool:
        try:
            conf = self._call(
                "get object lock configuration",
                lambda: self.client.get_object_lock_configuration(Bucket=self.bucket),
            )
        except StorageError:
            return False
        return conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    # -- BlobStore ---------------------------------------------------------------------

    def put_file(self, key: str, path: Path, sha256: str) -> BlobInfo:
        validate_key(key)
        # Check before sending: not every S3-compatible server verifies ChecksumSHA256
        # (moto stores it unchecked), and a wrong hash must never become stored evidence.
        if sha256_file(path) != sha256.lower():
            raise StorageError(f"{key}: content does not match its SHA-256")
        return self._put(key, lambda: path.open("rb"), path.stat().st_size, sha256.lower())

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        validate_key(key)
        return self._put(key, lambda: io.BytesIO(data), len(data), sha256_bytes(data))

    def get_bytes(self, key: str) -> bytes:
        name = self._name(key)

        def read() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")
            return response["Body"].read()

        return self._call(f"get {key}", read, key=key)

    def download(self, key: str, dest: Path) -> None:
        name = self._name(key)
        # Written beside dest and renamed at the end: a failed transfer leaves no half file.
        part = dest.with_name(f".{dest.name}.part")

        def fetch() -> None:
            response = self.client.get_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")
            with part.open("wb") as out:  # reopened per attempt: a retry starts over
                for chunk in response["Body"].iter_chunks(CHUNK):
                    out.write(chunk)

        try:
            self._call(f"download {key}", fetch, key=key)
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)

    def stat(self, key: str) -> BlobInfo | None:
        name = self._name(key)
        try:
            head = self._call(
                f"stat {key}",
                lambda: self.client.head_object(
                    Bucket=self.bucket, Key=name, ChecksumMode="ENABLED"
                ),
                key=key,
            )
        except NotFoundError:
            return None
        sha256 = None
        checksum = head.get("ChecksumSHA256")
        # A composite (multipart) checksum is not the object's SHA-256.
        if checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            sha256 = _b64_to_hex(checksum)
        if sha256 is None:
            sha256 = self._hash_object(key, name)
        return BlobInfo(key=key, size=int(head["ContentLength"]), sha256=sha256)

    def list(self, prefix: str) -> Iterator[str]:
        full = self.prefix + prefix
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": full,
                "MaxKeys": self.page_size,
            }
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(
                f"list {prefix or '/'}", partial(self.client.list_objects_v2, **kwargs)
            )
            keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        return iter(sorted(keys))

    def hold(self, key: str) -> None:
        self._legal_hold(key, "ON")

    def release(self, key: str) -> None:
        with contextlib.suppress(NotFoundError):  # nothing stored, nothing held
            self._legal_hold(key, "OFF")

    def held(self, key: str) -> bool:
        name = self._name(key)
        try:
            answer = self._call(
                f"read the legal hold of {key}",
                lambda: self.client.get_object_legal_hold(Bucket=self.bucket, Key=name),
                key=key,
            )
        except NotFoundError:
            return False
        except StorageError as exc:
            if _no_lock(exc) or "NoSuchObjectLockConfiguration" in str(exc):  # never held
                return False
            raise
        return answer.get("LegalHold", {}).get("Status") == "ON"

    def _legal_hold(self, key: str, status: Literal["ON", "OFF"]) -> None:
        """Set the legal hold of the blob's version (blobs are written once: one version)."""
        name = self._name(key)
        head = self._call(
            f"head {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=name), key=key
        )
        # Only a versioned (Object Lock) bucket has versions; without one the call fails below.
        version: dict[str, Any] = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
        try:
            self._call(
                f"set the legal hold of {key} {status}",
                lambda: self.client.put_object_legal_hold(
                    Bucket=self.bucket, Key=name, LegalHold={"Status": status}, **version
                ),
                key=key,
            )
        except StorageError as exc:
            if not _no_lock(exc):
                raise
            raise ConfigError(
                f"S3 bucket {self.bucket} has no Object Lock: legal holds need a bucket"
                " created with Object Lock enabled"
            ) from None

    # -- internals ---------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _put(
        self,
        key: str,
        open_body: Callable[[], AbstractContextManager[IO[bytes]]],
        size: int,
        sha256: str,
    ) -> BlobInfo:
        existing = self.stat(key)
        if existing is not None:
            return self._same_or_raise(existing, sha256)
        name = self._name(key)
        extra: dict[str, Any] = {
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
            "ContentLength": size,
        }
        if self.object_lock_mode != "none" and self.object_lock_days > 0:
            extra["ObjectLockMode"] = self.object_lock_mode.upper()
            extra["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=self.object_lock_days
            )
        if self.object_lock_legal_hold:
            extra["ObjectLockLegalHoldStatus"] = "ON"

        def send(conditional: dict[str, Any]) -> None:
            with open_body() as body:
                self.client.put_object(
                    Bucket=self.bucket, Key=name, Body=body, **extra, **conditional
                )

        def put() -> None:
            if self._conditional_put:
                try:
                    send({"IfNoneMatch": "*"})
                    return
                except ClientError as exc:
                    if _error_code(exc) != "NotImplemented":
                        raise
                    # Servers without conditional writes: the head above is the check.
                    self._conditional_put = False
            send({})

        try:
            self._call(f"put {key}", put)
        except _PreconditionFailed:
            # Someone stored the key between our head and put, or an earlier attempt of
            # ours succeeded but its reply was lost: same bytes are fine, others are not.
            existing = self.stat(key)
            if existing is None:
                raise StorageError(f"{key}: conditional put refused but no object found") from None
            return self._same_or_raise(existing, sha256)
        return BlobInfo(key=key, size=size, sha256=sha256)

    @staticmethod
    def _same_or_raise(existing: BlobInfo, sha256: str) -> BlobInfo:
        if existing.sha256 != sha256:
            raise ImmutableBlobError(f"{existing.key} is stored with other content")
        return existing

    def _hash_object(self, key: str, name: str) -> str:
        def digest() -> str:
            response = self.client.get_object(Bucket=self.bucket, Key=name)
            hasher = hashlib.sha256()
            for chunk in response["Body"].iter_chunks(CHUNK):
                hasher.update(chunk)
            return hasher.hexdigest()

        return self._call(f"hash {key}", digest, key=key)

    def _call(self, what: str, fn: Callable[[], T], *, key: str | None = None) -> T:
        """Run one S3 request, retrying transient failures, mapping errors to our tree.

        ``key`` names the blob a "not found" answer is about; without it the bucket is.
        """
        delay = self.backoff_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except ClientError as exc:
                code = _error_code(exc)
                if code in ("PreconditionFailed", "412"):
                    raise _PreconditionFailed from exc
                if code in _NOT_FOUND_CODES:
                    if key is None:
                        raise NotFoundError(f"S3 bucket {self.bucket} does not exist") from None
                    raise NotFoundError(f"blob {key} is not stored") from None
                if code == "NoSuchBucket":
                    raise ConfigError(f"S3 bucket {self.bucket} does not exist") from None
                if code in _ACCESS_CODES:
                    raise ConfigError(
                        f"S3 refused to {what} in bucket {self.bucket} ({code}): "
                        "check the credentials and the IAM permissions"
                    ) from None
                if not _is_transient(exc):
                    raise StorageError(f"S3 could not {what}: {_one_line(exc)}") from None
                failure: BaseException = exc
            except FlexibleChecksumError as exc:
                raise IntegrityError(
                    key or what, f"bytes read from S3 do not match their checksum ({exc})"
                ) from None
            except NoCredentialsError:
                raise ConfigError("no S3 credentials configured") from None
            except BotoCoreError as exc:
                if not _is_transient(exc):
                    raise StorageError(f"S3 could not {what}: {_one_line(exc)}") from None
                failure = exc
            if attempt >= self.attempts:
                raise StorageUnavailableError(
                    f"S3 unavailable: could not {what} after {attempt} attempts: "
                    f"{_one_line(failure)}"
                )
            self._sleep(delay)
            delay = min(delay * 2, self.backoff_max_seconds)


class _PreconditionFailed(Exception):
    """The conditional put found the key already stored (internal signal)."""


def _no_lock(exc: StorageError) -> bool:
    """S3's "Bucket is missing Object Lock Configuration" (moto: ObjectLockConfiguration)."""
    return "InvalidRequest" in str(exc) and "objectlock" in str(exc).replace(" ", "").lower()
