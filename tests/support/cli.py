"""The ``livewitness`` command as tests run it: in a process of its own (``run_cli``) or
in this one (``cli_in_process``), with a data home of the test's and none of the
developer's own ``LIVEWITNESS_`` settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

LIVEWITNESS = str(Path(sys.executable).parent / "livewitness")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    # The developer's own LIVEWITNESS_ settings must not leak into a test's process; the
    # egress allow-list and OCR switched off are the tests' own (tests/conftest.py).
    own = ("LIVEWITNESS_EGRESS_ALLOW", "LIVEWITNESS_OCR_ENABLED")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEWITNESS_") or k in own}
    env.update({"LIVEWITNESS_HOME": str(home), "COLUMNS": "200"}, **extra)
    return env


def run_cli(
    home: Path, *args: str, timeout: float = 180, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIVEWITNESS, *args],
        env=cli_env(home, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_in_process(home: Path, *args: str) -> Result:
    """A ``livewitness`` command without starting a process (the slow part of a CLI test)."""
    from cli.main import app

    return CliRunner().invoke(app, list(args), env=cli_env(home))
