"""Signing a PDF report (PAdES) with the installation's key material, time-stamped by the
configured TSAs through the egress policy.

Why not the Ed25519 key itself: pyHanko signs with Ed25519, but the readers a court or a
platform uses do not check it (poppler's ``pdfsig`` answers "Document isn't signed or
corrupted data", and Acrobat has no EdDSA either). So the report is signed with a
report-signing key (ECDSA P-256, which every reader checks) whose certificate is issued
by the installation's Ed25519 key: the chain ends at a self-signed certificate of that
key, whose key id is the one the chains are signed with (``livewitness keys signing``).
Trust in a report therefore comes from the same pinned key as trust in the chains.

Both are made once, beside the signing key (``settings.signing_keys_dir``):

- ``report-signing.pem`` (mode 0600): the P-256 private key, its certificate and the
  installation's certificate, in one file so that they are always made and replaced
  together;
- ``signing.ed25519.cert.pub.pem``: the installation's self-signed certificate alone, the
  trust anchor to give a validator (``pyhanko sign validate --trust``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from core.errors import ConfigError, TimestampError
from core.settings import Settings
from storage.file_modes import make_private_dir
from storage.signing import Signer, signing_key_id
from storage.timestamping import TsaClient, load_ca_bundle, tsa_label

log = logging.getLogger(__name__)

REPORT_KEY_NAME = "report-signing.pem"
INSTALLATION_CERT_NAME = "signing.ed25519.cert.pub.pem"  # .pub.pem: public (file_modes.py)
CERT_YEARS = 30  # a report must stay checkable for as long as its evidence is kept
FIELD_NAME = "LiveWitnessSignature"


@dataclass(frozen=True)
class ReportKey:
    """The report-signing key and its chain up to the installation's key."""

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate  # the report-signing key's, issued by the installation
    installation_certificate: x509.Certificate  # self-signed, the installation's Ed25519 key
    key_id: str  # the installation's signing key id

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the report-signing certificate (DER), as validators print it."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LiveWitness"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=sign,  # nonRepudiation: the report is a statement of record
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _make_report_key(installation: Ed25519PrivateKey, now: datetime) -> bytes:
    key_id = signing_key_id(installation.public_key())
    root_name = _name(f"LiveWitness installation {key_id}")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(installation.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * CERT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(installation.public_key()), critical=False
        )
        .sign(installation, None)  # Ed25519 takes no separate hash
    )
    report_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"LiveWitness report signer {key_id}"))
        .issuer_name(root_name)
        .public_key(report_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * CERT_YEARS - 1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(installation.public_key()),
            critical=False,
        )
        .sign(installation, None)
    )
    private_pem = report_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = serialization.Encoding.PEM
    return private_pem + leaf.public_bytes(pem) + root.public_bytes(pem)


def load_report_key(settings: Settings, signer: Signer) -> ReportKey:
    """The report-signing key beside the installation's key, made on first use."""
    directory = settings.signing_keys_dir
    make_private_dir(directory)
    path = directory / REPORT_KEY_NAME
    try:
        if not path.exists():
            _store_new_key(path, _make_report_key(signer.private_key, datetime.now(UTC)))
        data = path.read_bytes()
    except OSError as exc:  # a read-only keys directory, say
        raise ConfigError(f"cannot make or read the report-signing key {path}: {exc}") from None
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
        leaf, root = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a report-signing key and its chain: {exc}") from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} does not hold an ECDSA key")
    if root.public_key() != signer.public_key:
        raise ConfigError(
            f"{path} was issued by another signing key than this installation's"
            f" ({signer.key_id}): remove it, and a new one is made for this key"
        )
    root_path = directory / INSTALLATION_CERT_NAME
    root_pem = root.public_bytes(serialization.Encoding.PEM)
    try:
        if not root_path.exists() or root_path.read_bytes() != root_pem:
            root_path.write_bytes(root_pem)  # public, like signing.ed25519.pub.pem
    except OSError as exc:  # a copy for people to take; the key file holds it too
        log.warning("cannot write %s: %s", root_path, exc)
    return ReportKey(private_key, leaf, root, signer.key_id)


def _store_new_key(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    # link, not rename: of two processes making it at once, the first one's stays.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


class EgressTimeStamper(TimeStamper):
    """pyHanko's RFC 3161 client on top of ours (storage/timestamping/client.py), so the
    request goes through the egress policy like every other outbound request (pyHanko's
    own HTTPTimeStamper uses ``requests`` and would bypass it). The TSAs are asked in
    their configured order; the first that grants a token stamps the signature."""

    def __init__(self, client: TsaClient, urls: Sequence[str]) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self.client = client
        self.urls = list(urls)

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        failures = []
        for url in self.urls:
            try:
                raw = self.client.post_query(url, req.dump())
                response = tsp.TimeStampResp.load(raw)
                if response["status"]["status"].native != "granted":
                    raise TimestampError("refused", f"TSA {tsa_label(url)} refused the request")
                return response
            except TimestampError as exc:
                failures.append(str(exc))
            except ValueError as exc:
                failures.append(f"TSA {tsa_label(url)} answered garbage ({exc})")
        raise TimestampRequestError("; ".join(failures) or "no TSA configured")


@dataclass(frozen=True)
class SignedReport:
    pdf: bytes
    time_stamped: bool  # whether a TSA's token is embedded in the signature


def sign_report(
    pdf: bytes, key: ReportKey, settings: Settings, *, reason: str, location: str = ""
) -> SignedReport:
    """Sign ``pdf`` (PAdES, ETSI.CAdES.detached); with TSAs configured, the signature
    carries a TSA's time-stamp (PAdES B-T). A report is still signed when every TSA
    fails, without trusted time, and the failure is logged."""
    root = _asn1_certificate(key.installation_certificate)
    registry = SimpleCertificateStore.from_certs([root])  # type: ignore[no-untyped-call]
    signer = signers.SimpleSigner(
        signing_cert=_asn1_certificate(key.certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            key.private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
        cert_registry=registry,
    )
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location or None,
        name=f"LiveWitness {key.key_id}",
    )
    if settings.tsa_urls:
        ca = settings.tsa_ca_bundle
        client = TsaClient(
            settings.tsa_timeout_seconds, load_ca_bundle(ca) if ca else [], settings.egress_allow
        )
        try:
            stamper = EgressTimeStamper(client, settings.tsa_urls)
            return SignedReport(_sign(pdf, meta, signer, stamper), time_stamped=True)
        except TimestampRequestError as exc:
            log.warning("report signed without a TSA time-stamp: %s", exc)
        finally:
            client.close()
    return SignedReport(_sign(pdf, meta, signer, None), time_stamped=False)


def _sign(pdf: bytes, meta: Any, signer: Any, stamper: TimeStamper | None) -> bytes:
    def run() -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        out = signers.sign_pdf(writer, meta, signer=signer, timestamper=stamper)
        return bytes(out.getvalue())

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no event loop in this thread
        return run()
    # pyHanko's sign_pdf runs its own event loop (asyncio.run), which cannot start inside
    # a running one (an async caller): sign in a thread of its own then.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


__all__ = [
    "INSTALLATION_CERT_NAME",
    "REPORT_KEY_NAME",
    "EgressTimeStamper",
    "ReportKey",
    "SignedReport",
    "load_report_key",
    "sign_report",
]
