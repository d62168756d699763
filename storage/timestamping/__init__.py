"""Trusted time: RFC 3161 time-stamps from TSAs over every signed chain head.

What is stamped is the exact bytes a head's Ed25519 signature signs (its canonical
payload, which names the head's SHA-256), so a token proves that the head, and through
the hash chain every entry and segment before it, existed at the TSA's time. Each token
is the TSA's whole response as received, an immutable blob beside the signature
(``streams/NAME/timestamps/<head>.<tsa id>.tsr``, :func:`~storage.blob_keys.timestamp_key`)
indexed in the catalog (``timestamp_tokens``).

The audit log's signed heads are stamped the same way (``audit/timestamps/``). A token
arrives after the head it stamps, so the chain lists it by SHA-256 in the next entry it
appends (``timestamps``, ``storage/chain.py``): removing a listed token then fails
``verify``. A stopped stream's last head gets no later entry (one would be a new, unsigned
head); its tokens are bound by their own imprint and the TSA's signature, and witnesses
hold them (``timestamp`` webhook events). Losing a token loses only the proof of time,
never what the chain proves.

- :mod:`.tokens`: checking a token (arrival, ``verify``, ``verify-package``);
- :mod:`.client`: the HTTP request to a TSA;
- :mod:`.stamper`: the background thread of ``serve`` and ``recorder``.
"""

from __future__ import annotations

from storage.timestamping.client import TsaClient
from storage.timestamping.stamper import Stamper, stamping
from storage.timestamping.tokens import (
    TokenInfo,
    check_token,
    decode_response,
    load_ca_bundle,
    parse_pem_certificates,
    stamped_bytes,
    tsa_id,
    tsa_label,
    tsa_public_url,
)

__all__ = [
    "Stamper",
    "TokenInfo",
    "TsaClient",
    "check_token",
    "decode_response",
    "load_ca_bundle",
    "parse_pem_certificates",
    "stamped_bytes",
    "stamping",
    "tsa_id",
    "tsa_label",
    "tsa_public_url",
]
