"""Checking an RFC 3161 token against the bytes it should stamp.

One check serves three readers: the stamper when a token arrives (with the request's
nonce), ``verify`` for stored tokens and ``verify-package`` for packaged ones. It parses
the TSA's response, requires status "granted", a SHA-256 message imprint equal to the
SHA-256 of ``message`` and, given CA certificates, lets ``rfc3161-client`` verify the
CMS signature, the certificate chain at the token's time and the TSA certificate's
critical extendedKeyUsage timeStamping.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from asn1crypto import cms, core, tsp
from cryptography import x509
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from core.errors import ConfigError, TimestampError
from storage.signing import signed_message

SHA256_OID = "2.16.840.1.101.3.4.2.1"


@dataclass(frozen=True)
class TokenInfo:
    """What a checked token says."""

    gen_time: datetime  # the TSA's time, UTC
    serial: int
    imprint: str  # hex SHA-256 of the stamped bytes
    policy: str  # the TSA policy's OID
    tsa_name: str | None  # the name the TSA gives itself, if any
    chain_checked: bool  # False when no CA certificates were given


def stamped_bytes(signature_record: bytes) -> bytes:
    """What a head's tokens stamp: the exact bytes its Ed25519 signature signs (the
    canonical payload, a package's ``signatures/<head>.msg``), from the stored signature
    record. ``ValueError`` when the record is malformed."""
    try:
        record = json.loads(signature_record)
        return signed_message(record["payload"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a signature record ({exc})") from None


def tsa_public_url(url: str) -> str:
    """A TSA's URL as stored and packaged: without the user and password a TSA that
    wants HTTP basic authentication is configured with."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, parts.query, ""))


def tsa_id(url: str) -> str:
    """A short fixed name of a TSA for blob keys: the first 12 hex digits of the SHA-256
    of its public URL (a position in the configured list would change with the list, and
    a new password must not make it another TSA)."""
    return hashlib.sha256(tsa_public_url(url).encode()).hexdigest()[:12]


def tsa_label(url: str) -> str:
    """A TSA as logs and metrics name it: host, port and path, never credentials."""
    parts = urlsplit(tsa_public_url(url))
    return f"{parts.netloc}{parts.path}"


def load_ca_bundle(path: Path) -> list[x509.Certificate]:
    """The configured TSA CA certificates; a missing or empty file is a ConfigError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the TSA CA bundle {path}: {exc.strerror}") from None
    try:
        return parse_pem_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"the TSA CA bundle {path} {exc}") from None


def parse_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates of a PEM file; ``ValueError`` when it holds none."""
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError("holds no PEM certificates") from None
    return certificates


def decode_response(raw: bytes) -> TimeStampResponse:
    """Parse a TSA's response. ``rfc3161-client`` accepts only strict DER, but OpenSSL-
    based TSAs send the certificates of the token (a SET OF) unsorted; as that set is
    outside what the TSA signs, it is put in DER order first with ``asn1crypto``. The
    stored token keeps the TSA's bytes (``openssl ts`` takes either)."""
    try:
        return decode_timestamp_response(_der_ordered(raw))
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(
            "garbage", f"is not an RFC 3161 time-stamp response ({_short(exc)})"
        ) from None


def _der_ordered(raw: bytes) -> bytes:
    try:
        response = tsp.TimeStampResp.load(raw, strict=True)
        signed = response["time_stamp_token"]["content"]
        certificates = signed["certificates"]
        if isinstance(certificates, core.Void):
            return raw
        encoded = [certificate.dump() for certificate in certificates]
    except (ValueError, TypeError, KeyError):
        return raw  # no token (a refusal) or no response at all: rfc3161-client says which
    if encoded == sorted(encoded):
        return raw
    signed["certificates"] = cms.CertificateSet(
        [cms.CertificateChoices.load(der) for der in sorted(encoded)]
    )
    return bytes(response.dump())


def check_token(
    raw: bytes,
    message: bytes,
    ca_certificates: Sequence[x509.Certificate],
    nonce: int | None = None,
) -> TokenInfo:
    """Check that ``raw`` is a granted token over SHA-256(``message``) (and answers
    ``nonce``), signed by a TSA that chains to ``ca_certificates`` when any are given.
    Raises :class:`TimestampError` saying what is wrong."""
    response = decode_response(raw)
    if response.status != PKIStatus.GRANTED:
        said = " ".join(response.status_string)
        raise TimestampError(
            "refused", f"refused the request (status {response.status}{': ' if said else ''}{said})"
        )
    try:
        info = response.tst_info
        imprint = info.message_imprint
        algorithm = imprint.hash_algorithm.dotted_string
        stamped = imprint.message
    except ValueError as exc:
        raise TimestampError("garbage", f"holds no readable token ({_short(exc)})") from None
    digest = hashlib.sha256(message).digest()
    if algorithm != SHA256_OID or stamped != digest:
        raise TimestampError("mismatch", "does not stamp the SHA-256 of the signed head")
    if nonce is not None and info.nonce != nonce:
        raise TimestampError("mismatch", "answers another request (its nonce differs)")
    if ca_certificates:
        verifier = VerifierBuilder(roots=list(ca_certificates)).build()
        try:
            verifier.verify(response, digest)
        except VerificationError as exc:
            raise TimestampError(
                "untrusted",
                f"does not verify against the TSA CA certificates ({_short(exc)})",
            ) from None
    name = info.name
    return TokenInfo(
        gen_time=info.gen_time,
        serial=info.serial_number,
        imprint=digest.hex(),
        policy=info.policy.dotted_string,
        tsa_name=name.value.rfc4514_string() if isinstance(name, x509.DirectoryName) else None,
        chain_checked=bool(ca_certificates),
    )


def _short(exc: BaseException) -> str:
    """One readable line of a library's error (OpenSSL's arrive as a debug dump)."""
    text = str(exc)
    found = re.findall(r'(?:data|reason): "([^"]+)"', text)
    if found:
        text = f"{text.split(':', 1)[0]}: {found[-1]}"
    return " ".join(text.split())[:200]
