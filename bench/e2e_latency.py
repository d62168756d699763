"""End-to-end latency: a phrase spoken in a live source until search returns it, and a
banned term spoken until its webhook alert arrives.

    .venv/bin/python bench/e2e_latency.py --streams 1 3 --seconds 150
    .venv/bin/python bench/e2e_latency.py --source flv --modes chunks segments \
        --streams 3 --seconds 90 --warmup 25

Issue 15 ("transcription as speech arrives"): `--source flv|rtmp|hls` (live HTTP-FLV or
RTMP sources, bench/live_sources.py, or live HLS), `--modes early chunks segments` (the
defaults with the fast pass; chunks without it; whole segments: run one after the other
for each stream count, side by side in one session),
`--chunk-min-seconds` and `--workers` (the capacity trade-off). Every run also registers
a local webhook receiver (tests/support/webhook_receiver.py) and runs the webhook sender
as `serve` does; each banned term the default lexicon finds in the fixtures (6 a loop:
全网最低价, 国家级, 祛斑, 美白, 全国第一, 最佳) is scored from the end of its last
syllable to the alert's arrival (matched by stream, term and the alert's `at` within
±3.5 s). Latencies "from the end" count from the phrase's last syllable (its end in the
manifest): the time the listener has heard it. For FLV, spoken time is the recorder's
own: media time 0 is the stream's first segment's `starts_at` (the recorder's wall-clock
anchor: the earliest wall time minus media time seen in ffmpeg's progress, i.e. when the
media arrived), so phrase end = that + loop * 68.064 s + the term's end. For HLS it is
the publisher's, as below (so HLS latencies include the HLS delivery).

For each configuration (1 and 3 concurrent live streams by default) one child process runs
bench/live_pipeline.py with its search probe: N local live HLS sources (ffmpeg -re) loop a
68 s program of the committed Mandarin fixtures whose 25 phrase onsets a loop are known
(manifest.json `terms`: 假一赔十, 七天无理由退货, 包邮, 羽绒服, prices, banned terms...);
recorder supervisor, transcriber pool and indexer run as `livewitness serve` runs them,
with the default settings (10 s segments, Whisper base int8 on the CPU, one worker).

- spoken_at: publisher media time 0 on the wall clock (from when its HLS segments
  appear) + loop * the publisher's loop period (68.064 s: the AAC track's length, seen
  as the longer HLS segment at each wrap) + onset;
- found_at: the first 0.1 s poll at which `SearchQuery(text=phrase, stream=name,
  sort="time")` returns a hit whose utterance covers spoken_at within +-2 s;
- latency = found_at - spoken_at, over the phrases spoken in the scored window (after a
  20 s warm-up, for `--seconds`); the pipeline runs 40 s more, so a phrase not found by
  then is a miss (an ASR error that sound-alike search did not catch, a phrase split
  between two segments' documents, or one placed more than 2 s off in time: the same
  search with a +-3.5 s tolerance tells the last kind apart).

Goal: p95 <= segment length + 6 s (16 s). Writes bench/out/e2e_latency.json and prints
Markdown tables: latency, where the time goes (median per stage, from the transcription
jobs' timestamps), transcription speed and backlog, CPU, and the misses. To re-run one
configuration and merge it into earlier results:

    .venv/bin/python bench/e2e_latency.py --streams 1 --out /tmp/one.json
    .venv/bin/python bench/e2e_latency.py --report bench/out/e2e_latency.json /tmp/one.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capacity import summarise
from bench.live_pipeline import CLIPS, run_child
from tests.support.speech import clip

OUT = Path(__file__).resolve().parent / "out" / "e2e_latency.json"


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def in_window(result: dict[str, Any], t: float) -> bool:
    begin, end = result["window"]
    return bool(begin <= t <= end)


def transcription(result: dict[str, Any]) -> dict[str, Any]:
    """Speed and backlog of the transcription stage over the scored window."""
    jobs = [j for j in result["jobs"] if j["finished"] and in_window(result, j["created"])]
    processing = [j["finished"] - j["started"] for j in jobs]
    audio = sum(j["audio_seconds"] or 0.0 for j in jobs)
    waits = [j["started"] - j["created"] for j in jobs]
    backlog = [s["backlog"] for s in result["samples"] if in_window(result, s["t"])]
    cpu = result["cpu"]
    mine = (cpu["python"] + cpu["ffmpeg_children"] + cpu["publishers"]) / cpu["seconds"]
    return {
        "segments": len(jobs),
        "chunks": sum(j.get("kind") == "transcribe-chunk" for j in jobs),
        # The fast pass: clauses decoded, and those dropped (their chunk closed first, or
        # they waited too long) without decoding.
        "early": sum(j.get("kind") == "transcribe-early" for j in jobs),
        "early_decoded": sum(
            j.get("kind") == "transcribe-early" and (j["audio_seconds"] or 0) > 0 for j in jobs
        ),
        "chunk_seconds_p50": pct(
            [j["audio_seconds"] for j in jobs if j.get("kind") == "transcribe-chunk"], 50
        ),
        "rtf": audio / sum(processing) if processing else None,
        "processing_p50": pct(processing, 50),
        "processing_p95": pct(processing, 95),
        "queue_wait_p50": pct(waits, 50),
        "queue_wait_max": max(waits) if waits else None,
        "backlog_mean": float(np.mean(backlog)) if backlog else None,
        "backlog_max": max(backlog) if backlog else None,
        "backlog_last": backlog[-1] if backlog else None,
        "machine_cpu": cpu["machine_busy_fraction"],
        "pipeline_cores": (cpu["python"] + cpu["ffmpeg_children"]) / cpu["seconds"],
        "publisher_cores": cpu["publishers"] / cpu["seconds"],
        "other_cores": cpu["machine_busy_fraction"] * cpu["cores"] - mine,
        "peak_rss_mb": result["peak_rss_mb"],
        "probe_cores": result["probe_cpu_seconds"] / (result["window"][1] - result["window"][0]),
    }


def phrase_lengths() -> list[tuple[str, float, float]]:
    """(phrase, onset in the looped program, seconds it lasts) from the fixtures' manifest."""
    table, position = [], 0.0
    for name in CLIPS:
        info = clip(name)
        table += [(t["text"], position + t["onset"], t["end"] - t["onset"]) for t in info["terms"]]
        position += info["duration_s"]
    return table


def phrase_length(occurrence: dict[str, Any], table: list[tuple[str, float, float]]) -> float:
    if occurrence.get("length"):
        return float(occurrence["length"])
    gap, length = min(
        (abs(onset - occurrence["onset"]), length)
        for text, onset, length in table
        if text == occurrence["phrase"]
    )
    return length if gap < 0.05 else 0.0


def latency(result: dict[str, Any]) -> dict[str, Any]:
    occurrences = result["occurrences"]
    found = [o for o in occurrences if o["found_at"] is not None]
    lat = [o["found_at"] - o["spoken_at"] for o in found]
    # A phrase has been said once its last syllable is: the later reference point, which
    # does not count the phrase's own length (1.4 s for 七天无理由退货) as waiting.
    lengths = phrase_lengths()
    after_end = [o["found_at"] - o["spoken_at"] - phrase_length(o, lengths) for o in found]
    segment_jobs = {
        (j["stream"], j["seq"]): j for j in result["jobs"] if j.get("kind") != "transcribe-chunk"
    }
    chunk_jobs = [j for j in result["jobs"] if j.get("chunk_start") is not None]
    stages: dict[str, list[float]] = {"captured": [], "queued": [], "transcribed": [], "found": []}
    for o in found:
        # The job that heard the phrase: its segment's, or the chunk holding the phrase's
        # end as the hit places it (on the recorder's clock, as the chunk's times are).
        end_placed = o["phrase_at"] + phrase_length(o, lengths)
        holding = [
            j
            for j in chunk_jobs
            if j["stream"] == o["stream"] and j["chunk_start"] <= end_placed <= j["chunk_end"] + 0.5
        ]
        # With the fast pass, a clause's piece and its chunk both hold it: the one whose
        # words were there first (decoded, finished by the time it was found).
        heard = [
            j
            for j in holding
            if (j["audio_seconds"] or 0) > 0 and j["finished"] and j["finished"] <= o["found_at"]
        ]
        heard.sort(key=lambda j: j["finished"])
        job = (heard or holding or [segment_jobs.get((o["stream"], o["segment"]))])[0]
        if job is None or job["finished"] is None:
            continue
        spoken_end = o["spoken_at"] + phrase_length(o, lengths)
        stages["captured"].append(job["created"] - spoken_end)
        stages["queued"].append(job["started"] - job["created"])
        stages["transcribed"].append(job["finished"] - job["started"])
        stages["found"].append(o["found_at"] - job["finished"])
    misses = [o for o in occurrences if o["found_at"] is None]
    loose = [o["loose_found_at"] - o["spoken_at"] for o in occurrences if o["loose_found_at"]]
    placed: dict[str, list[float]] = {}
    for o in found:
        placed.setdefault(o["stream"], []).append(o["phrase_at"] - o["spoken_at"])
    return {
        "occurrences": len(occurrences),
        "found": len(found),
        "misses": len(misses),
        "sound_alike": sum(o["match"] == "sound-alike" for o in found),
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
        "max": max(lat) if lat else None,
        "min": min(lat) if lat else None,
        "from_end": {
            "p50": pct(after_end, 50),
            "p95": pct(after_end, 95),
            "max": max(after_end) if after_end else None,
        },
        "stages_p50": {k: pct(v, 50) for k, v in stages.items()},
        "placed_minus_spoken_p50": pct([o["phrase_at"] - o["spoken_at"] for o in found], 50),
        "placed_minus_spoken_p50_by_stream": {k: pct(v, 50) for k, v in sorted(placed.items())},
        "loose": {
            "found": len(loose),
            "misses": len(occurrences) - len(loose),
            "p50": pct(loose, 50),
            "p95": pct(loose, 95),
            "max": max(loose) if loose else None,
        },
        "missed": [
            {
                "stream": o["stream"],
                "loop": o["loop"],
                "phrase": o["phrase"],
                "onset": o["onset"],
                "heard": o["heard"],
                "near": o.get("near"),
                "placed_off": o["loose_found_at"] is not None,
            }
            for o in misses
        ],
    }


def alerts(result: dict[str, Any]) -> dict[str, Any]:
    """Banned terms spoken in the window and their webhook alerts, from the term's end."""
    spoken = result.get("alerts", [])
    # Paired within the loose tolerance too: an HLS stream's words are placed on the
    # recorder's clock, 1-2 s after the publisher's (its delivery), and the alert is
    # no less received for that.
    got = [a for a in spoken if a["received_at"] is not None]
    lat = [a["received_at"] - a["spoken_at"] - a["length"] for a in got]
    return {
        "spoken": len(spoken),
        "received": len(got),
        "loose": sum(a["received_at"] is not None and a["loose"] for a in spoken),
        "unmatched": result.get("alerts_unmatched", 0),
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
        "max": max(lat) if lat else None,
        "missed": sorted({a["term"] for a in spoken if a["received_at"] is None}),
    }


def label(result: dict[str, Any]) -> str:
    """One configuration's name: source, mode, streams, workers (and the chunk minimum)."""
    cfg = result["config"]
    name = f"{cfg.get('source', 'hls')} {cfg.get('mode', 'segments')} {cfg['streams']}×"
    name += f" {cfg['workers']}w"
    if cfg.get("mode") in ("chunks", "early"):
        name += f" min {cfg['chunk_min_seconds']:g} s"
        if cfg["chunk_pause_seconds"] != 0.5:
            name += f" pause {cfg['chunk_pause_seconds']:g} s"
    return name


def row_of(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "streams": label(result),
        "latency": latency(result),
        "transcription": transcription(result),
        "alerts": alerts(result),
        "capacity": summarise(result),
        "run": result,
    }


def headline(rows: list[dict[str, Any]]) -> str:
    """The issue-15 table: from the phrase's end to searchable and to the alert."""
    lines = [
        "| run | phrases found / spoken | searchable from the phrase's end p50 / p95 / max"
        " | alerts received / spoken | alert from the term's end p50 / p95 / max"
        " | sustained | backlog mean / max | machine CPU | other processes | load at start |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lat, al, cap = row["latency"], row["alerts"], row["capacity"]
        end = lat["from_end"]
        lines.append(
            f"| {row['streams']} | {lat['found']} / {lat['occurrences']}"
            f" | {fmt(end['p50'])} / **{fmt(end['p95'])}** / {fmt(end['max'])} s"
            f" | {al['received']} / {al['spoken']}"
            + (f" ({al['loose']} placed 2–3.5 s off)" if al["loose"] else "")
            + f" | {fmt(al['p50'])} / **{fmt(al['p95'])}** / {fmt(al['max'])} s"
            f" | {'yes' if cap['sustained'] else 'no'} (workers {100 * cap['utilisation']:.0f} %"
            f" busy; {cap['drained_slices']} emptied, {cap['backlog_slope_per_min']:+.1f} jobs/min)"
            f" | {fmt(cap['backlog_mean'])} / {cap['backlog_max']}"
            f" | {100 * row['transcription']['machine_cpu']:.0f} %"
            f" | {fmt(cap['other_cores'], 2)} cores"
            f" | {fmt(row['run'].get('load_at_start'), 2)} |"
        )
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def report(rows: list[dict[str, Any]], goal: float) -> str:
    lines = [
        headline(rows),
        "",
        "| streams | phrases | found | misses | sound-alike | p50 | p95 | max | goal p95 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lat = row["latency"]
        lines.append(
            f"| {row['streams']} | {lat['occurrences']} | {lat['found']} | {lat['misses']}"
            f" | {lat['sound_alike']} | {fmt(lat['p50'], unit=' s')} | **{fmt(lat['p95'], unit=' s')}**"
            f" | {fmt(lat['max'], unit=' s')} | ≤ {goal:g} s |"
        )
    lines += [
        "",
        "| streams | from the phrase's last syllable: p50 | p95 | max |",
        "|---|---|---|---|",
    ]
    for row in rows:
        end = row["latency"]["from_end"]
        lines.append(
            f"| {row['streams']} | {fmt(end['p50'], unit=' s')} | {fmt(end['p95'], unit=' s')}"
            f" | {fmt(end['max'], unit=' s')} |"
        )
    lines += [
        "",
        "| streams | tolerance | found | misses | p50 | p95 | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lat, cfg = row["latency"], row["run"]["config"]
        loose = lat["loose"]
        lines.append(
            f"| {row['streams']} | ±{cfg['tolerance']:g} s | {lat['found']} | {lat['misses']}"
            f" | {fmt(lat['p50'], unit=' s')} | {fmt(lat['p95'], unit=' s')} | {fmt(lat['max'], unit=' s')} |"
        )
        lines.append(
            f"| {row['streams']} | ±{cfg['loose_tolerance']:g} s | {loose['found']} | {loose['misses']}"
            f" | {fmt(loose['p50'], unit=' s')} | {fmt(loose['p95'], unit=' s')} | {fmt(loose['max'], unit=' s')} |"
        )
    lines += [
        "",
        "| streams | phrase end → job queued | queue wait | transcription | stored → found | pipeline's time − spoken time |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        st = row["latency"]["stages_p50"]
        lines.append(
            f"| {row['streams']} | {fmt(st['captured'], unit=' s')} | {fmt(st['queued'], 2, ' s')}"
            f" | {fmt(st['transcribed'], 2, ' s')} | {fmt(st['found'], 2, ' s')}"
            f" | {fmt(row['latency']['placed_minus_spoken_p50'], 2, ' s')} ("
            + ", ".join(
                f"{name} {fmt(v, 2)}"
                for name, v in row["latency"]["placed_minus_spoken_p50_by_stream"].items()
            )
            + ") |"
        )
    lines += [
        "",
        "| streams | jobs | real-time factor | processing p50 / p95 | queue wait p50 / max | backlog mean / max / last | machine CPU | pipeline | probe | other processes | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        tr = row["transcription"]
        lines.append(
            f"| {row['streams']} | {tr['segments']}"
            + (
                f" ({tr['chunks']} chunks, p50 {fmt(tr['chunk_seconds_p50'])} s)"
                if tr["chunks"]
                else ""
            )
            + f" | {fmt(tr['rtf'], 2, 'x')}"
            f" | {fmt(tr['processing_p50'], 2)} / {fmt(tr['processing_p95'], 2)} s"
            f" | {fmt(tr['queue_wait_p50'], 2)} / {fmt(tr['queue_wait_max'], 2)} s"
            f" | {fmt(tr['backlog_mean'], 2)} / {tr['backlog_max']} / {tr['backlog_last']}"
            f" | {100 * tr['machine_cpu']:.0f} % | {tr['pipeline_cores']:.2f} cores"
            f" | {tr['probe_cores']:.3f} cores | {tr['other_cores']:.2f} cores"
            f" | {tr['peak_rss_mb']:.0f} MB |"
        )
    for row in rows:
        if row["latency"]["missed"]:
            lines.append(f"\nmissed with {row['streams']} stream(s) (segment: words heard):")
        for miss in row["latency"]["missed"]:
            near = "; ".join(
                f"{h['text']} ({h['match']}, {h['start']:+.1f}..{h['end']:+.1f} s)"
                for h in miss.get("near") or []
            )
            kind = "placed > tolerance off" if miss["placed_off"] else "not found"
            lines.append(
                f"- {kind}: {miss['stream']} loop {miss['loop']} {miss['phrase']} at"
                f" {miss['onset']:.1f} s: heard {miss['heard']}"
                + (f"; hits nearby: {near}" if near else "")
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--source", choices=("hls", "flv", "rtmp"), default="hls")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=("early", "chunks", "segments"),
        default=["segments"],
        help="speech chunks with the fast pass (early, the defaults), without it (chunks),"
        " or whole segments; each stream count runs in every mode, in turn",
    )
    parser.add_argument("--chunk-min-seconds", type=float, default=None)
    parser.add_argument("--chunk-pause-seconds", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=150.0, help="scored live window")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=40.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=2.0)
    parser.add_argument("--loose-tolerance", type=float, default=3.5)
    parser.add_argument("--cache", default="/tmp/lw-bench", help="models and program video")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="run nothing: tabulate earlier JSON results (a later file's run of the same"
        " configuration replaces an earlier one) and write them to --out",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = []
    if args.report:
        runs: dict[str, dict[str, Any]] = {}
        for path in args.report:
            runs |= {label(row["run"]): row["run"] for row in json.loads(path.read_text())}
        rows = [row_of(r) for r in runs.values()]
    with tempfile.TemporaryDirectory(prefix="lw-e2e-") as tmp:
        for streams in [] if args.report else args.streams:
            for mode in args.modes:
                options = [
                    "--source", args.source, "--mode", mode,
                    "--streams", str(streams), "--workers", str(args.workers),
                    "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                    "--drain", str(args.drain), "--tolerance", str(args.tolerance),
                    "--loose-tolerance", str(args.loose_tolerance),
                    "--cache", args.cache, "--home", f"{tmp}/home-{streams}-{mode}",
                    "--probe", "--alerts",
                ]  # fmt: skip
                for name in ("chunk_min_seconds", "chunk_pause_seconds"):
                    if getattr(args, name) is not None:
                        options += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
                timeout = args.warmup + args.seconds + args.drain + 600
                result = run_child(options, Path(tmp) / f"run-{streams}-{mode}.json", timeout)
                rows.append(row_of(result))
                print(report(rows[-1:], goal_of(rows[-1:])), flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    print("\n" + report(rows, goal_of(rows)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    print(f"\nwritten: {args.out}")


def goal_of(rows: list[dict[str, Any]]) -> float:
    """p95 goal: 5 s from the phrase's end with speech chunks (issue 15); a segment's
    length + 6 s for whole segments (the earlier goal)."""
    if any(row["run"]["config"].get("mode") in ("chunks", "early") for row in rows):
        return 5.0
    return float(rows[0]["run"]["config"]["segment_seconds"]) + 6


if __name__ == "__main__":
    main()
