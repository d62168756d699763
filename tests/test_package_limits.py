"""verify-package refuses what it should not read: zip bombs, oversized files that it reads
whole, overlapping members and names a package never holds, from the zip's directory
alone, before hashing, with one line (exit 2 for limits, 1 for a foreign name).

The zips are built here on the fly, streamed (no gigabyte is kept anywhere): a bomb is
deflated zeros, a few MB on disk."""

from __future__ import annotations

import json
import os
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import evidence.package_verify as package_verify
from core.errors import IntegrityError, InvalidInputError
from evidence.package_format import MAX_RATIO, MAX_SMALL_BYTES
from evidence.package_verify import verify_package
from tests.support.cli import cli_in_process

MIB = 1 << 20
DESCRIPTION = json.dumps({"format": "livewitness-evidence-package", "version": 1}).encode()


def streamed_zip(path: Path, name: str, chunk: bytes, total: int) -> Path:
    """A zip with package.json and ``name``: ``chunk`` repeated up to ``total`` bytes,
    deflated while written."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("package.json", DESCRIPTION)
        with archive.open(name, "w", force_zip64=True) as member:
            written = 0
            while written < total:
                piece = chunk[: total - written]
                member.write(piece)
                written += len(piece)
    return path


@pytest.fixture(scope="module")
def zero_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of zeros as the clip, about 5 MB packed (fast deflate)."""
    path = tmp_path_factory.mktemp("bomb") / "zeros.zip"
    return streamed_zip(path, "clip.mp4", bytes(16 * MIB), 1 << 30)


@pytest.fixture(scope="module")
def huge_sums(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SHA256SUMS of 512 MiB: well-formed lines, repeated."""
    line = ("0" * 64 + "  segments/00000001.ts\n").encode()
    path = tmp_path_factory.mktemp("sums") / "sums.zip"
    return streamed_zip(path, "SHA256SUMS", line * (16 * MIB // len(line)), 512 * MIB)


def peak_memory(check: Callable[[], object]) -> tuple[BaseException, int]:
    """What ``check`` raised and the peak of Python's allocations while it ran."""
    tracemalloc.start()
    try:
        check()
    except Exception as exc:  # returned to the test, which checks it
        raised: BaseException = exc
    else:
        raise AssertionError("the package was accepted")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak


def test_a_zip_bomb_is_refused_from_the_directory(zero_bomb: Path) -> None:
    assert zero_bomb.stat().st_size < 8 * MIB
    raised, peak = peak_memory(lambda: verify_package(zero_bomb))
    assert isinstance(raised, InvalidInputError) and not isinstance(raised, IntegrityError)
    message = str(raised)
    assert "\n" not in message and "clip.mp4" in message and "zip bomb" in message
    assert f"more than {MAX_RATIO} times" in message
    assert peak < 8 * MIB, peak


def test_a_huge_file_read_whole_is_refused_before_reading(huge_sums: Path) -> None:
    raised, peak = peak_memory(lambda: verify_package(huge_sums))
    assert isinstance(raised, InvalidInputError), raised
    message = str(raised)
    assert "\n" not in message and "SHA256SUMS" in message
    assert f"{512 * MIB} bytes unpacked" in message and str(MAX_SMALL_BYTES) in message
    assert peak < 8 * MIB, peak


def test_the_cli_refuses_a_bomb_with_one_line_and_exit_2(
    zero_bomb: Path, huge_sums: Path, tmp_path: Path
) -> None:
    for path, fragment in [(zero_bomb, "zip bomb"), (huge_sums, "accepts at most")]:
        result = cli_in_process(tmp_path / "home", "verify-package", str(path))
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
        assert fragment in result.stderr and "Traceback" not in result.output


def overlapping_zip(path: Path, copies: int) -> Path:
    """One stored 2 MiB segment that ``copies`` directory entries all point at: each
    looks innocent (stored, ratio 1), together they unpack far beyond the zip's size."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("package.json", DESCRIPTION)
        archive.writestr("segments/00000001.ts", os.urandom(2 * MIB))
        first = archive.getinfo("segments/00000001.ts")
        for seq in range(2, copies + 2):
            copy = zipfile.ZipInfo(f"segments/{seq:08d}.ts", first.date_time)
            for field in ("compress_type", "CRC", "file_size", "compress_size", "header_offset"):
                setattr(copy, field, getattr(first, field))
            archive.filelist.append(copy)
            archive.NameToInfo[copy.filename] = copy
    return path


def test_members_sharing_their_bytes_are_refused(tmp_path: Path) -> None:
    path = overlapping_zip(tmp_path / "overlap.zip", 50)
    with pytest.raises(InvalidInputError) as caught:
        verify_package(path)
    assert "overlapping" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/cron.d/evil",
        "/etc/passwd",
        "segments/../../x.ts",
        "segments/",
        "manifest/00000001.json/",
        "notes.txt",
        "segments\\00000001.ts",
        "manifest/00000001.json\n",
    ],
)
def test_names_a_package_never_holds_are_refused_before_hashing(tmp_path: Path, name: str) -> None:
    path = tmp_path / "named.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("package.json", DESCRIPTION)
        archive.writestr("README.txt", b"readme")
        archive.writestr(name, b"x")
    hashed: list[str] = []
    original = package_verify._PackageCheck._hash

    def spying(check: package_verify._PackageCheck, member: str) -> str:
        hashed.append(member)
        return original(check, member)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(package_verify._PackageCheck, "_hash", spying)
        with pytest.raises(IntegrityError) as caught:
            verify_package(path)
    assert caught.value.problem == "is not a file an evidence package holds"
    assert caught.value.artifact == name and hashed == []


@pytest.fixture
def small_limits() -> Iterator[None]:
    """The count and total limits lowered, so that a test zip can pass them cheaply."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(package_verify, "MAX_MEMBERS", 5)
        patch.setattr(package_verify, "MAX_TOTAL_BYTES", 3 * MIB)
        patch.setattr(package_verify, "MAX_MEMBER_BYTES", 2 * MIB)
        yield


def test_too_many_files_or_bytes_are_refused(small_limits: None, tmp_path: Path) -> None:
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        archive.writestr("package.json", DESCRIPTION)
        for seq in range(1, 6):
            archive.writestr(f"segments/{seq:08d}.ts", b"ts")
    with pytest.raises(InvalidInputError, match="has 6 files; a package holds at most 5"):
        verify_package(many)
    large = tmp_path / "large.zip"
    with zipfile.ZipFile(large, "w") as archive:
        archive.writestr("package.json", DESCRIPTION)
        archive.writestr("segments/00000001.ts", os.urandom(MIB + MIB // 2))
        archive.writestr("segments/00000002.ts", os.urandom(MIB + MIB // 2))
    with pytest.raises(InvalidInputError, match=r"unpacks to .* a package holds at most"):
        verify_package(large)
    one = tmp_path / "one.zip"
    with zipfile.ZipFile(one, "w") as archive:
        archive.writestr("package.json", DESCRIPTION)
        archive.writestr("clip.mp4", os.urandom(2 * MIB + 1))
    with pytest.raises(InvalidInputError, match=r"clip\.mp4 is .* at most .* per file"):
        verify_package(one)


def test_a_name_twice_is_refused_before_hashing(tmp_path: Path) -> None:
    path = tmp_path / "twice.zip"
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(path, "w") as archive,
    ):
        archive.writestr("package.json", DESCRIPTION)
        archive.writestr("segments/00000001.ts", b"the chained bytes")
        archive.writestr("segments/00000001.ts", b"other bytes")
    with pytest.raises(IntegrityError) as caught:
        verify_package(path)
    assert (caught.value.artifact, caught.value.problem) == (
        "segments/00000001.ts",
        "is in the zip twice",
    )
