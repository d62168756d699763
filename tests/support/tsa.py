"""A real RFC 3161 time-stamping authority on 127.0.0.1 (tests and bench/).

``make_tsa_pki`` makes a throwaway CA and a TSA certificate (extendedKeyUsage
timeStamping, critical) with the ``cryptography`` library, and an ``openssl ts -reply``
configuration; ``LocalTsa`` serves ``POST application/timestamp-query`` by running
``openssl ts -reply`` on each request, so tokens are made by OpenSSL, not by us.

Modes play the TSAs a deployment meets: ``ok``; ``garbage`` (200 with bytes that are no
time-stamp response); ``mismatch`` (a real token, but over another message: it stamps a
query of its own); ``refused`` (a response with status "rejection"). A TSA that is down
is a URL on a port nothing listens on (``closed_url``); ``start`` on that port later
brings it up.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from asn1crypto import core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.media import free_port

Mode = Literal["ok", "garbage", "mismatch", "refused"]
POLICY = "1.3.6.1.4.1.55555.1.1"  # a made-up policy OID of the test TSA


class _Refusal(core.Sequence):  # type: ignore[misc]
    """A TimeStampResp without its (optional) token, which asn1crypto's own class requires."""

    _fields = [("status", tsp.PKIStatusInfo)]  # noqa: RUF012 - asn1crypto's declaration


#: A well-formed answer that grants nothing (PKIStatus rejection, badAlg).
REFUSED = _Refusal(
    {
        "status": {
            "status": "rejection",
            "status_string": ["unsupported algorithm"],
            "fail_info": tsp.PKIFailureInfo({"bad_alg"}),
        }
    }
).dump()


@dataclass(frozen=True)
class TsaPki:
    directory: Path
    ca_pem: Path  # the trust anchor: what LIVEWITNESS_TSA_CA_BUNDLE points at
    tsa_cert: Path
    tsa_key: Path
    config: Path  # openssl ts -reply configuration (section tsa_config1)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LiveWitness tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_tsa_pki(directory: Path, name: str = "Test TSA") -> TsaPki:
    """A CA and a TSA certificate it issued, valid from a day ago for ten years."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{name} Root CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = directory / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tsa_cert = directory / "tsa.pem"
    tsa_cert.write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
    key_path = directory / "tsa.key"
    key_path.write_bytes(_key_pem(tsa_key))
    (directory / "serial").write_text("01\n")
    config = directory / "tsa.cnf"
    config.write_text(
        f"""[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {directory}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {POLICY}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
    )
    return TsaPki(directory, ca_pem, tsa_cert, key_path, config)


def closed_url() -> str:
    """The URL of a TSA that is down: nothing listens on its port."""
    return f"http://127.0.0.1:{free_port()}/tsr"


class LocalTsa:
    """``openssl ts -reply`` behind ``http.server``; ``start``/``stop`` again on the same
    port to play a TSA that is down for a while."""

    def __init__(self, pki: TsaPki, mode: Mode = "ok", port: int | None = None) -> None:
        self.pki = pki
        self.mode: Mode = mode
        self.port = port or free_port()
        self.requests = 0
        self.authorization: str | None = None  # the last request's Authorization header
        self._server: ThreadingHTTPServer | None = None
        # openssl ts -reply reads and writes the serial file: one reply at a time.
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tsr"

    def reply(self, query: bytes) -> bytes:
        """The TSA's answer to a DER TimeStampReq, made by openssl."""
        with self._lock, tempfile.TemporaryDirectory(prefix="lw-tsa-") as tmp:
            query_file = Path(tmp) / "query.tsq"
            if self.mode == "mismatch":
                other = Path(tmp) / "other"
                other.write_bytes(os.urandom(32))
                subprocess.run(
                    ["openssl", "ts", "-query", "-data", str(other), "-sha256", "-cert"]
                    + ["-out", str(query_file)],
                    check=True,
                    capture_output=True,
                )
            else:
                query_file.write_bytes(query)
            out = Path(tmp) / "reply.tsr"
            subprocess.run(
                ["openssl", "ts", "-reply", "-config", str(self.pki.config)]
                + ["-queryfile", str(query_file), "-out", str(out)],
                check=True,
                capture_output=True,
            )
            return out.read_bytes()

    def start(self) -> LocalTsa:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                query = self.rfile.read(length)
                tsa.requests += 1
                tsa.authorization = self.headers.get("Authorization")
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self.send_error(415)
                    return
                if tsa.mode == "garbage":
                    body = b"<html>not a TSA</html>"
                elif tsa.mode == "refused":
                    body = REFUSED
                else:
                    body = tsa.reply(query)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalTsa:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
