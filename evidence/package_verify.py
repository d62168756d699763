"""Checking an evidence package offline: every file against SHA256SUMS and its signature,
the segments against the manifest, the chain and the signed head (``verify-package``).

A package carries its own public key, so on its own it only proves it is consistent: a
forger could re-sign a changed package with a key of their own. It proves who signed it
against a :class:`TrustAnchor`, the installation's key obtained another way (its key id
or public key, as ``livewitness keys signing`` or ``GET /api/v1/signing-key`` publish).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import ConfigError, IntegrityError, InvalidInputError, TimestampError
from core.timeutil import parse_iso
from evidence.package_events import check_package_events
from evidence.package_format import (
    _ENTRY_NAME,
    _SEGMENT_NAME,
    _SUM_LINE,
    _TOKEN_NAME,
    FORMAT,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_RATIO,
    MAX_SMALL_BYTES,
    MAX_TOTAL_BYTES,
    PACKAGE_JSON,
    PUBLIC_KEY,
    RATIO_FLOOR,
    REQUIRED,
    SUMS,
    SUMS_SIG,
    TIMESTAMPS,
    TSA_CA,
    PackageReport,
    entry_file,
    expected_name,
    read_whole,
    segment_file,
    signature_files,
)
from evidence.package_keyframes import check_package_keyframes
from storage.blobs.protocol import CHUNK, sha256_bytes
from storage.chain import EVENTS_KIND
from storage.signing import (
    check_key_id,
    check_signature,
    format_version,
    signed_message,
    signing_key_id,
)
from storage.timestamping import check_token, parse_pem_certificates

_PEM_BLOCK = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\r?\n.*?-----END PUBLIC KEY-----\r?\n?", re.DOTALL
)


@dataclass(frozen=True)
class TrustAnchor:
    """The keys a package must be signed with: raw Ed25519 public keys and key ids,
    obtained apart from the package. ``source`` says where from, for reports and errors."""

    source: str
    keys: tuple[bytes, ...] = ()
    key_ids: tuple[str, ...] = ()

    def trusts(self, key: Ed25519PublicKey) -> bool:
        return _raw(key) in self.keys or signing_key_id(key) in self.key_ids


def key_anchor(key: Ed25519PublicKey, source: str = "the given public key") -> TrustAnchor:
    return TrustAnchor(source, keys=(_raw(key),))


def key_id_anchor(key_id: str) -> TrustAnchor:
    """An anchor from a key id as a person typed it (bad input: InvalidInputError)."""
    checked = check_key_id(key_id)
    return TrustAnchor(f"key id {checked}", key_ids=(checked,))


def public_key_anchor(path: Path) -> TrustAnchor:
    """An anchor from a file holding one PEM Ed25519 public key."""
    keys = _pem_keys(path, InvalidInputError)
    if len(keys) != 1:
        raise InvalidInputError(f"{path} holds {len(keys)} public keys, not one")
    return key_anchor(keys[0], f"public key {path}")


def trust_store_anchor(path: Path) -> TrustAnchor:
    """An anchor from a trust store: a file of one or more PEM Ed25519 public keys (the
    ``trusted_signing_keys`` setting); text outside the PEM blocks is ignored."""
    keys = _pem_keys(path, ConfigError)
    return TrustAnchor(f"trust store {path}", keys=tuple(_raw(k) for k in keys))


def _pem_keys(path: Path, error: type[InvalidInputError | ConfigError]) -> list[Ed25519PublicKey]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read public keys from {path} ({exc.strerror})") from None
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise error(f"{path} holds no PEM public key (-----BEGIN PUBLIC KEY-----)")
    keys = []
    for number, block in enumerate(blocks, start=1):
        key = _load_key(block)
        if key is None:
            raise error(f"public key {number} in {path} is not an Ed25519 public key")
        keys.append(key)
    return keys


def verify_package(
    path: Path, trusted: TrustAnchor | Ed25519PublicKey | None = None
) -> PackageReport:
    """Check a package offline. ``trusted`` pins the key it must be signed with; without
    it the report's ``anchor`` is None: consistent in itself, its signer not trusted."""
    anchor = key_anchor(trusted) if isinstance(trusted, Ed25519PublicKey) else trusted
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InvalidInputError(f"no such file: {path}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidInputError(f"{path} is not a LiveWitness evidence package ({exc})") from None
    with archive:
        return _PackageCheck(path, archive).run(anchor)


class _PackageCheck:
    """One pass over an open package. The file list and its signature come first, as they
    cover every file; the chain checks after them still catch what a holder of the key
    could re-sign (a changed segment, a broken link, another head)."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.archive = archive
        self.names = archive.namelist()
        if PACKAGE_JSON not in self.names:
            raise InvalidInputError(
                f"{path} is not a LiveWitness evidence package (it has no {PACKAGE_JSON})"
            )
        self._check_directory()
        self.digests = {name: self._hash(name) for name in self.names}

    def _check_directory(self) -> None:
        """Names and sizes from the zip's directory, before a byte is read or hashed: a
        zip bomb or a file no package holds is refused at once. ``zipfile`` never reads
        past a member's stated sizes, so these bound what the checks below read."""
        infos = self.archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise InvalidInputError(
                f"{self.path} has {len(infos)} files; a package holds at most {MAX_MEMBERS}"
            )
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            if name in seen:
                raise IntegrityError(name, "is in the zip twice")
            seen.add(name)
            if not expected_name(name):
                raise IntegrityError(name[:200], "is not a file an evidence package holds")
        total = stored = 0
        for info in infos:
            name, size, packed = info.filename, info.file_size, info.compress_size
            if read_whole(name) and size > MAX_SMALL_BYTES:
                raise InvalidInputError(
                    f"{self.path}: {name} is {size} bytes unpacked; the verifier reads it"
                    f" whole and accepts at most {MAX_SMALL_BYTES}"
                )
            if size > MAX_MEMBER_BYTES:
                raise InvalidInputError(
                    f"{self.path}: {name} is {size} bytes unpacked; at most"
                    f" {MAX_MEMBER_BYTES} per file"
                )
            if size > RATIO_FLOOR and size > MAX_RATIO * packed:
                raise InvalidInputError(
                    f"{self.path}: {name} unpacks from {packed} to {size} bytes, more than"
                    f" {MAX_RATIO} times: a zip bomb, not a package"
                )
            total += size
            stored += packed
        if total > MAX_TOTAL_BYTES:
            raise InvalidInputError(
                f"{self.path} unpacks to {total} bytes; a package holds at most {MAX_TOTAL_BYTES}"
            )
        if stored > self.path.stat().st_size:  # members sharing their bytes: a bomb too
            raise InvalidInputError(
                f"{self.path}: its files' packed sizes add up to more than the zip itself"
                " (overlapping files, a zip bomb)"
            )

    def _hash(self, name: str) -> str:
        digest = hashlib.sha256()
        try:
            with self.archive.open(name) as member:
                while chunk := member.read(CHUNK):
                    digest.update(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            raise IntegrityError(name, "is damaged in the zip (its CRC does not match)") from None
        return digest.hexdigest()

    def read(self, name: str) -> bytes:
        """A small file whole (read_whole names only: their size was checked)."""
        if name not in self.digests:
            raise IntegrityError(name, "is missing")
        assert read_whole(name), name
        try:
            with self.archive.open(name) as member:
                return member.read(MAX_SMALL_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):  # pragma: no cover
            raise IntegrityError(name, "is damaged in the zip") from None

    def run(self, anchor: TrustAnchor | None) -> PackageReport:
        key = self._check_sums(anchor)
        description = self._description()
        entries, head_sha256 = self._check_chain(description)
        segments = self._check_segments(description, entries)
        self._check_signature(description, key, max(entries), head_sha256)
        stamped_at = self._check_timestamps(max(entries))
        events = check_package_events(
            self.archive, self.names, self.digests, description, entries, MAX_SMALL_BYTES
        )
        sizes = {info.filename: info.file_size for info in self.archive.infolist()}
        keyframes = check_package_keyframes(self.names, self.digests, sizes, entries)
        return PackageReport(
            path=self.path,
            stream=description["stream"],
            since=parse_iso(description["since"]),
            until=parse_iso(description["until"]),
            created_at=parse_iso(description["created_at"]),
            requested_by=description.get("requested_by"),
            files=len(self.names),
            segments=segments,
            entries=(min(entries), max(entries)),
            head_sha256=head_sha256,
            key_id=signing_key_id(key),
            bytes_checked=sum(i.file_size for i in self.archive.infolist()),
            anchor=anchor.source if anchor else None,
            stamped_at=stamped_at,
            events=events,
            keyframes=keyframes,
        )

    def _check_sums(self, anchor: TrustAnchor | None) -> Ed25519PublicKey:
        """Every file against SHA256SUMS, and SHA256SUMS against its signature."""
        sums = self.read(SUMS)
        listed: dict[str, str] = {}
        for number, line in enumerate(sums.decode(errors="replace").split("\n")[:-1], start=1):
            found = _SUM_LINE.match(line)
            if found is None or found.group(2) in listed:
                raise IntegrityError(SUMS, f"line {number} is not '<sha256>  <file>'")
            listed[found.group(2)] = found.group(1)
        if sums != "".join(f"{h}  {n}\n" for n, h in listed.items()).encode():
            raise IntegrityError(SUMS, "is not one '<sha256>  <file>' line per file")
        key = _load_key(self.read(PUBLIC_KEY))
        signed = key is not None and _verifies(key, self.read(SUMS_SIG), sums)
        changed = [n for n in listed if n in self.digests and self.digests[n] != listed[n]]
        missing = [n for n in listed if n not in self.digests]
        unlisted = [n for n in self.names if n not in listed and n not in (SUMS, SUMS_SIG)]
        if key is None:
            raise IntegrityError(PUBLIC_KEY, "is not an Ed25519 public key")
        if not signed:
            if PUBLIC_KEY in changed and not self._describes(key, changed):
                raise IntegrityError(PUBLIC_KEY, "is not the key that signed this package")
            if changed or missing or unlisted:
                raise IntegrityError(SUMS, "does not match the files, nor its signature")
            raise IntegrityError(SUMS_SIG, "does not verify SHA256SUMS with public_key.pem")
        if changed:
            raise IntegrityError(changed[0], "does not match its SHA-256 in SHA256SUMS")
        if missing:
            raise IntegrityError(missing[0], "is listed in SHA256SUMS but missing")
        if unlisted:
            raise IntegrityError(unlisted[0], "is not listed in SHA256SUMS")
        if anchor is not None and not anchor.trusts(key):
            raise IntegrityError(
                PUBLIC_KEY, f"is key {signing_key_id(key)}, not the trusted key ({anchor.source})"
            )
        return key

    def _describes(self, key: Ed25519PublicKey, changed: list[str]) -> bool:
        """Whether an unchanged package.json names ``key``: then the key in the zip is the
        one the package was made with, and it is SHA256SUMS's line for it that changed."""
        if PACKAGE_JSON in changed:
            return False
        try:
            described = json.loads(self.read(PACKAGE_JSON)).get("key_id")
        except (ValueError, AttributeError):
            return False
        return bool(described == signing_key_id(key))

    def _description(self) -> dict[str, Any]:
        try:
            description = json.loads(self.read(PACKAGE_JSON))
            if description["format"] != FORMAT or description["version"] != 1:
                raise ValueError
            for field in ("since", "until", "created_at"):
                parse_iso(description[field])
            files = set(description["files"])
        except (ValueError, TypeError, KeyError, InvalidInputError):
            raise IntegrityError(PACKAGE_JSON, "is not a LiveWitness package description") from None
        present = set(self.names) - {PACKAGE_JSON}
        for name in sorted(files ^ present):
            problem = "is not in package.json's file list" if name in present else "is missing"
            raise IntegrityError(name, problem)
        for name in REQUIRED:
            if name not in self.digests:
                raise IntegrityError(name, "is missing")
        return dict(description)

    def _check_chain(self, description: dict[str, Any]) -> tuple[dict[int, Any], str]:
        """Entries by index, each linking to the one before; returns them and the head's
        SHA-256."""
        found: dict[int, str] = {}
        for name in self.names:
            if name.startswith("manifest/"):
                matched = _ENTRY_NAME.match(name)
                if matched is None:
                    raise IntegrityError(name, "is not named like a manifest entry")
                found[int(matched.group(1))] = name
        if not found:
            raise IntegrityError("manifest/", "has no entries")
        entries: dict[int, Any] = {}
        previous: str | None = None
        for idx in range(min(found), max(found) + 1):
            name = found.get(idx, entry_file(idx))
            raw = self.read(name)
            try:
                record = json.loads(raw)
                kind = record["kind"]
                in_place = record["index"] == idx and record["stream"] == description["stream"]
            except (ValueError, TypeError, KeyError):
                raise IntegrityError(name, "is not a manifest entry") from None
            if not in_place:
                raise IntegrityError(name, "is out of place (another index or stream)")
            if previous is not None and record.get("prev") != previous:
                raise IntegrityError(name, "does not link to the entry before it")
            # end: a recording session's end; keyframes and events claim no time
            if kind not in ("segment", "gap", "end", "keyframes", EVENTS_KIND):
                raise IntegrityError(name, f"has an unknown kind {kind!r}")
            try:  # hashed as stored whatever its version, but only known versions
                format_version(record)
            except ValueError:
                raise IntegrityError(name, "has an unknown format version") from None
            entries[idx] = record
            previous = sha256_bytes(raw)
        assert previous is not None
        return entries, previous

    def _check_segments(self, description: dict[str, Any], entries: dict[int, Any]) -> list[int]:
        """Each segment file matches its entry; every segment entry up to the range's last
        one has its file."""
        by_seq = {
            r["segment"]["seq"]: (idx, r["segment"])
            for idx, r in entries.items()
            if r["kind"] == "segment"
        }
        seqs = []
        for name in self.names:
            if not name.startswith("segments/"):
                continue
            matched = _SEGMENT_NAME.match(name)
            seq = int(matched.group(1)) if matched else -1
            if seq not in by_seq:
                raise IntegrityError(name, "has no manifest entry in this package")
            idx, body = by_seq[seq]
            size = self.archive.getinfo(name).file_size
            if self.digests[name] != body.get("sha256") or size != body.get("size"):
                raise IntegrityError(name, f"does not match its manifest entry {entry_file(idx)}")
            seqs.append(seq)
        try:
            last = int(description["manifest"]["last_covering_index"])
            # Entries may start before the range's segments (a batch of its stream events
            # chained earlier); packages without events start at the first segment.
            first = int(description["manifest"].get("first_covering_index", min(entries)))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise IntegrityError(PACKAGE_JSON, "does not say which entries the range has") from None
        for seq, (idx, _body) in sorted(by_seq.items()):
            if first <= idx <= last and seq not in seqs:
                raise IntegrityError(segment_file(seq), "is missing (its entry is in the range)")
        if not seqs:
            raise IntegrityError("segments/", "has no segments")
        return sorted(seqs)

    def _check_signature(
        self, description: dict[str, Any], key: Ed25519PublicKey, head: int, head_sha256: str
    ) -> None:
        record_name, message_name, signature_name = signature_files(head)
        raw = self.read(record_name)
        try:
            record = json.loads(raw)
            payload = record["payload"]
            signed = base64.b64decode(record["signature"], validate=True)
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise IntegrityError(record_name, "is not a signature record") from None
        if not check_signature(record, key):
            raise IntegrityError(record_name, "does not verify with public_key.pem")
        if (
            payload.get("head_index") != head
            or payload.get("head_sha256") != head_sha256
            or payload.get("stream") != description["stream"]
        ):
            raise IntegrityError(record_name, f"does not sign the chain head {entry_file(head)}")
        said = description.get("signed_head")
        if not isinstance(said, dict) or said.get("index") != head:
            raise IntegrityError(PACKAGE_JSON, f"does not name {entry_file(head)} as signed head")
        if payload.get("key_id") != signing_key_id(key) or description.get(
            "key_id"
        ) != signing_key_id(key):
            raise IntegrityError(record_name, "names another signing key")
        if self.read(message_name) != signed_message(payload):
            raise IntegrityError(message_name, f"is not the message signed in {record_name}")
        if self.read(signature_name) != signed:
            raise IntegrityError(signature_name, f"is not the signature in {record_name}")

    def _check_timestamps(self, head: int) -> tuple[datetime, ...]:
        """Each RFC 3161 token stamps the signed head's message and, given the packaged
        TSA CA certificates, verifies against them; returns the tokens' TSA times."""
        tokens = sorted(n for n in self.names if n.startswith(TIMESTAMPS) and n != TSA_CA)
        if not tokens:
            return ()
        ca: list[x509.Certificate] = []
        if TSA_CA in self.names:
            try:
                ca = parse_pem_certificates(self.read(TSA_CA))
            except ValueError:
                raise IntegrityError(TSA_CA, "holds no PEM certificates") from None
        message = self.read(signature_files(head)[1])  # checked against its record above
        times = []
        for name in tokens:
            matched = _TOKEN_NAME.match(name)
            if matched is None:
                raise IntegrityError(name, "is not named like a time-stamp token")
            if int(matched.group(1)) != head:
                raise IntegrityError(name, f"is not a token of the signed head {entry_file(head)}")
            try:
                times.append(check_token(self.read(name), message, ca).gen_time)
            except TimestampError as exc:
                raise IntegrityError(name, str(exc)) from None
        return tuple(times)


def _load_key(pem: bytes) -> Ed25519PublicKey | None:
    try:
        loaded = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        return None
    return loaded if isinstance(loaded, Ed25519PublicKey) else None


def _verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
