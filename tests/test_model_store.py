"""The bundled Whisper model assembled by several processes at once (issue 14).

Transcribers that start together on one data directory used to race: one could delete
the model directory another had just made. Assembly now runs under a file lock and the
directory appears by one rename; real processes start at the same moment here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from storage.blobs.protocol import sha256_file
from transcriber import model_store

ROOT = Path(__file__).resolve().parents[1]
STARTERS = 4

ASSEMBLER = """
import json, sys, time
from pathlib import Path
from transcriber.model_store import base_model_dir
go = Path(sys.argv[2])
while not go.exists():  # start together
    time.sleep(0.005)
print(json.dumps(str(base_model_dir(Path(sys.argv[1])))), flush=True)
"""


def test_several_processes_assemble_one_model_directory_at_once(tmp_path: Path) -> None:
    models = tmp_path / "models"
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", ASSEMBLER, str(models), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(STARTERS)
    ]
    time.sleep(0.5)  # let every interpreter reach the start line (not a timing assertion)
    go.touch()
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0] * STARTERS, [err for _, err in results]
    target = models / model_store.MODEL_DIR
    assert {json.loads(out) for out, _ in results} == {str(target)}

    for name, expected in model_store.BASE_MODEL_FILES.items():
        assert sha256_file(target / name) == expected, name
    # Nothing half-made is left beside it: only the model and its lock file.
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [model_store.MODEL_DIR, f".{model_store.MODEL_DIR}.lock"]
    )
    from faster_whisper import WhisperModel

    assert WhisperModel(str(target), device="cpu", compute_type="int8", cpu_threads=1)


def test_a_half_made_model_and_a_dead_assemblers_staging_are_replaced(tmp_path: Path) -> None:
    models = tmp_path / "models"
    target = models / model_store.MODEL_DIR
    target.mkdir(parents=True)
    (target / "model.bin").write_bytes(b"cut short")  # no .verified marker: incomplete
    staging = models / f".{model_store.MODEL_DIR}.12345"
    staging.mkdir()
    (staging / "model.bin").write_bytes(b"a killed assembler's")
    assert model_store.base_model_dir(models) == target
    assert sha256_file(target / "model.bin") == model_store.BASE_MODEL_FILES["model.bin"]
    assert not staging.exists()
