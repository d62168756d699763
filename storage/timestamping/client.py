"""Asking a time-stamping authority: RFC 3161 over HTTP (RFC 3161 section 3.4).

Outbound requests go only to the TSA URLs the administrator configured (settings, http or
https), through the egress policy (core/egress.py: no address that is not globally
routable unless ``LIVEWITNESS_EGRESS_ALLOW`` names it, no redirects); proxies and
certificate settings from the environment are not used.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from cryptography import x509
from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

from core.egress import EgressPolicy
from core.egress_http import egress_client
from core.errors import TimestampError
from storage.timestamping.tokens import TokenInfo, check_token, tsa_label

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
#: A token with its certificate chain is a few kB; more is not a TSA's answer.
MAX_REPLY_BYTES = 1 << 20


class TsaClient:
    """Requests a token over given bytes and checks it before handing it over."""

    def __init__(
        self,
        timeout_seconds: float,
        ca_certificates: Sequence[x509.Certificate],
        egress_allow: Sequence[str] = (),
    ):
        self.ca_certificates = list(ca_certificates)
        self._http = egress_client(EgressPolicy(egress_allow), timeout=timeout_seconds, what="TSA")

    def stamp(self, url: str, message: bytes) -> tuple[bytes, TokenInfo]:
        """The TSA's response (DER, as received) to a request over SHA-256(``message``)
        with a nonce and certReq, checked (:func:`check_token`); or TimestampError."""
        request = (
            TimestampRequestBuilder()
            .data(message)
            .hash_algorithm(HashAlgorithm.SHA256)
            .nonce(nonce=True)
            .cert_request(cert_request=True)
            .build()
        )
        body = self.post_query(url, request.as_bytes())
        try:
            info = check_token(body, message, self.ca_certificates, nonce=request.nonce)
        except TimestampError as exc:
            raise TimestampError(exc.reason, f"TSA {tsa_label(url)} {exc}") from None
        return body, info

    def post_query(self, url: str, query: bytes) -> bytes:
        """The TSA's answer (DER, unchecked) to a DER TimeStampReq, or TimestampError; for
        callers that build their own request (the PDF report's signature time-stamp)."""
        label = tsa_label(url)
        try:
            with self._http.stream(
                "POST",
                url,
                content=query,
                headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE},
            ) as reply:
                if reply.status_code != 200:
                    raise TimestampError("http", f"TSA {label} answered HTTP {reply.status_code}")
                body = b""
                for chunk in reply.iter_bytes():
                    body += chunk
                    if len(body) > MAX_REPLY_BYTES:
                        raise TimestampError("garbage", f"TSA {label} answered over 1 MiB")
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise TimestampError("unreachable", f"TSA {label} is unreachable ({detail})") from None
        return body

    def close(self) -> None:
        self._http.close()
