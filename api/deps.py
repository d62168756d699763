"""What routes depend on: the services, the calling key, and the one role table.

Routes import from here, never from :mod:`api.app` (which imports the routes). Who may
do what is :data:`ROLE_TABLE`, one row per action; each route takes one of the caller
types below it, and the OpenAPI schema lists the roles as ``x-roles``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from indexer.protocol import SearchIndex
from storage import audit
from storage.api_keys import Role, api_key_actor, authenticate
from storage.events import StreamRates
from storage.models import ApiKey
from storage.stores import Stores

API = "/api/v1"

Action = Literal[
    "read-streams",
    "manage-streams",
    "verify-streams",
    "search",
    "view-evidence",
    "read-compliance",
    "manage-webhooks",
    "administer",
    "whoami",
    "see-secrets",
    "ingest-events",
    "read-cases",
    "manage-cases",
]

# fmt: off
ROLE_TABLE: dict[Action, tuple[Role, ...]] = {
    # action             who may do it
    "read-streams":    ("admin", "reviewer", "compliance", "case-system"),  # list, status, products
    "manage-streams":  ("admin",),                        # start, stop, set products
    "verify-streams":  ("admin", "reviewer", "case-system"),  # re-check a chain, receipts
    "search":          ("reviewer", "compliance", "case-system"),
    "view-evidence":   ("reviewer", "case-system"),       # moments, clips, playback, exports
    "read-compliance": ("compliance",),                   # banned-word reports, overview, lexicon
    "manage-webhooks": ("case-system",),                  # webhooks and their delivery log
    "administer":      ("admin",),                        # API keys, audit log, metrics
    "whoami":          ("admin", "reviewer", "compliance", "case-system"),
    "see-secrets":     ("admin",),  # raw stream sources and errors (others: redacted)
    "ingest-events":   ("connector",),  # post a stream's chat, cards, orders (only this)
    # Cases hold evidence links and people's notes: not the admin's (as view-evidence);
    # their report and package are exports (view-evidence).
    "read-cases":      ("reviewer", "compliance", "case-system"),  # list, view
    "manage-cases":    ("reviewer", "case-system"),  # create, edit, moments, notes
}
# fmt: on

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")


class HttpError(Exception):
    """An error with its own status (401, 403, 413, 429)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass
class Caller:
    key: ApiKey

    @property
    def actor(self) -> str:
        return api_key_actor(self.key)

    @property
    def role(self) -> str:
        return self.key.role


@dataclass
class TokenBuckets:
    """Requests per second per key, with a burst allowance."""

    rate: float
    burst: int
    _buckets: dict[int, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key_id: int) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens < 1:
                self._buckets[key_id] = (tokens, now)
                return (1 - tokens) / self.rate
            self._buckets[key_id] = (tokens - 1, now)
            return 0.0


@dataclass
class RecentReads:
    """When each key last had a read of a thing audited, so that a read repeated within
    ``window`` seconds (a player reloading a live playlist every few seconds) is not
    audited again. Per process: with several API processes a reload may be audited once
    per process, never less than once per window."""

    window: float = 300.0
    _last: dict[tuple[int, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def first_in_window(self, key_id: int, thing: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._last) > 10_000:  # forget what is outside the window anyway
                self._last = {k: t for k, t in self._last.items() if now - t < self.window}
            then = self._last.get((key_id, thing))
            if then is not None and now - then < self.window:
                return False
            self._last[(key_id, thing)] = now
            return True


@dataclass
class Services:
    """What the routes work with, on ``app.state.services``."""

    stores: Stores
    index: SearchIndex
    limiter: TokenBuckets
    recent_reads: RecentReads = field(default_factory=RecentReads)
    event_rates: StreamRates = field(default_factory=StreamRates)  # events/s per stream


def audit_log(stores: Stores) -> audit.AuditLog:
    """The audit log with its signed heads (cheap: it holds references only)."""
    return audit.AuditLog(stores.catalog, stores.blobs, stores.chain.signer, stores.settings)


def log_action(found: Services, caller: Caller, action: str, details: dict[str, Any]) -> None:
    """Record who did what in the audit log (signing its head every N events)."""
    audit_log(found.stores).record(caller.actor, caller.role, action, details)


def may_see_secrets(caller: Caller) -> bool:
    """Whether the caller sees stream sources and errors raw; every other role sees them
    through :func:`core.redact.redact_source` (credentials and stream keys masked)."""
    return caller.role in ROLE_TABLE["see-secrets"]


def get_services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


class RoleCheck:
    """The dependency every protected route has: a live key of one of ``roles``."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(
        self,
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = None,
        header: str | None = None,
    ) -> Caller:
        from_bearer = bearer.credentials if bearer else None
        if header and from_bearer and header != from_bearer:
            raise HttpError(401, "two different API keys given (X-API-Key and Authorization)")
        key = header or from_bearer
        if not key:
            raise HttpError(401, "an API key is needed (Authorization: Bearer KEY or X-API-Key)")
        found = get_services(request)
        row = authenticate(found.stores.catalog, key)
        if row is None:
            raise HttpError(401, "unknown or revoked API key")
        if row.role not in self.roles:
            raise HttpError(403, f"the {row.role} role may not do this")
        wait = found.limiter.take(row.id)
        if wait:
            raise HttpError(
                429, "too many requests for this key", {"Retry-After": str(int(wait) + 1)}
            )
        return Caller(row)


def allow(*roles: Role) -> Any:
    """``Depends`` for a route served to ``roles`` (both header forms documented)."""
    check = RoleCheck(*roles)

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        header: str | None = Depends(_header),
    ) -> Caller:
        return await check(request, bearer, header)

    dependency.role_check = check  # type: ignore[attr-defined]  # read by _roles_of
    return Depends(dependency)


def may(action: Action) -> Any:
    """``Depends`` for a route doing ``action``: a key of a role the table allows."""
    return allow(*ROLE_TABLE[action])


StreamReader = Annotated[Caller, may("read-streams")]
StreamManager = Annotated[Caller, may("manage-streams")]
StreamVerifier = Annotated[Caller, may("verify-streams")]
Searcher = Annotated[Caller, may("search")]
EvidenceViewer = Annotated[Caller, may("view-evidence")]
ComplianceReader = Annotated[Caller, may("read-compliance")]
WebhookManager = Annotated[Caller, may("manage-webhooks")]
Administrator = Annotated[Caller, may("administer")]
AnyRole = Annotated[Caller, may("whoami")]
EventConnector = Annotated[Caller, may("ingest-events")]
CaseReader = Annotated[Caller, may("read-cases")]
CaseManager = Annotated[Caller, may("manage-cases")]
ServicesDep = Annotated[Services, Depends(get_services)]
