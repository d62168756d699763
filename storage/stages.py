"""Supervised stages: each stage thread of a process is restarted when it fails, and its
state is kept where the API thread of the same process can read it (``/health``).

A stage (recorder, transcriber, indexer, stamper) runs in a thread under
:func:`supervise`: when it raises (or returns without being asked to stop) the error is
logged, counted in ``livewitness_stage_restarts_total``, shown by ``/health``, and the stage
is started again after a wait that doubles up to a cap; a stage that ran a while before
failing starts again from the shortest wait. The registry (:data:`STAGES`) is one per
process: an API running in a process of its own sees only itself there, and reports what
it can know from the catalog and the disk instead.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from prometheus_client import Counter
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.errors import LiveWitnessError
from core.redact import redact_text
from core.timeutil import utc_now

log = logging.getLogger(__name__)

STAGE_RESTARTS = Counter(
    "livewitness_stage_restarts",
    "Times a stage thread of this process failed and was started again, by stage.",
    ["stage"],
    registry=None,
)

STAGE_ERRORS = Counter(
    "livewitness_stage_errors",
    "Errors a stage of this process met and survived (a failed thread, or a job put back"
    " because the disk was full), by stage.",
    ["stage"],
    registry=None,
)


@dataclass(frozen=True)
class StageState:
    """One stage as ``/health`` shows it."""

    name: str
    alive: bool
    restarts: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    started_at: datetime | None = None
    backlog: int | None = None  # work waiting for the stage (transcription jobs), if known


class StageRegistry(Collector):
    """The stages of this process and how they stand; also the ``livewitness_stage_up``
    gauge (a collector, so a process without stages reports none)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, StageState] = {}
        self._backlogs: dict[str, Callable[[], int]] = {}

    def register(self, name: str, backlog: Callable[[], int] | None = None) -> None:
        with self._lock:
            self._stages[name] = StageState(name=name, alive=False)
            if backlog is not None:
                self._backlogs[name] = backlog

    def forget(self, name: str) -> None:
        with self._lock:
            self._stages.pop(name, None)
            self._backlogs.pop(name, None)

    def started(self, name: str) -> None:
        self._update(name, alive=True, started_at=utc_now())

    def failed(self, name: str, error: str) -> None:
        STAGE_ERRORS.labels(name).inc()
        # /health is unauthenticated: a URL quoted in an error loses its credentials.
        self._update(name, alive=False, last_error=redact_text(error), last_error_at=utc_now())

    def restarted(self, name: str) -> None:
        STAGE_RESTARTS.labels(name).inc()
        with self._lock:
            state = self._stages.get(name)
            if state is not None:
                self._stages[name] = replace(state, restarts=state.restarts + 1)

    def note_error(self, name: str, error: str) -> None:
        """An error the stage survived (it stays alive): shown as its last error."""
        with self._lock:
            if name not in self._stages:
                return  # not a supervised stage of this process (a one-off CLI command)
        STAGE_ERRORS.labels(name).inc()
        self._update(name, last_error=redact_text(error), last_error_at=utc_now())

    def stopped(self, name: str) -> None:
        self._update(name, alive=False)

    def _update(self, name: str, **changes: object) -> None:
        with self._lock:
            state = self._stages.get(name)
            if state is not None:
                self._stages[name] = replace(state, **changes)  # type: ignore[arg-type]

    def snapshot(self) -> list[StageState]:
        """Every stage, with its backlog read now (None when it cannot be read)."""
        with self._lock:
            states = list(self._stages.values())
            backlogs = dict(self._backlogs)
        out = []
        for state in states:
            count = None
            if state.name in backlogs:
                try:
                    count = backlogs[state.name]()
                except Exception as exc:  # the catalog is down: health says so elsewhere
                    log.debug("backlog of %s unreadable: %s", state.name, exc)
            out.append(replace(state, backlog=count))
        return sorted(out, key=lambda s: s.name)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            states = list(self._stages.values())
        if states:
            gauge = GaugeMetricFamily(
                "livewitness_stage_up",
                "1 while a stage thread of this process runs.",
                labels=["stage"],
            )
            for state in states:
                gauge.add_metric([state.name], 1.0 if state.alive else 0.0)
            yield gauge


STAGES = StageRegistry()


def note_stage_error(name: str, error: str) -> None:
    STAGES.note_error(name, error)


def supervise(
    name: str,
    target: Callable[[threading.Event], None],
    stop: threading.Event,
    *,
    initial_seconds: float,
    max_seconds: float,
    registry: StageRegistry = STAGES,
) -> None:
    """Run ``target(stop)`` until ``stop`` is set, starting it again whenever it fails."""
    pause = initial_seconds
    while not stop.is_set():
        registry.started(name)
        began = time.monotonic()
        try:
            target(stop)
        except Exception as exc:
            if time.monotonic() - began > max_seconds:
                pause = initial_seconds  # it ran a while: a new fault, not the same again
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, LiveWitnessError):  # one readable line says it all
                log.error("stage %s failed: %s; restarting in %.0f s", name, exc, pause)
            else:
                log.exception("stage %s failed; restarting in %.0f s", name, pause)
        else:
            if stop.is_set():
                break
            error = "stopped without being asked to"
            log.error("stage %s %s; restarting in %.0f s", name, error, pause)
        registry.failed(name, error)
        if stop.wait(pause):
            break
        pause = min(pause * 2, max_seconds)
        registry.restarted(name)
    registry.stopped(name)


def free_disk_bytes(path: Path) -> int | None:
    """Free space of the disk holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.resolve().parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None
