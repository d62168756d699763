"""HTTP clients that only reach what the egress policy allows (core/egress.py).

:func:`egress_client` makes an ``httpx.Client`` whose connections are opened by
:class:`PinnedBackend`: it resolves the host once, checks every address against the
policy and connects to those same addresses, so a name that answers a public address to
the check and 127.0.0.1 to the connection (DNS rebinding) cannot lead anywhere new. The
URL is otherwise untouched: the Host header and TLS server name (SNI, certificate check)
stay the original host name. Redirects are not followed, and proxies or certificate
settings from the environment are not used.

Kept apart from core/egress.py so that what only checks URLs does not import httpx.
"""

from __future__ import annotations

import functools
import ssl
import typing
from collections.abc import Callable

import httpcore
import httpx

from core.egress import EgressPolicy
from core.errors import EgressRefusedError, LiveWitnessError, SourceUnreachableError

#: (address, port) -> where to dial instead: the seam a test uses to stand a local
#: server in for a public address (and to see which address was dialled).
Dial = Callable[[str, int], tuple[str, int]]


class EgressRefusedConnect(httpcore.ConnectError):
    """The policy refused (or could not resolve) the host: httpx reports it as an
    ``httpx.ConnectError`` carrying the policy's one-line reason (``error``)."""

    def __init__(self, error: LiveWitnessError) -> None:
        super().__init__(str(error))
        self.error = error


class PinnedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to addresses the policy allowed, from one lookup."""

    def __init__(self, policy: EgressPolicy, what: str, dial: Dial | None = None) -> None:
        self.policy = policy
        self.what = what
        self._dial = dial

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            # A name that does not resolve is a failed connect (retried), not a refusal.
            addresses = self.policy.check_host(
                host, port, f"{self.what} host", unresolvable=SourceUnreachableError
            )
        except LiveWitnessError as exc:
            raise EgressRefusedConnect(exc) from exc
        failed: Exception | None = None
        for address in addresses:
            target = (address, port) if self._dial is None else self._dial(address, port)
            try:
                # An address literal: the system resolver is not asked again.
                return super().connect_tcp(*target, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc  # the next address, as socket.create_connection does
        assert failed is not None
        raise failed


@functools.cache
def _default_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of ms: once per process, shared (thread-safe).
    return httpx.create_ssl_context(verify=True, trust_env=False)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport over a connection pool whose backend is pinned."""

    def __init__(
        self,
        policy: EgressPolicy,
        what: str,
        verify: ssl.SSLContext | bool = True,
        dial: Dial | None = None,
    ) -> None:
        context = _default_context() if verify is True else verify
        super().__init__(verify=context, trust_env=False)
        # httpx takes no network backend; its pool is swapped for one with ours, with
        # the settings httpx would give it (tests/test_egress.py fails if this breaks).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=context, trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=PinnedBackend(policy, what, dial),
        )


def egress_client(
    policy: EgressPolicy,
    *,
    timeout: float,
    what: str = "outbound",
    verify: ssl.SSLContext | bool = True,
    dial: Dial | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` that connects only where ``policy`` allows, to the addresses
    it checked, and follows no redirects; ``what`` names the purpose in refusals
    ("webhook", "TSA")."""
    return httpx.Client(
        transport=PinnedTransport(policy, what, verify=verify, dial=dial),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def refusal_in(exc: BaseException) -> EgressRefusedError | None:
    """The policy's refusal behind an httpx error, if that is what it was (httpcore
    re-raises on the way, so the chain is followed by cause and by context)."""
    seen: BaseException | None = exc
    for _depth in range(8):
        if seen is None:
            break
        if isinstance(seen, EgressRefusedConnect) and isinstance(seen.error, EgressRefusedError):
            return seen.error
        seen = seen.__cause__ or seen.__context__
    return None
