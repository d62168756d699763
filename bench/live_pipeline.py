"""One run of the whole live pipeline, for bench/e2e_latency.py and bench/capacity.py.

    .venv/bin/python bench/live_pipeline.py --streams 3 --seconds 150 --probe --out /tmp/run.json
    .venv/bin/python bench/live_pipeline.py --source flv --mode chunks --streams 3 \
        --seconds 90 --probe --alerts --out /tmp/run.json

`--source hls` (default): the sources described below. `--source flv`: N local live
HTTP-FLV sources (bench/live_sources.py `LiveFlvSource`: ffmpeg -re, looped, `-f flv
-listen 1`), which the recorder's ffmpeg reads directly; `--source rtmp`: the same
publisher as an RTMP server. `--mode early` (the defaults: speech cut at pauses is
transcribed as it arrives, and each clause of a sentence still going on at once, as
provisional words), `--mode chunks` (`early_transcripts=False`) or `--mode segments`
(`speech_chunks=False`: each 10 s segment once it is chained); the chunker's settings
with `--chunk-min-seconds` and its siblings. OCR is off (`ocr_enabled=False`):
these runs measure speech; the OCR worker would take about 0.15 core per stream more.

N local live HLS sources (`LiveHlsSource`: ffmpeg -re, looped) play a program of the
committed Mandarin fixtures (sales_1, sales_2 and boundary one after another, padded to
68 s, so the 10 s segment cuts fall 2 s later in the talk on every loop) whose phrase
onsets are known from tests/fixtures/speech/manifest.json (its `terms`: claims, products,
prices and banned terms, 25 a loop). In this process, as `livewitness serve` runs them:
`RecordingSupervisor` (the streams are marked wanted with `catalog.want_recording`, one
after another spread over one segment length, since independent rooms do not start in
step), `TranscriberPool` (settings.transcribe_workers workers, one model) and
`Indexer.follow`, on one fresh data directory with the default settings (10 s segments,
Whisper base int8 on the CPU). The bundled model is assembled once into
`<cache>/models`, which every run's data directory links to.

When a phrase was spoken: publisher media time 0 is placed on the wall clock from when
each HLS segment appears (a segment is written once the media after it has been read at
native rate, so "appeared at - media end" bounds media 0's wall time from above; the
smallest bound over the run is taken). A phrase at onset o of loop k was spoken at
t0 + k * period + o, where period is the program's container duration.

Phrases spoken in the scored window (from `warmup` seconds after the first stream was
wanted, for `seconds`) are scored; the pipeline then runs `drain` seconds more with the
sources still live. With --probe, a thread searches the index every 0.1 s for each phrase
still pending in each stream (`SearchQuery(text=phrase, stream=name, sort="time")`, with a
time range around the pending occurrences) and marks an occurrence found when a hit places
the phrase within `tolerance` seconds of when it was spoken (the phrase's time in the hit
is interpolated from where its highlight falls in the utterance's text and time span).

A monitor thread samples the transcription backlog (segment and chunk jobs), the
machine's CPU (/proc/stat), this process's CPU (with its ffmpeg children) and its RSS
every second. The result is one JSON document.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live_sources import LiveFlvSource, flv_loop_period
from cli.demo_source import DEMO_PRODUCTS, LiveHlsSource
from compliance.alerts import BANNED_WORD_EVENT, WebhookNotifier
from compliance.matcher import BannedWordMatcher, load_lexicon
from core.jobs import (
    TRANSCRIBE_CHUNK_JOB,
    TRANSCRIBE_EARLY_JOB,
    TRANSCRIBE_JOB,
    TRANSCRIPTION_JOBS,
)
from core.settings import Settings
from core.timeutil import parse_iso
from core.transcript import SegmentTranscript
from indexer.factory import open_search_index
from indexer.protocol import SearchQuery
from indexer.service import Indexer
from recorder.supervisor import RecordingSupervisor
from storage.products import parse_products
from storage.stores import Stores, open_stores
from tests.support.media import make_test_video
from tests.support.speech import clip, clip_path, normal
from tests.support.webhook_receiver import WebhookReceiver
from transcriber import audio
from transcriber.pool import TranscriberPool
from transcriber.protocol import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ("sales_1", "sales_2", "boundary")
KEYFRAME_SECONDS = 2  # make_test_video puts a key frame every 2 s
TICKS = os.sysconf("SC_CLK_TCK")


# -- the program the sources play ---------------------------------------------------------
@dataclass(frozen=True)
class Program:
    video: Path
    period: float  # seconds of media per loop, as the looping publisher advances
    terms: list[tuple[str, float, float]]  # (phrase, onset, end in the program, seconds)
    # Banned terms the default lexicon finds in what is said: (term, onset, end).
    banned: list[tuple[str, float, float]] = field(default_factory=list)


def make_program(ffmpeg: str, cache: Path) -> Program:
    offsets, position = [], 0.0
    for name in CLIPS:
        offsets.append(position)
        position += len(audio.decode(ffmpeg, clip_path(name))) / SAMPLE_RATE
    seconds = math.ceil(position / KEYFRAME_SECONDS) * KEYFRAME_SECONDS
    video = cache / f"program-{seconds}s.mp4"
    if not video.exists():
        joined = cache / "program.wav"
        inputs = [arg for name in CLIPS for arg in ("-i", str(clip_path(name)))]
        subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *inputs]
            + ["-filter_complex", f"concat=n={len(CLIPS)}:v=0:a=1", str(joined)],
            check=True,
        )
        make_test_video(ffmpeg, video, seconds, audio=joined)
        joined.unlink()
    terms = sorted(
        (
            (term["text"], round(offset + term["onset"], 3), round(offset + term["end"], 3))
            for name, offset in zip(CLIPS, offsets, strict=True)
            for term in clip(name)["terms"]
        ),
        key=lambda t: t[1],
    )
    return Program(
        video=video,
        period=container_duration(ffmpeg, video),
        terms=terms,
        banned=banned_terms(offsets),
    )


def banned_terms(offsets: list[float]) -> list[tuple[str, float, float]]:
    """(term, onset, end) in the program of each banned term the default lexicon finds
    in the fixtures' text, timed by the manifest's per-character onsets and ends."""
    matcher = BannedWordMatcher(load_lexicon())
    found = []
    for name, offset in zip(CLIPS, offsets, strict=True):
        for sentence in clip(name)["sentences"]:
            text, chars = sentence["text"], sentence["chars"]
            spoken = [i for i, c in enumerate(text) if normal(c)]  # text index of each char
            assert len(spoken) == len(chars), name
            for hit in matcher.find(text):
                inside = [k for k, i in enumerate(spoken) if hit.start <= i < hit.end]
                onset, end = chars[inside[0]]["onset"], chars[inside[-1]]["end"]
                found.append((hit.term, round(offset + onset, 3), round(offset + end, 3)))
    return sorted(found, key=lambda t: t[1])


def container_duration(ffmpeg: str, video: Path) -> float:
    probe = subprocess.run(
        [ffmpeg, "-hide_banner", "-i", str(video)], capture_output=True, text=True, check=False
    )
    found = re.search(r"Duration: (\d+):(\d+):([\d.]+)", probe.stderr)
    if not found:
        raise RuntimeError(f"no duration for {video}")
    h, m, s = found.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


class PublisherClock:
    """Wall time of the publisher's media time 0, from when its HLS segments appear."""

    def __init__(self, source: LiveHlsSource) -> None:
        self.playlist = source.directory / "live.m3u8"
        self.durations: dict[int, float] = {}
        self.seen_at: dict[int, float] = {}

    def poll(self) -> None:
        now = time.time()
        try:
            lines = self.playlist.read_text().splitlines()
        except FileNotFoundError:
            return
        seq, duration = None, None
        for line in lines:
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                seq = int(line.split(":", 1)[1])
            elif line.startswith("#EXTINF:"):
                duration = float(line.split(":", 1)[1].rstrip(","))
            elif line and not line.startswith("#") and seq is not None and duration is not None:
                self.durations.setdefault(seq, duration)
                self.seen_at.setdefault(seq, now)
                seq, duration = seq + 1, None

    def loop_period(self, nominal: float) -> float:
        """Media seconds the looping publisher advances per loop: ffmpeg's -stream_loop
        adds the longest stream's duration (the AAC track runs a frame or two past the
        picture), seen as the one longer HLS segment at each wrap."""
        for duration in self.durations.values():
            if abs(duration - KEYFRAME_SECONDS) > 0.001:
                return nominal + duration - KEYFRAME_SECONDS
        return nominal

    def media_zero(self) -> float | None:
        best, end, seq = None, 0.0, 0
        while seq in self.durations:  # only the unbroken run from the first segment
            end += self.durations[seq]
            bound = self.seen_at[seq] - end
            best = bound if best is None else min(best, bound)
            seq += 1
        return best


# -- what is measured ---------------------------------------------------------------------
@dataclass
class Occurrence:
    stream: str
    phrase: str
    loop: int
    onset: float
    spoken_at: float
    found_at: float | None = None
    loose_found_at: float | None = None  # found with the loose tolerance
    match: str | None = None
    hit_text: str | None = None
    hit_start: float | None = None
    phrase_at: float | None = None  # the phrase's time as the hit places it
    segment: int | None = None
    heard: str | None = None  # for a miss: what the transcript has around spoken_at
    near: list[dict[str, Any]] | None = None  # for a miss: hits of the phrase nearby
    length: float = 0.0  # seconds from its first syllable's onset to its last one's end


@dataclass
class AlertOccurrence:
    """A banned term spoken, and the webhook alert that told of it (if one did)."""

    stream: str
    term: str
    loop: int
    onset: float
    length: float
    spoken_at: float
    received_at: float | None = None  # when the local receiver got the alert
    placed_at: float | None = None  # the alert's `at` (the matched words' start)
    match: str | None = None
    loose: bool = False  # matched only within the loose tolerance


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def child_pids() -> list[int]:
    me, pids = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == me:
                pids.append(int(entry.name))
    return pids


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which user time already counts
    return total - idle, total


def cpu_snapshot(publishers: list[int]) -> dict[str, float]:
    """CPU seconds so far: this process, its ffmpeg children (recorders and audio decoders;
    ended ones through RUSAGE_CHILDREN, running ones from /proc), the publishers apart."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    running = sum(proc_cpu(pid) for pid in child_pids() if pid not in publishers)
    busy, total = machine_jiffies()
    return {
        "wall": time.time(),
        "python": me.ru_utime + me.ru_stime,
        "children": ended.ru_utime + ended.ru_stime + running,
        "publishers": sum(proc_cpu(pid) for pid in publishers),
        "machine_busy": busy / TICKS,
        "machine_total": total / TICKS,
    }


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# -- the run ------------------------------------------------------------------------------
@dataclass
class Run:
    args: argparse.Namespace
    stores: Stores
    program: Program
    sources: list[LiveHlsSource | LiveFlvSource]
    clocks: list[PublisherClock]  # HLS only
    names: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    occurrences: list[Occurrence] = field(default_factory=list)
    alerts: list[AlertOccurrence] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    probe_cpu: float = 0.0
    probe_queries: int = 0
    load_at_start: float = field(default_factory=loadavg)  # 1-minute load average

    def monitor(self) -> None:
        publishers = [s.publisher.pid for s in self.sources if s.publisher]
        previous = cpu_snapshot(publishers)
        while not self.stop.wait(self.args.sample_seconds):
            for clock in self.clocks:
                clock.poll()
            now = cpu_snapshot(publishers)
            machine = now["machine_total"] - previous["machine_total"]
            self.samples.append(
                {
                    "t": now["wall"],
                    "backlog": self.stores.catalog.backlog(*TRANSCRIPTION_JOBS),
                    "machine_cpu": (now["machine_busy"] - previous["machine_busy"]) / machine
                    if machine
                    else 0.0,
                    "process_cpu": (
                        now["python"] + now["children"] - previous["python"] - previous["children"]
                    )
                    / (now["wall"] - previous["wall"]),
                    "rss_mb": rss_mb(),
                    "load1": loadavg(),
                }
            )
            previous = now

    def watch_clocks(self) -> None:
        while not self.stop.wait(0.05):
            for clock in self.clocks:
                clock.poll()

    def schedule(self, first_want: float, zeros: list[float], period: float) -> None:
        """The phrase and banned-term occurrences to score: spoken inside the scored
        window, media time 0 of each stream at ``zeros``."""
        begin = first_want + self.args.warmup
        end = begin + self.args.seconds
        for name, zero in zip(self.names, zeros, strict=True):
            for loop in range(int((end - zero) / period) + 1):
                for phrase, onset, last in self.program.terms:
                    spoken = zero + loop * period + onset
                    if begin <= spoken <= end:
                        self.occurrences.append(
                            Occurrence(name, phrase, loop, onset, spoken, length=last - onset)
                        )
                for term, onset, last in self.program.banned:
                    spoken = zero + loop * period + onset
                    if begin <= spoken <= end:
                        self.alerts.append(
                            AlertOccurrence(name, term, loop, onset, last - onset, spoken)
                        )

    def probe(self) -> None:
        index = open_search_index(self.stores)
        tick = time.monotonic()
        began_cpu = time.thread_time()
        try:
            while not self.stop.is_set():
                now = time.time()
                pending: dict[tuple[str, str], list[Occurrence]] = {}
                for occurrence in self.occurrences:
                    done = occurrence.found_at and occurrence.loose_found_at
                    if not done and occurrence.spoken_at <= now:
                        pending.setdefault((occurrence.stream, occurrence.phrase), []).append(
                            occurrence
                        )
                for (stream, phrase), waiting in pending.items():
                    self._search(index, stream, phrase, waiting)
                tick += self.args.poll_seconds
                self.stop.wait(max(0.0, tick - time.monotonic()))
        finally:
            self.probe_cpu = time.thread_time() - began_cpu
            index.close()

    def _search(self, index: Any, stream: str, phrase: str, waiting: list[Occurrence]) -> None:
        margin = 30.0
        since = datetime.fromtimestamp(min(o.spoken_at for o in waiting) - margin, UTC)
        until = datetime.fromtimestamp(max(o.spoken_at for o in waiting) + margin, UTC)
        query = SearchQuery(
            text=phrase, stream=stream, sort="time", since=since, until=until, size=50
        )
        result = index.search(query)
        found_at = time.time()
        self.probe_queries += 1
        for hit in result.hits:
            start = parse_iso(hit.start).timestamp()
            end = start + max(0.0, hit.end_offset - hit.offset)
            if hit.match_offset is not None:  # the matched words' own time
                at = start + hit.match_offset - hit.offset
            else:
                marked = "<mark>" in hit.highlighted
                before = hit.highlighted.split("<mark>", 1)[0] if marked else ""
                at = start + (end - start) * len(before) / max(1, len(hit.text))
            # The hit's utterance covers the moment (within the tolerance); of the pending
            # occurrences it covers, the phrase is the one nearest to where it falls. The
            # loose tolerance tells a phrase placed a little too late from one not heard.
            for tolerance, loose in (
                (self.args.tolerance, False),
                (self.args.loose_tolerance, True),
            ):
                covered = [
                    o
                    for o in waiting
                    if (o.loose_found_at if loose else o.found_at) is None
                    and start - tolerance <= o.spoken_at <= end + tolerance
                ]
                if not covered:
                    continue
                best = min(covered, key=lambda o: abs(o.spoken_at - at))
                if loose:
                    best.loose_found_at = found_at
                    continue
                best.found_at, best.match, best.hit_text = found_at, hit.match, hit.text
                best.hit_start, best.phrase_at, best.segment = start, at, hit.segment
                best.loose_found_at = best.loose_found_at or found_at


def fresh_home(args: argparse.Namespace) -> Path:
    cache = Path(args.cache).resolve()
    home = Path(args.home).resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (cache / "models").mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(cache / "models")
    return home


def heard_near(stores: Stores, stream_id: int, at: float, seconds: float = 3.0) -> str:
    """The stored words around a moment: `segment:` before each segment's own words,
    context words (decoded again by the next segment) in brackets."""
    out = []
    for transcript in stores.catalog.transcripts(stream_id):
        words = [
            w
            for w in SegmentTranscript.from_json(json.loads(transcript.body)).words
            if abs(parse_iso(w.start).timestamp() - at) <= seconds
        ]
        if words:
            text = "".join(f"[{w.text}]" if w.context else w.text for w in words)
            out.append(f"{transcript.segment_seq}:{text}")
    return " ".join(out)


def hits_near(index: Any, stream: str, phrase: str, at: float) -> list[dict[str, Any]]:
    """Every hit of the phrase within a minute of a moment, times relative to it."""
    query = SearchQuery(
        text=phrase,
        stream=stream,
        sort="time",
        since=datetime.fromtimestamp(at - 60, UTC),
        until=datetime.fromtimestamp(at + 60, UTC),
        size=50,
    )
    out = []
    for hit in index.search(query).hits:
        start = parse_iso(hit.start).timestamp() - at
        out.append(
            {
                "text": hit.text,
                "match": hit.match,
                "segment": hit.segment,
                "start": round(start, 2),
                "end": round(start + hit.end_offset - hit.offset, 2),
            }
        )
    return out


def job_rows(stores: Stores, names: list[str]) -> list[dict[str, Any]]:
    """Transcription jobs: a segment's (`seq` is the segment's) or a speech chunk's (`seq`
    is the segment it began in; `chunk` its number, `chunk_start`/`chunk_end` its audio's
    wall-clock span)."""
    rows = []
    for name in names:
        stream = stores.catalog.get_stream(name)
        chunks = {c.seq: c for c in stores.catalog.speech_chunks(stream.id)}
        for kind in (TRANSCRIBE_JOB, TRANSCRIBE_CHUNK_JOB, TRANSCRIBE_EARLY_JOB):
            for job in stores.catalog.jobs(stream.id, kind):
                row: dict[str, Any] = {
                    "stream": name,
                    "kind": kind,
                    "seq": job.segment_seq,
                    "status": job.status,
                    "created": job.created_at.timestamp(),
                    "started": job.started_at.timestamp() if job.started_at else None,
                    "finished": job.finished_at.timestamp() if job.finished_at else None,
                    "audio_seconds": job.audio_seconds,
                    "rtf": job.rtf,
                }
                chunk = chunks.get(job.segment_seq) if kind != TRANSCRIBE_JOB else None
                if chunk is not None:
                    begin = chunk.starts_at.timestamp()
                    row |= {
                        "seq": chunk.segment_seq,
                        "chunk": chunk.seq,
                        "chunk_start": begin,
                        "chunk_end": begin + chunk.duration,
                    }
                rows.append(row)
    return rows


def match_alerts(
    alerts: list[AlertOccurrence], receiver: WebhookReceiver, tolerance: float, loose: float
) -> int:
    """Pair each banned-word alert received with the occurrence it tells of (same stream
    and term, its matched words' time nearest, within ``tolerance`` or else ``loose``
    seconds); returns how many alerts matched none (said outside the scored window, or
    a term heard where none was said)."""
    unmatched = 0
    for received in receiver.received:
        payload = received.payload
        if payload.get("event") != BANNED_WORD_EVENT:
            continue
        placed = parse_iso(payload["at"]).timestamp()
        candidates = [
            a
            for a in alerts
            if a.received_at is None
            and a.stream == payload["stream"]
            and a.term == payload["term"]
            and abs(a.spoken_at - placed) <= loose
        ]
        if not candidates:
            unmatched += 1
            continue
        best = min(candidates, key=lambda a: abs(a.spoken_at - placed))
        best.received_at, best.placed_at, best.match = received.at, placed, payload.get("match")
        best.loose = abs(best.spoken_at - placed) > tolerance
    return unmatched


def bench_settings(args: argparse.Namespace, home: Path) -> Settings:
    """The defaults, but for what the run varies (and OCR off: see the module doc)."""
    return Settings(
        home=home,
        transcribe_workers=args.workers,
        speech_chunks=args.mode in ("early", "chunks"),
        early_transcripts=args.mode == "early",
        chunk_min_seconds=args.chunk_min_seconds,
        chunk_pause_seconds=args.chunk_pause_seconds,
        chunk_long_pause_seconds=args.chunk_long_pause_seconds,
        chunk_max_seconds=args.chunk_max_seconds,
        ocr_enabled=False,
        egress_allow=["127.0.0.0/8"],  # the local sources and webhook receiver
    )


def first_segment_starts(
    stores: Stores, stream_ids: list[int], timeout: float
) -> list[float | None]:
    """Each stream's first segment's wall-clock start (the recorder's anchor of media
    time 0), waiting up to ``timeout`` seconds for them to be chained."""
    deadline = time.time() + timeout
    starts: list[float | None] = [None] * len(stream_ids)
    while time.time() < deadline and None in starts:
        for i, stream_id in enumerate(stream_ids):
            if starts[i] is None:
                first = stores.catalog.first_segment(stream_id)
                starts[i] = first.starts_at.timestamp() if first is not None else None
        time.sleep(0.1)
    return starts


def run(args: argparse.Namespace) -> dict[str, Any]:
    cache = Path(args.cache).resolve()
    home = fresh_home(args)
    settings = bench_settings(args, home)
    program = make_program(settings.ffmpeg, cache)
    flv = args.source in ("flv", "rtmp")  # one FLV publisher, served over HTTP or RTMP
    period = flv_loop_period(settings.ffmpeg, program.video, cache) if flv else program.period
    stores = open_stores(settings)
    load_began = time.monotonic()
    transcribers = TranscriberPool(stores)  # loads the model (and assembles it the first time)
    model_load = time.monotonic() - load_began
    names = [f"live-{i + 1}" for i in range(args.streams)]
    sources: list[LiveHlsSource | LiveFlvSource] = []
    for i in range(args.streams):
        source: LiveHlsSource | LiveFlvSource = (
            LiveFlvSource(
                settings.ffmpeg, program.video, "rtmp" if args.source == "rtmp" else "http"
            )
            if flv
            else LiveHlsSource(settings.ffmpeg, program.video, home / "hls" / f"s{i + 1}")
        )
        source.start()
        sources.append(source)
    clocks = [] if flv else [PublisherClock(s) for s in sources if isinstance(s, LiveHlsSource)]
    state = Run(args, stores, program, sources, clocks, names)
    stream_ids = []
    for name, source in zip(names, sources, strict=True):
        stream_id = stores.chain.open_stream(name, source.url)
        stores.catalog.set_stream_details(stream_id, language="zh")
        stores.catalog.set_products(stream_id, parse_products(DEMO_PRODUCTS))
        stream_ids.append(stream_id)
    receiver = WebhookReceiver()
    if args.alerts:
        receiver.start()
        stores.catalog.add_webhook(receiver.url, "bench-secret-0123456789abcdef")

    # Create the index's tables before two threads open it (the indexer and the probe):
    # opened at the same moment on a fresh directory, one can see the tables without the
    # schema version yet and take the index for an outdated one.
    open_search_index(stores).close()

    def index_stage(stop: threading.Event) -> None:
        index = open_search_index(stores)
        try:
            Indexer(stores, index).follow(stop)
        finally:
            index.close()

    def alert_stage(stop: threading.Event) -> None:  # as `serve` runs its "alerts" stage
        notifier = WebhookNotifier(stores.catalog, stores.settings)
        try:
            notifier.follow(stop)
        finally:
            notifier.close()

    stages = [
        threading.Thread(
            target=RecordingSupervisor(stores).follow, args=(state.stop,), daemon=True
        ),
        threading.Thread(target=index_stage, args=(state.stop,), daemon=True),
        threading.Thread(target=state.monitor, daemon=True),
        threading.Thread(target=state.watch_clocks, daemon=True),
    ]
    if args.alerts:
        stages.append(threading.Thread(target=alert_stage, args=(state.stop,), daemon=True))
    transcribers.start()
    for thread in stages:
        thread.start()
    publisher_pids = [s.publisher.pid for s in sources if s.publisher]
    zeros: list[float | None] = []
    try:
        first_want = time.time()
        wanted_at = []
        for i, stream_id in enumerate(stream_ids):
            time.sleep(
                max(0.0, first_want + i * settings.segment_seconds / args.streams - time.time())
            )
            stores.catalog.want_recording(stream_id, True, sources[i].url)
            wanted_at.append(time.time())
        if flv:
            # Spoken time is the recorder's own: media time 0 of a stream is placed where
            # its first segment starts (the recorder's wall-clock anchor).
            zeros = first_segment_starts(
                stores, stream_ids, first_want + args.warmup - 0.5 - time.time()
            )
        else:
            for clock in clocks:
                clock.poll()
            zeros = [clock.media_zero() for clock in clocks]
        missing = [name for name, zero in zip(names, zeros, strict=True) if zero is None]
        assert not missing, f"no media time 0 for {missing} within the warm-up"
        scheduled_at = time.time()
        state.schedule(first_want, [z for z in zeros if z is not None], period)
        if args.probe:
            stages.append(threading.Thread(target=state.probe, daemon=True))
            stages[-1].start()
        window_begin = first_want + args.warmup
        window_end = window_begin + args.seconds
        assert scheduled_at < window_begin, "the probe started after the scored window began"
        time.sleep(max(0.0, window_begin - time.time()))
        cpu_begin = cpu_snapshot(publisher_pids)
        time.sleep(max(0.0, window_end - time.time()))
        cpu_end = cpu_snapshot(publisher_pids)
        time.sleep(max(0.0, window_end + args.drain - time.time()))
    finally:
        state.stop.set()
        stop_began = time.monotonic()
        transcribers.stop()
        for thread in stages:
            thread.join(120)
        transcribers.join(120)
        stop_seconds = time.monotonic() - stop_began
        for source in sources:
            source.stop()
        receiver.stop()
    periods = [clock.loop_period(program.period) for clock in clocks] or [period] * len(names)
    if not flv:
        zeros = [clock.media_zero() for clock in clocks]  # the final (best) estimates
    index = open_search_index(stores)
    scored: list[Occurrence | AlertOccurrence] = [*state.occurrences, *state.alerts]
    for occurrence in scored:
        zero = zeros[names.index(occurrence.stream)]
        assert zero is not None
        stream_period = periods[names.index(occurrence.stream)]
        occurrence.spoken_at = zero + occurrence.loop * stream_period + occurrence.onset
    for occurrence in state.occurrences:
        if args.probe and occurrence.found_at is None:
            stream_id = stream_ids[names.index(occurrence.stream)]
            occurrence.heard = heard_near(stores, stream_id, occurrence.spoken_at)
            occurrence.near = hits_near(
                index, occurrence.stream, occurrence.phrase, occurrence.spoken_at
            )
    index.close()
    other_alerts = match_alerts(state.alerts, receiver, args.tolerance, args.loose_tolerance)
    jobs = job_rows(stores, names)
    stores.close()
    span = cpu_end["wall"] - cpu_begin["wall"]
    machine = cpu_end["machine_total"] - cpu_begin["machine_total"]
    return {
        "config": {
            "source": args.source,
            "mode": args.mode,
            "streams": args.streams,
            "workers": args.workers,
            "segment_seconds": settings.segment_seconds,
            "chunk_min_seconds": settings.chunk_min_seconds,
            "chunk_pause_seconds": settings.chunk_pause_seconds,
            "chunk_long_pause_seconds": settings.chunk_long_pause_seconds,
            "chunk_max_seconds": settings.chunk_max_seconds,
            "model": settings.whisper_model,
            "compute_type": settings.whisper_compute_type,
            "beam_size": settings.whisper_beam_size,
            "warmup": args.warmup,
            "seconds": args.seconds,
            "drain": args.drain,
            "probe": args.probe,
            "alerts": args.alerts,
            "poll_seconds": args.poll_seconds,
            "tolerance": args.tolerance,
            "loose_tolerance": args.loose_tolerance,
            "program_period": program.period,
            "terms_per_loop": len(program.terms),
            "banned_per_loop": len(program.banned),
        },
        "model_load_seconds": model_load,
        "first_want": first_want,
        "wanted_at": wanted_at,
        "window": [window_begin, window_end],
        "publisher_media_zero": zeros,
        "publisher_loop_period": periods,
        "publisher_started_at": [s.started_at for s in sources],
        "load_at_start": state.load_at_start,
        "cpu": {
            "seconds": span,
            "python": cpu_end["python"] - cpu_begin["python"],
            "ffmpeg_children": cpu_end["children"] - cpu_begin["children"],
            "publishers": cpu_end["publishers"] - cpu_begin["publishers"],
            "machine_busy_fraction": (cpu_end["machine_busy"] - cpu_begin["machine_busy"])
            / machine,
            "cores": os.cpu_count(),
        },
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "probe_cpu_seconds": state.probe_cpu,
        "probe_queries": state.probe_queries,
        "stop_seconds": stop_seconds,
        "samples": state.samples,
        "jobs": jobs,
        "occurrences": [asdict(o) for o in state.occurrences],
        "alerts": [asdict(a) for a in state.alerts],
        "alerts_unmatched": other_alerts,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", choices=("hls", "flv", "rtmp"), default="hls")
    p.add_argument(
        "--mode",
        choices=("early", "chunks", "segments"),
        default="early",
        help="speech chunks with the fast pass (early: the defaults), without it (chunks),"
        " or whole segments (segments: speech_chunks off)",
    )
    defaults = Settings.model_fields
    for name in ("chunk_min_seconds", "chunk_pause_seconds", "chunk_long_pause_seconds"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=defaults[name].default)
    p.add_argument("--chunk-max-seconds", type=float, default=defaults["chunk_max_seconds"].default)
    p.add_argument("--alerts", action="store_true", help="a webhook receiver for banned terms")
    p.add_argument("--streams", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="settings.transcribe_workers")
    p.add_argument("--seconds", type=float, default=150.0, help="scored live window")
    p.add_argument("--warmup", type=float, default=20.0)
    p.add_argument("--drain", type=float, default=30.0)
    p.add_argument("--probe", action="store_true", help="search for every phrase occurrence")
    p.add_argument("--poll-seconds", type=float, default=0.1)
    p.add_argument("--tolerance", type=float, default=2.0)
    p.add_argument("--loose-tolerance", type=float, default=3.5)
    p.add_argument("--sample-seconds", type=float, default=1.0)
    p.add_argument("--cache", default="/tmp/lw-bench", help="models and the program video")
    p.add_argument("--home", default="/tmp/lw-bench/home", help="data directory (wiped)")
    p.add_argument("--out", required=True)
    return p


def run_child(options: list[str], out: Path, timeout: float) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its JSON result."""
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *options, "--out", str(out)],
        check=True,
        cwd=ROOT,
        timeout=timeout,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    args = parser().parse_args()
    result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
