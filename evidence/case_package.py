"""A case's evidence package: one evidence package per moment, the case's signed
overlays and its readable report, in one zip (docs/formats.md, "Case packages").

    README.txt            how to check it
    case.json             the case, its moments and every overlay with its signed record
    report.pdf            the signed report (evidence/report.py)
    moments/NNN.zip       an evidence package of each moment's range, unchanged
    public_key.pem        the installation's key
    SHA256SUMS(.sig)      every file's SHA-256, signed (Ed25519), as in a package

``verify-package`` recognises it by ``case.json`` and checks the outer list and its
signature, each inner package in full, and each overlay's signature.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import IntegrityError, InvalidInputError
from core.timeutil import iso, utc_now
from evidence.cases import CaseView, case_view
from evidence.package import build_package
from evidence.package_format import (
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_RATIO,
    MAX_SMALL_BYTES,
    PUBLIC_KEY,
    RATIO_FLOOR,
    README,
    SUMS,
    SUMS_SIG,
    PackageReport,
)
from evidence.package_verify import TrustAnchor, verify_package
from storage.blobs.protocol import CHUNK, sha256_bytes, sha256_file
from storage.scratch import process_scratch
from storage.signing import check_signature, signing_key_id
from storage.stores import Stores

CASE_FORMAT = "livewitness-case-package"
CASE_JSON = "case.json"
REPORT_PDF = "report.pdf"
_MOMENT_ZIP = re.compile(r"^moments/\d{3,6}\.zip$")
_SUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S(?:.*\S)?)$")
_FIXED = frozenset((README, CASE_JSON, REPORT_PDF, PUBLIC_KEY, SUMS, SUMS_SIG))


@dataclass(frozen=True)
class CasePackageInfo:
    path: Path
    sha256: str
    size: int
    case_id: int
    moments: int
    overlays: int
    report: bool
    key_id: str


@dataclass(frozen=True)
class CasePackageReport:
    path: Path
    case_id: int
    title: str
    key_id: str
    packages: tuple[PackageReport, ...]
    overlays: int
    overlays_ok: int
    report: bool
    anchor: str | None

    @property
    def trusted(self) -> bool:
        return self.anchor is not None


def is_case_package(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return CASE_JSON in archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def moment_file(number: int) -> str:
    return f"moments/{number:03d}.zip"


def case_json(view: CaseView, key_id: str) -> dict[str, Any]:
    """The case as the package and GET /cases/{id} tell it, overlays beside the evidence."""
    case = view.case
    return {
        "format": CASE_FORMAT,
        "version": 1,
        "key_id": key_id,
        "case": {
            "id": case.id,
            "external_id": case.external_id,
            "title": case.title,
            "status": case.status,
            "created_at": iso(case.created_at),
            "created_by": case.created_by,
            "updated_at": iso(case.updated_at),
            "updated_by": case.updated_by,
            "closed_at": iso(case.closed_at) if case.closed_at else None,
        },
        "moments": [
            {
                "id": m.moment.id,
                "package": moment_file(number),
                "stream": m.stream,
                "start_offset": m.moment.start_offset,
                "end_offset": m.moment.end_offset,
                "since": iso(m.moment.starts_at),
                "until": iso(m.moment.ends_at),
                "found_by": m.moment.found_by,
                "matched": list(m.matched),
                # Not evidence: people's notes, tags and corrections, each signed.
                "overlays": [
                    {
                        "kind": o.row.kind,
                        "text": o.row.text,
                        "author": o.row.author,
                        "at": iso(o.row.at),
                        "signature_ok": o.signature_ok,
                        "signed": o.record,
                    }
                    for o in m.overlays
                ],
            }
            for number, m in enumerate(view.moments, start=1)
        ],
    }


def require_moments(stores: Stores, case_id: int) -> None:
    """Refuse at once to export a case with nothing in it (before any work)."""
    stores.catalog.get_case(case_id)
    if not stores.catalog.case_moments(case_id):
        raise InvalidInputError(f"case {case_id} has no moments to export")


def build_case_package(
    stores: Stores,
    case_id: int,
    out: Path,
    requested_by: str,
    report_pdf: bytes | None = None,
) -> CasePackageInfo:
    view = case_view(stores, case_id)
    if not view.moments:
        raise InvalidInputError(f"case {case_id} has no moments to export")
    signer = stores.chain.signer
    files: dict[str, bytes | Path] = {}
    work = process_scratch(stores.settings)
    with tempfile.TemporaryDirectory(prefix="case-", dir=work) as tmp:
        for number, moment in enumerate(view.moments, start=1):
            inner = Path(tmp) / f"{number:03d}.zip"
            build_package(
                stores,
                moment.stream,
                moment.moment.starts_at,
                moment.moment.ends_at,
                inner,
                requested_by=requested_by,
            )
            files[moment_file(number)] = inner
        described = case_json(view, signer.key_id)
        described["created_at"] = iso(utc_now())
        described["requested_by"] = requested_by
        files[CASE_JSON] = (json.dumps(described, ensure_ascii=False, indent=2) + "\n").encode()
        if report_pdf is not None:
            files[REPORT_PDF] = report_pdf
        files[PUBLIC_KEY] = signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        files[README] = _readme(view, report_pdf is not None).encode()
        sums = "".join(
            f"{sha256_bytes(c) if isinstance(c, bytes) else sha256_file(c)}  {n}\n"
            for n, c in sorted(files.items())
        ).encode()
        files[SUMS] = sums
        files[SUMS_SIG] = signer.private_key.sign(sums)
        _write(out, files)
    verify_case_package(out, signer.public_key)  # nothing leaves that would not check out
    overlays = sum(len(m.overlays) for m in view.moments)
    return CasePackageInfo(
        path=out,
        sha256=sha256_file(out),
        size=out.stat().st_size,
        case_id=case_id,
        moments=len(view.moments),
        overlays=overlays,
        report=report_pdf is not None,
        key_id=signer.key_id,
    )


def _write(out: Path, files: dict[str, bytes | Path]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w") as archive:
            for name in sorted(files, key=lambda n: (n != README, n.startswith("moments/"), n)):
                content = files[name]
                packed = zipfile.ZIP_STORED if name.endswith(".zip") else zipfile.ZIP_DEFLATED
                if isinstance(content, bytes):
                    archive.writestr(name, content, compress_type=packed)
                else:
                    archive.write(content, name, compress_type=packed)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def _readme(view: CaseView, report: bool) -> str:
    lines = [
        f"LiveWitness case package: case {view.case.id} ({view.case.title})",
        "",
        "moments/NNN.zip are evidence packages, one per moment, each checked on its own",
        "(its README.txt says how, with sha256sum and openssl alone).",
        "case.json lists the moments and the notes, tags and transcript corrections people",
        "added. Those are NOT evidence: each is signed (Ed25519, RFC 8785 JSON, with its",
        "author and time) and shown beside the machine transcript, never replacing it.",
    ]
    if report:
        lines.append("report.pdf is the readable report (signed PDF).")
    lines += [
        "",
        "Check every file of this zip:",
        "  sha256sum -c SHA256SUMS",
        "  openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin \\",
        "    -in SHA256SUMS -sigfile SHA256SUMS.sig",
        "or all of it at once: livewitness verify-package case.zip --key-id KEY_ID",
        "",
    ]
    return "\n".join(lines)


def verify_case_package(
    path: Path, trusted: TrustAnchor | Ed25519PublicKey | None = None
) -> CasePackageReport:
    """Check a case package offline: the outer files against SHA256SUMS and its signature,
    every inner evidence package in full, every overlay's signature."""
    anchor = (
        TrustAnchor("the given public key", keys=(_raw(trusted),))
        if isinstance(trusted, Ed25519PublicKey)
        else trusted
    )
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InvalidInputError(f"no such file: {path}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidInputError(f"{path} is not a LiveWitness case package ({exc})") from None
    with archive, tempfile.TemporaryDirectory(prefix="case-verify-") as tmp:
        names = _check_directory(path, archive)
        digests = {n: _hash(archive, n) for n in names}
        key = _check_sums(archive, digests, anchor)
        described = json.loads(_small(archive, CASE_JSON))
        if described.get("format") != CASE_FORMAT or described.get("version") != 1:
            raise IntegrityError(CASE_JSON, "is not a case package description of version 1")
        packages = []
        for name in sorted(n for n in names if _MOMENT_ZIP.match(n)):
            inner = Path(tmp) / name.replace("/", "-")
            with archive.open(name) as src, inner.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
            try:
                packages.append(verify_package(inner, anchor or key))
            except IntegrityError as exc:
                raise IntegrityError(name, f"(an evidence package) {exc}") from None
            inner.unlink()
        listed = [m.get("package") for m in described.get("moments", [])]
        if sorted(listed) != sorted(n for n in names if _MOMENT_ZIP.match(n)):
            raise IntegrityError(CASE_JSON, "does not list the moments' packages the zip holds")
        overlays = ok = 0
        for moment in described["moments"]:
            for overlay in moment.get("overlays", []):
                overlays += 1
                signed = overlay.get("signed")
                good = isinstance(signed, dict) and check_signature(signed, key)
                payload = signed.get("payload", {}) if isinstance(signed, dict) else {}
                if good and all(payload.get(f) == overlay.get(f) for f in ("kind", "text")):
                    ok += 1
        case = described.get("case", {})
        return CasePackageReport(
            path=path,
            case_id=int(case.get("id", 0)),
            title=str(case.get("title", "")),
            key_id=signing_key_id(key),
            packages=tuple(packages),
            overlays=overlays,
            overlays_ok=ok,
            report=REPORT_PDF in names,
            anchor=anchor.source if anchor is not None else None,
        )


def _check_directory(path: Path, archive: zipfile.ZipFile) -> list[str]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise InvalidInputError(f"{path} has {len(infos)} files; at most {MAX_MEMBERS}")
    names: list[str] = []
    for info in infos:
        name = info.filename
        if name in names:
            raise IntegrityError(name, "is in the zip twice")
        if name not in _FIXED and not _MOMENT_ZIP.match(name):
            raise IntegrityError(name[:200], "is not a file a case package holds")
        if info.file_size > MAX_MEMBER_BYTES or (
            info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size
        ):
            raise InvalidInputError(f"{path}: {name} is too large unpacked (a zip bomb?)")
        small = name in _FIXED and name != REPORT_PDF  # read whole
        if small and info.file_size > MAX_SMALL_BYTES:
            raise InvalidInputError(f"{path}: {name} is larger than {MAX_SMALL_BYTES} bytes")
        names.append(name)
    for required in (CASE_JSON, PUBLIC_KEY, SUMS, SUMS_SIG):
        if required not in names:
            raise IntegrityError(required, "is missing")
    return names


def _hash(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    try:
        with archive.open(name) as member:
            while chunk := member.read(CHUNK):
                digest.update(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise IntegrityError(name, "is damaged in the zip (its CRC does not match)") from None
    return digest.hexdigest()


def _small(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as member:
        return member.read(MAX_SMALL_BYTES + 1)


def _check_sums(
    archive: zipfile.ZipFile, digests: dict[str, str], anchor: TrustAnchor | None
) -> Ed25519PublicKey:
    sums = _small(archive, SUMS)
    listed: dict[str, str] = {}
    for number, line in enumerate(sums.decode(errors="replace").split("\n")[:-1], start=1):
        found = _SUM_LINE.match(line)
        if found is None or found.group(2) in listed:
            raise IntegrityError(SUMS, f"line {number} is not '<sha256>  <file>'")
        listed[found.group(2)] = found.group(1)
    try:
        loaded = serialization.load_pem_public_key(_small(archive, PUBLIC_KEY))
    except ValueError:
        loaded = None
    if not isinstance(loaded, Ed25519PublicKey):
        raise IntegrityError(PUBLIC_KEY, "is not an Ed25519 public key")
    try:
        loaded.verify(_small(archive, SUMS_SIG), sums)
    except (InvalidSignature, ValueError):
        raise IntegrityError(SUMS_SIG, "does not verify SHA256SUMS with public_key.pem") from None
    for name, digest in digests.items():
        if name in (SUMS, SUMS_SIG):
            continue
        if name not in listed:
            raise IntegrityError(name, "is not listed in SHA256SUMS")
        if listed[name] != digest:
            raise IntegrityError(name, "does not match its SHA-256 in SHA256SUMS")
    for name in listed:
        if name not in digests:
            raise IntegrityError(name, "is listed in SHA256SUMS but missing")
    if anchor is not None and not anchor.trusts(loaded):
        raise IntegrityError(
            PUBLIC_KEY, f"is key {signing_key_id(loaded)}, not the trusted key ({anchor.source})"
        )
    return loaded


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
