"""The case report (evidence/report.py) on a real recording: the 30 s test video recorded
into ~6 s segments, with a transcript stored for two of them (synthetic words, stored the
real way). Every page is rendered with poppler's ``pdftoppm``, its text read with
``pdftotext`` (Chinese included), its pictures taken out with ``pdfimages`` and matched
against ffmpeg's own frames of the source video, and the signature validated with
pyHanko's validation API, with and without a TSA's time-stamp (the local openssl TSA).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from core.errors import ConfigError
from core.settings import Settings
from evidence.report import (
    ReportCase,
    ReportMoment,
    ReportNote,
    decode_frame,
    render_case_report,
)
from evidence.report_signing import INSTALLATION_CERT_NAME, REPORT_KEY_NAME, load_report_key
from storage.file_modes import exposed_paths
from storage.models import Segment
from storage.signing import Signer
from storage.stores import Stores, open_stores
from storage.timestamping import Stamper
from tests.support.moments import record
from tests.support.searchdata import store_utterances
from tests.support.tsa import LocalTsa, closed_url, make_tsa_pki

POPPLER = ("pdftoppm", "pdftotext", "pdfimages", "pdfsig")
pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in POPPLER),
    reason="poppler-utils (pdftoppm, pdftotext, pdfimages, pdfsig) is not installed",
)
FPS = 25
# The source's first picture comes 0.064 s after its first (audio) packet, where the
# recorder anchors the stream's start (as in test_moments.py).
SOURCE_LAG = 0.064
WIDTH, HEIGHT = 426, 240  # the test video's picture
NOTED_AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def two_moments() -> ReportCase:
    return ReportCase(
        id=7,
        external_id="AS-2026-0042",
        title="羽绒服 包邮 承诺纠纷",
        status="open",
        moments=(
            ReportMoment(
                stream="shop",
                start_offset=7.0,
                end_offset=10.0,
                found_by='search "包邮"',
                matched=("包邮",),
                tags=("shipping",),
                notes=(
                    ReportNote(
                        "correction",
                        "actually said: 包邮到家",
                        "reviewer-key 3 (alice)",
                        NOTED_AT,
                        True,
                    ),
                    ReportNote(
                        "note", "买家截图与此一致", "reviewer-key 3 (alice)", NOTED_AT, False
                    ),
                ),
            ),
            ReportMoment(
                stream="shop",
                start_offset=13.4,
                end_offset=15.0,
                found_by="banned 最低价",
                matched=("最低价",),
                tags=(),
                notes=(),
            ),
        ),
    )


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, test_video: Path
) -> Iterator[tuple[Stores, list[Segment]]]:
    stores = open_stores(Settings(home=tmp_path_factory.mktemp("report") / "home"))
    segments = record(stores, test_video)
    # Segment 1 (~6-12 s) and 2 (~12-18 s): what the speech recogniser would have stored.
    store_utterances(
        stores, "shop", segments[1], [(0.5, "下单就包邮买一送一"), (3.5, "七天无理由退货")]
    )
    store_utterances(stores, "shop", segments[2], [(0.2, "全网最低价假一赔十")])
    yield stores, segments
    stores.close()


@pytest.fixture(scope="module")
def report(
    recorded: tuple[Stores, list[Segment]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    stores, _segments = recorded
    path = tmp_path_factory.mktemp("report-pdf") / "case.pdf"
    path.write_bytes(
        render_case_report(stores, two_moments(), generated_by="reviewer-key 3 (alice)")
    )
    return path


def pdf_text(path: Path) -> str:
    """The text of every page as one run without line breaks or spaces (long lines wrap)."""
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return flat(text)


def flat(text: str) -> str:
    return "".join(text.split())


def anchor(pem: Path) -> asn1_x509.Certificate:
    certificate = x509.load_pem_x509_certificate(pem.read_bytes())
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def validate(data: bytes, trust: Path, ts_trust: Path | None = None) -> PdfSignatureStatus:
    """pyHanko's validation of the one signature, trusting ``trust`` (the installation's
    certificate) and, for the time-stamp, ``ts_trust`` (the TSA's CA)."""
    reader = PdfFileReader(io.BytesIO(data))
    assert len(reader.embedded_signatures) == 1
    return validate_pdf_signature(
        reader.embedded_signatures[0],
        ValidationContext(trust_roots=[anchor(trust)]),
        ts_validation_context=ValidationContext(trust_roots=[anchor(ts_trust)])
        if ts_trust
        else None,
    )


def rgb(ffmpeg: str, args: list[str]) -> np.ndarray:
    """One decoded picture as an array of RGB pixels, the test video's size."""
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", *args, "-frames:v", "1"]
        + ["-s", f"{WIDTH}x{HEIGHT}", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
    )
    assert len(result.stdout) == WIDTH * HEIGHT * 3
    return np.frombuffer(result.stdout, np.uint8).reshape(HEIGHT, WIDTH, 3).astype(np.int16)


# -- the tests ---------------------------------------------------------------------------
def test_every_page_renders_and_says_what_the_case_holds(
    report: Path, recorded: tuple[Stores, list[Segment]], tmp_path: Path
) -> None:
    stores, segments = recorded
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", str(report), str(tmp_path / "page")], check=True
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 3  # the cover and one page per moment
    for page in pages:
        assert page.stat().st_size > 2000  # a picture of text, not a blank page

    text = pdf_text(report)
    for said in (
        "证据保全报告",
        "AS-2026-0042",
        "羽绒服 包邮 承诺纠纷",
        "VERIFIED",
        stores.chain.signer.key_id,
        "2026年11月20日 20:00:07（北京时间，UTC+8）",
        "reviewer-key 3 (alice)",
        "No time-stamping authority is configured",
    ):
        assert flat(said) in text, said
    # The machine transcript and the overlays, each under its own label.
    machine = text.index(flat("Machine transcript"))
    overlays = text.index(flat("Overlays: notes, tags, corrections"))
    assert machine < text.index(flat("下单就包邮买一送一")) < overlays
    assert overlays < text.index(flat("actually said: 包邮到家"))
    assert flat("[Correction 更正]") in text and flat("signature verified") in text
    assert flat("SIGNATURE DOES NOT VERIFY") in text  # the second note's signature failed
    assert flat("全网最低价假一赔十") in text
    # Covering segments by SHA-256 and manifest position, and each moment's link.
    for seg in segments[1:3]:
        assert seg.sha256 in text
        assert flat(f"segment {seg.seq} · manifest entry {seg.entry_idx}") in text
    assert flat("/#stream=shop&t=7.0") in text and flat("/#stream=shop&t=13.4") in text


def red_pixels(pdf: Path, page: int, tmp_path: Path) -> int:
    out = tmp_path / f"{pdf.stem}-{page}"
    subprocess.run(
        ["pdftoppm", "-r", "60", "-f", str(page), "-l", str(page), "-singlefile", "-png"]
        + [str(pdf), str(out)],
        check=True,
    )
    decoded = subprocess.run(
        [Settings().ffmpeg, "-nostdin", "-v", "error", "-i", f"{out}.png", "-pix_fmt", "rgb24"]
        + ["-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
    ).stdout
    image = np.frombuffer(decoded, np.uint8).reshape(-1, 3).astype(np.int16)
    red = (image[:, 0] > 150) & (image[:, 1] < 70) & (image[:, 2] < 70)
    return int(red.sum())


def test_the_matched_words_are_marked(
    report: Path, recorded: tuple[Stores, list[Segment]], tmp_path: Path
) -> None:
    """Marked words are red and underlined: the same page without words to mark has
    fewer red pixels (the keyframe's red is the same on both)."""
    stores, _segments = recorded
    case = two_moments()
    plain = dataclasses.replace(
        case, moments=tuple(dataclasses.replace(m, matched=()) for m in case.moments)
    )
    unmarked = tmp_path / "unmarked.pdf"
    unmarked.write_bytes(render_case_report(stores, plain, generated_by="reviewer-key 3 (alice)"))
    assert red_pixels(report, 2, tmp_path) > red_pixels(unmarked, 2, tmp_path) + 20


def test_keyframes_are_the_source_frames_at_the_moments(
    report: Path, ffmpeg: str, test_video: Path, tmp_path: Path
) -> None:
    subprocess.run(["pdfimages", "-j", str(report), str(tmp_path / "img")], check=True)
    images = sorted(tmp_path.glob("img-*.jpg"))
    assert len(images) == 2  # one keyframe per moment, kept as ffmpeg's JPEG
    for image, offset in zip(images, (7.0, 13.4), strict=True):
        shown = rgb(ffmpeg, ["-i", str(image)])
        # ffmpeg's own frames of the source around the moment: the report's is the one
        # shown at the moment, to the frame.
        frames = {
            n: rgb(ffmpeg, ["-i", str(test_video), "-ss", f"{n / FPS:.4f}"])
            for n in range(round(offset * FPS) - 4, round(offset * FPS) + 5)
        }
        difference = {n: float(np.abs(shown - frame).mean()) for n, frame in frames.items()}
        nearest = min(difference, key=lambda n: difference[n])
        assert abs(nearest / FPS - (offset - SOURCE_LAG)) <= 1 / FPS, (offset, difference)
        assert difference[nearest] < 3.0, difference  # JPEG's loss only
        assert max(difference.values()) > 2 * difference[nearest]  # frames do differ


def test_the_signature_validates_and_a_changed_byte_breaks_it(
    report: Path, recorded: tuple[Stores, list[Segment]]
) -> None:
    stores, _segments = recorded
    trust = stores.settings.signing_keys_dir / INSTALLATION_CERT_NAME
    data = report.read_bytes()
    status = validate(data, trust)
    assert status.bottom_line and status.intact and status.valid and status.trusted
    assert status.coverage.name == "ENTIRE_FILE"
    assert status.timestamp_validity is None  # no TSA configured
    # The chain ends at the installation's own Ed25519 key: the pinned key id's key.
    installation = x509.load_pem_x509_certificate(trust.read_bytes())
    assert installation.public_key() == stores.chain.signer.public_key
    # The new key material is private where it must be (no start-up warning about it).
    assert exposed_paths(stores.settings.home, stores.settings.signing_keys_dir) == []

    # A free tool that knows nothing of LiveWitness checks it too (trust aside).
    checked = subprocess.run(["pdfsig", str(report)], capture_output=True, text=True, check=False)
    assert "Signature Validation: Signature is Valid." in checked.stdout, checked.stdout

    # One bit of a compressed stream (the PDF still parses): the digest no longer matches.
    at = data.index(b"stream\n") + 40
    tampered = bytearray(data)
    tampered[at] ^= 0x01
    assert not validate(bytes(tampered), trust).intact


def test_a_configured_tsa_stamps_the_signature_through_our_client(
    tmp_path: Path, test_video: Path
) -> None:
    pki = make_tsa_pki(tmp_path / "pki")
    with LocalTsa(pki) as tsa:
        settings = Settings(
            home=tmp_path / "home", tsa_urls=[closed_url(), tsa.url], tsa_ca_bundle=pki.ca_pem
        )
        with open_stores(settings) as stores:
            record(stores, test_video)
            stamper = Stamper(settings, stores.catalog, stores.blobs)
            assert stamper.stamp_pending() == 1  # the chain's signed head, for the cover
            stamper.close()
            before = tsa.requests
            case = dataclasses.replace(two_moments(), moments=two_moments().moments[:1])
            data = render_case_report(stores, case, generated_by="case-system key 9")
            trust = settings.signing_keys_dir / INSTALLATION_CERT_NAME
            assert tsa.requests > before  # asked through our client (the first TSA is down)
    status = validate(data, trust, ts_trust=pki.ca_pem)
    assert status.bottom_line
    stamp = status.timestamp_validity
    assert stamp is not None and stamp.intact and stamp.valid and stamp.trusted
    assert abs(stamp.timestamp - datetime.now(UTC)) < timedelta(minutes=5)
    path = tmp_path / "case.pdf"
    path.write_bytes(data)
    text = pdf_text(path)
    assert flat("Its signature carries a time-stamp requested from") in text
    assert flat("Trusted times of the chains") in text and f"127.0.0.1:{tsa.port}/tsr" in text


def test_without_a_reachable_tsa_the_report_is_still_signed(
    recorded: tuple[Stores, list[Segment]],
) -> None:
    stores, _segments = recorded
    down = dataclasses.replace(
        stores, settings=stores.settings.model_copy(update={"tsa_urls": [closed_url()]})
    )
    case = dataclasses.replace(two_moments(), moments=())
    data = render_case_report(down, case, generated_by="reviewer-key 3 (alice)")
    status = validate(data, stores.settings.signing_keys_dir / INSTALLATION_CERT_NAME)
    assert status.bottom_line and status.timestamp_validity is None


def test_a_moment_of_an_unknown_stream_is_reported_not_raised(
    recorded: tuple[Stores, list[Segment]], tmp_path: Path
) -> None:
    stores, _segments = recorded
    moment = dataclasses.replace(two_moments().moments[1], stream="gone")
    case = dataclasses.replace(two_moments(), moments=(moment,))
    path = tmp_path / "case.pdf"
    path.write_bytes(render_case_report(stores, case, generated_by="reviewer-key 3 (alice)"))
    text = pdf_text(path)
    assert flat("FAILED") in text and flat("Not shown") in text and "gone" in text


def test_an_async_caller_gets_a_signed_report_too(
    recorded: tuple[Stores, list[Segment]],
) -> None:
    """pyHanko signs in an event loop of its own, which cannot start inside a running one."""
    stores, _segments = recorded
    case = dataclasses.replace(two_moments(), moments=())

    async def route() -> bytes:
        return render_case_report(stores, case, generated_by="reviewer-key 3 (alice)")

    data = asyncio.run(route())
    assert validate(data, stores.settings.signing_keys_dir / INSTALLATION_CERT_NAME).bottom_line


def test_audio_only_media_has_no_keyframe(ffmpeg: str, tmp_path: Path) -> None:
    audio = tmp_path / "audio.ts"
    subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(audio)],
        check=True,
    )
    assert decode_frame(ffmpeg, str(audio), 0.5) is None


def test_the_report_key_is_made_once_and_only_for_its_own_signing_key(
    recorded: tuple[Stores, list[Segment]], tmp_path: Path
) -> None:
    stores, _segments = recorded
    made = stores.settings.signing_keys_dir / REPORT_KEY_NAME
    before = made.read_bytes()
    assert load_report_key(stores.settings, stores.chain.signer).key_id == (
        stores.chain.signer.key_id
    )
    assert made.read_bytes() == before  # reused, not made again
    # Another installation's keys directory with this one's report key: refused.
    other = Settings(home=tmp_path / "other")
    other_signer = Signer(other.signing_keys_dir)
    shutil.copy(made, other.signing_keys_dir / REPORT_KEY_NAME)
    with pytest.raises(ConfigError, match="issued by another signing key") as caught:
        load_report_key(other, other_signer)
    assert "\n" not in str(caught.value)
