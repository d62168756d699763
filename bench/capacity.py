"""Capacity: how many live Mandarin streams one machine transcribes (Whisper base int8,
CPU) without a growing backlog.

    .venv/bin/python bench/capacity.py --streams 1 2 3 4 5 6 --seconds 180

Each configuration runs bench/live_pipeline.py in a fresh child process: N local live HLS
sources loop 68 s of the committed Mandarin sales talk (speech about 85 % of the time);
recorder supervisor, transcriber pool and indexer run in one process as `livewitness
serve` runs them, default settings (10 s segments, beam 5, VAD, 3 s of context), no
search probe. After a 20 s warm-up, `--seconds` of live time are measured. Stream counts
are tried in the order given and stop after the first configuration that is not
sustained (--all runs them all); then the other `transcribe_workers` setting (2 by
default) runs from the largest count the first one sustained upwards, until it too fails
(or --max-streams).

A configuration is **sustained** when, over the second half of the measured window,
1. the transcription backlog (queued + running jobs, `catalog.backlog("transcribe")`,
   sampled every second) does not grow: the least-squares slope of its mean over each
   10 s slice (one period of the arrivals, which removes their saw-tooth) is at most
   +0.5 jobs/min, and
2. the queue keeps emptying: in every segment-length (10 s) slice of that half there is
   an instant with no job waiting to be claimed (backlog <= workers), computed exactly
   from the jobs' created/started times.
A pipeline that falls behind fails both: its backlog climbs by (N * segment processing
time - segment length) / segment length jobs per segment period and never drains.

Reported per configuration: processing time per 10 s segment (p50 / p95 / mean),
real-time factor, utilisation (busy worker-seconds / (wall seconds * workers)),
turnaround from segment closed to transcript stored (p50 / p95), backlog
(mean / max / slope), CPU (the machine from /proc/stat; the pipeline process with its
ffmpeg children; the publishers, which stand in for the platform, apart) and peak RSS.
Writes bench/out/capacity.json and prints Markdown tables, including a sizing table. To
re-run one configuration and merge it into earlier results:

    .venv/bin/python bench/capacity.py --streams 2 --other-workers 0 --out /tmp/two.json
    .venv/bin/python bench/capacity.py --report bench/out/capacity.json /tmp/two.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live_pipeline import run_child

OUT = Path(__file__).resolve().parent / "out" / "capacity.json"
MAX_SLOPE = 0.5  # jobs per minute
PLAN_UTILISATION = 0.75  # sizing keeps a quarter of the transcription worker(s) spare
CONTEXT_SECONDS = 3.0  # settings.context_seconds: each segment is decoded with this much before it

# Published faster-whisper figures used for the GPU estimate (none is a measurement of
# ours): README "Benchmark", https://github.com/SYSTRAN/faster-whisper#benchmark (also on
# https://pypi.org/project/faster-whisper/), 13 minutes of audio, beam 5.
PUBLISHED = {
    "audio_seconds": 13 * 60,
    "gpu": "NVIDIA RTX 3070 Ti 8GB, CUDA 12.4, large-v2",
    "gpu_int8_seconds": 59,
    "gpu_fp16_seconds": 63,
    "gpu_int8_batch8_seconds": 16,
    "cpu": "Intel Core i7-12700K, 8 threads, small",
    "cpu_int8_seconds": 102,
    "cpu_int8_batch8_seconds": 51,
}


def second_half(result: dict[str, Any]) -> tuple[float, float]:
    begin, end = result["window"]
    return (begin + end) / 2, end


def busy_seconds(jobs: list[dict[str, Any]], begin: float, end: float) -> float:
    """Worker-seconds spent on jobs inside [begin, end]."""
    total = 0.0
    for job in jobs:
        if job["started"] is None:
            continue
        finished = job["finished"] if job["finished"] is not None else end
        total += max(0.0, min(finished, end) - max(job["started"], begin))
    return total


def waiting_at(jobs: list[dict[str, Any]], t: float) -> int:
    return sum(1 for j in jobs if j["created"] <= t and (j["started"] is None or j["started"] > t))


def drains(jobs: list[dict[str, Any]], begin: float, end: float, period: float) -> list[bool]:
    """For each `period` slice of [begin, end]: was there an instant with no job waiting?
    The waiting count only falls when a job is claimed, so those instants are checked."""
    out = []
    slices = int((end - begin) // period)
    for k in range(slices):
        lo, hi = begin + k * period, begin + (k + 1) * period
        instants = [lo] + [j["started"] for j in jobs if j["started"] and lo <= j["started"] < hi]
        out.append(min(waiting_at(jobs, t) for t in instants) == 0)
    return out


def backlog_slope(samples: list[dict[str, Any]], begin: float, end: float, period: float) -> float:
    """Jobs per minute: least-squares slope of the backlog's mean over each segment-length
    slice (a whole period of the arrivals, so the saw-tooth of segments arriving and being
    done averages out)."""
    centres, means = [], []
    for k in range(int((end - begin) // period)):
        lo, hi = begin + k * period, begin + (k + 1) * period
        inside = [s["backlog"] for s in samples if lo <= s["t"] < hi]
        if inside:
            centres.append((lo + hi) / 2)
            means.append(float(np.mean(inside)))
    if len(centres) < 3:
        return 0.0
    return float(np.polyfit(centres, means, 1)[0]) * 60


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    cfg = result["config"]
    begin, end = result["window"]
    mid, _ = second_half(result)
    jobs = result["jobs"]
    measured = [j for j in jobs if begin <= j["created"] <= end and j["finished"]]
    processing = [j["finished"] - j["started"] for j in measured]
    turnaround = [j["finished"] - j["created"] for j in measured]
    audio = sum(j["audio_seconds"] or 0.0 for j in measured)
    samples = [s for s in result["samples"] if begin <= s["t"] <= end]
    late = [s for s in samples if s["t"] >= mid]
    slope = backlog_slope(late, mid, end, cfg["segment_seconds"])
    drained = drains(jobs, mid, end, cfg["segment_seconds"])
    sustained = slope <= MAX_SLOPE and all(drained)
    cpu = result["cpu"]
    unfinished = sum(1 for j in jobs if j["created"] <= end and j["finished"] is None)
    return {
        "streams": cfg["streams"],
        "workers": cfg["workers"],
        "segment_seconds": cfg["segment_seconds"],
        "sustained": sustained,
        "segments": len(measured),
        "processing_p50": pct(processing, 50),
        "processing_p95": pct(processing, 95),
        "processing_mean": float(np.mean(processing)) if processing else None,
        "rtf": audio / sum(processing) if processing else None,
        "utilisation": busy_seconds(jobs, begin, end) / ((end - begin) * cfg["workers"]),
        "utilisation_second_half": busy_seconds(jobs, mid, end) / ((end - mid) * cfg["workers"]),
        "turnaround_p50": pct(turnaround, 50),
        "turnaround_p95": pct(turnaround, 95),
        "backlog_mean": float(np.mean([s["backlog"] for s in samples])) if samples else None,
        "backlog_max": max((s["backlog"] for s in samples), default=None),
        "backlog_slope_per_min": slope,
        "drained_slices": f"{sum(drained)}/{len(drained)}",
        "unfinished_at_end": unfinished,
        "machine_cpu": cpu["machine_busy_fraction"],
        "pipeline_cores": (cpu["python"] + cpu["ffmpeg_children"]) / cpu["seconds"],
        "ffmpeg_cores": cpu["ffmpeg_children"] / cpu["seconds"],
        "publisher_cores": cpu["publishers"] / cpu["seconds"],
        "other_cores": cpu["machine_busy_fraction"] * cpu["cores"]
        - (cpu["python"] + cpu["ffmpeg_children"] + cpu["publishers"]) / cpu["seconds"],
        "cores": cpu["cores"],
        "load1_mean": float(np.mean([s["load1"] for s in samples])) if samples else None,
        "peak_rss_mb": result["peak_rss_mb"],
    }


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| streams | workers | sustained | segments | processing per 10 s segment p50 / p95 | real-time factor | utilisation | turnaround p50 / p95 | backlog mean / max | backlog slope, 2nd half | queue emptied, 2nd half | machine CPU | pipeline CPU | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['streams']} | {r['workers']} | {'**yes**' if r['sustained'] else '**no**'}"
            f" | {r['segments']} | {fmt(r['processing_p50'])} / {fmt(r['processing_p95'])} s"
            f" | {fmt(r['rtf'])}x | {100 * r['utilisation']:.0f} %"
            f" | {fmt(r['turnaround_p50'], 1)} / {fmt(r['turnaround_p95'], 1)} s"
            f" | {fmt(r['backlog_mean'], 1)} / {r['backlog_max']}"
            f" | {r['backlog_slope_per_min']:+.2f} jobs/min | {r['drained_slices']} slices"
            f" | {100 * r['machine_cpu']:.0f} % of {r['cores']} cores"
            f" | {r['pipeline_cores']:.2f} cores | {r['peak_rss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def sizing(rows: list[dict[str, Any]]) -> str:
    """Machines for N streams: CPU from the runs above, GPU estimated from published figures.
    CPU is planned at the largest sustained configuration whose worker utilisation is at
    most PLAN_UTILISATION (the rest is headroom for the API, searches and bursts)."""
    held = [r for r in rows if r["sustained"]]
    plan = max(
        (r for r in held if r["utilisation"] <= PLAN_UTILISATION),
        key=lambda r: r["streams"],
        default=None,
    )
    top = max(held, key=lambda r: r["streams"], default=None)
    if plan is None or top is None:
        return "no configuration was sustained with headroom: no sizing"
    cores, per_machine = plan["cores"], plan["streams"]
    p = PUBLISHED
    gpu_rtf = p["audio_seconds"] / p["gpu_int8_seconds"]
    gpu_batched = p["audio_seconds"] / p["gpu_int8_batch8_seconds"]
    cpu_rtf = p["audio_seconds"] / p["cpu_int8_seconds"]
    # One worker decodes one segment at a time, with the context in front of it: a stream
    # needs (segment + context) / segment / RTF of it.
    segment = plan["segment_seconds"]
    per_gpu = math.floor(gpu_rtf * segment / (segment + CONTEXT_SECONDS) * PLAN_UTILISATION)
    lines = [
        "| streams | CPU, base int8 (measured on this machine) | GPU (**estimate** from a published large-v2 figure) |",
        "|---|---|---|",
    ]
    for n in (1, 3, 10, 30, 100):
        machines = math.ceil(n / per_machine)
        lines.append(
            f"| {n} | {machines} x {cores}-core machine ({machines * cores} cores,"
            f" {plan['workers']} workers each) | {math.ceil(n / per_gpu)} x RTX 3070 Ti-class GPU |"
        )
    lines += [
        "",
        f"CPU (measured): planned at {per_machine} streams per {cores} cores"
        f" ({per_machine / cores:.1f} per core) with transcribe_workers={plan['workers']}: the"
        f" largest sustained run with worker utilisation <= {100 * PLAN_UTILISATION:.0f} %"
        f" ({100 * plan['utilisation']:.0f} %, pipeline {plan['pipeline_cores']:.2f} cores,"
        f" peak RSS {plan['peak_rss_mb']:.0f} MB). Largest sustained at all: {top['streams']}"
        f" streams with {top['workers']} worker(s) at {100 * top['utilisation']:.0f} %.",
        f"GPU (estimate, nothing was measured on a GPU): the faster-whisper README reports"
        f" 13 min of audio in {p['gpu_int8_seconds']} s with large-v2 int8, beam 5, on an"
        f" {p['gpu']} = {gpu_rtf:.1f}x real time ({gpu_batched:.1f}x with batch_size=8,"
        f" which the pipeline does not use); small int8 on an {p['cpu']}: {cpu_rtf:.1f}x."
        f" Decoding {segment:g} s segments with {CONTEXT_SECONDS:g} s of context, one unbatched"
        f" worker at {100 * PLAN_UTILISATION:.0f} % then carries {per_gpu} streams even with"
        " large-v2; base (about 1/20 of large-v2's parameters) should carry"
        " more, but the per-segment CPU work (audio decode, Silero VAD, word alignment,"
        " indexing) then sets the limit, and no published figure covers that.",
    ]
    return "\n".join(lines)


def merged(paths: list[Path]) -> list[dict[str, Any]]:
    """Runs of earlier capacity JSON files, a later file's run replacing an earlier one of
    the same streams and workers."""
    runs: dict[tuple[int, int], dict[str, Any]] = {}
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            config = run["run"]["config"]
            runs[(config["workers"], config["streams"])] = run
    return [runs[key] for key in sorted(runs)]


def run_config(args: argparse.Namespace, tmp: str, streams: int, workers: int) -> dict[str, Any]:
    options = [
        "--streams", str(streams), "--workers", str(workers),
        "--seconds", str(args.seconds), "--warmup", str(args.warmup), "--drain", "0",
        "--cache", args.cache, "--home", f"{tmp}/home-{streams}-{workers}",
    ]  # fmt: skip
    out = Path(tmp) / f"run-{streams}-{workers}.json"
    result = run_child(options, out, args.warmup + args.seconds + 600)
    row = summarise(result)
    print(table([row]), flush=True)
    return {"summary": row, "run": {k: v for k, v in result.items() if k != "occurrences"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--seconds", type=float, default=180.0, help="measured live window")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1, help="settings.transcribe_workers")
    parser.add_argument("--other-workers", type=int, default=2, help="0: skip the comparison")
    parser.add_argument("--max-streams", type=int, default=12, help="for --other-workers")
    parser.add_argument("--all", action="store_true", help="do not stop at the first failure")
    parser.add_argument("--cache", default="/tmp/lw-bench", help="models and program video")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="run nothing: tabulate earlier JSON results (a later file's run of the same"
        " streams and workers replaces an earlier one) and write them to --out",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []

    def sweep(counts: list[int], workers: int) -> list[int]:
        """Run the counts in order (up to the first unsustained one); the sustained ones."""
        held = []
        for streams in counts:
            runs.append(run_config(args, tmp, streams, workers))
            if runs[-1]["summary"]["sustained"]:
                held.append(streams)
            elif not args.all:
                break
        return held

    if args.report:
        runs = [{**r, "summary": summarise(r["run"])} for r in merged(args.report)]
    else:
        with tempfile.TemporaryDirectory(prefix="lw-capacity-") as tmp:
            held = sweep(args.streams, args.workers)
            if args.other_workers:
                # From the largest count the default held, upwards until this fails too.
                start = held[-1] if held else args.streams[0]
                sweep(list(range(start, args.max_streams + 1)), args.other_workers)
    rows = [r["summary"] for r in runs]
    print("\n" + table(rows))
    print("\n" + sizing(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"criterion_max_slope": MAX_SLOPE, "published": PUBLISHED, "runs": runs},
            ensure_ascii=False,
            indent=1,
        )
    )
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
