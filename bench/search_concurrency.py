"""Concurrent searches against the real HTTP API (``livewitness api``, uvicorn) on an
embedded index of synthetic utterances.

    .venv/bin/python bench/search_concurrency.py --utterances 100000 --clients 50 --seconds 30

1. Fills a data home (``--home``) with ``--utterances`` synthetic Mandarin utterances
   (:mod:`bench.search_corpus`, loaded with ``bulk_load`` and optimized, as a reindex
   ends) and one reviewer API key per client. ``--reuse`` keeps a filled home.
2. Starts ``livewitness api`` on a free 127.0.0.1 port in a process of its own, with the
   per-key rate limit raised (clients here search back to back, no pause: the bench
   measures the search path, not the limiter).
3. Runs ``--clients`` clients (asyncio tasks with httpx, one key each) for ``--seconds``:
   each searches again as soon as its answer comes, a phrase from the corpus vocabulary
   (common and rare, sound-alikes, a third with a stream or claim filter or sorted by
   time). Every answer but a 200 with JSON hits is an error. ``--pause S``: each client
   waits S seconds after each answer, as a person reading the hits would (the default, 0,
   is the stress test: every client searches back to back).

Prints p50/p95/p99/max latency, requests per second and errors as Markdown, and writes
them as JSON to ``--out``. The clients share the machine with the server: on 2 cores they
take part of a core, which the figures include.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.search_bench import COMMON, SOUND_ALIKES
from bench.search_corpus import CLAIM_LINES, CorpusGenerator

LIVEWITNESS = str(Path(sys.executable).parent / "livewitness")
CLAIMS = ("price", "free_shipping", "returns", "authenticity", "giveaway")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def fill(home: Path, utterances: int, streams: int, clients: int) -> list[str]:
    """A fresh data home: the index and one reviewer key per client; returns the keys."""
    from core.settings import Settings
    from indexer.embedded import EmbeddedSearchIndex
    from storage.api_keys import create_api_key
    from storage.stores import open_stores

    home.mkdir(parents=True, exist_ok=True)
    with open_stores(Settings(home=home)) as stores:
        keys = [
            create_api_key(stores.catalog, "reviewer", f"bench-client-{n}")[0]
            for n in range(clients)
        ]
    index = EmbeddedSearchIndex(home / "search" / "utterances.sqlite3")
    index.clear()
    began = time.perf_counter()
    done = 0
    for batch in CorpusGenerator(utterances=utterances, streams=streams).batches(10_000):
        index.bulk_load(batch)
        done += len(batch)
        print(f"  {done:,} utterances ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    index.optimize()
    index.close()
    (home / "bench-keys.json").write_text(json.dumps(keys))
    return keys


def queries(streams: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    phrases = [*COMMON, *SOUND_ALIKES, *(line for line in CLAIM_LINES if len(line) <= 8)]
    products = CorpusGenerator(utterances=1, streams=1).products
    phrases += rng.sample(products, min(40, len(products)))
    drawn = []
    for _ in range(2000):
        params = {"q": rng.choice(phrases)}
        kind = rng.random()
        if kind < 0.1:
            params["stream"] = f"room-{rng.randint(1, streams):04d}"
        elif kind < 0.2:
            params["claim"] = rng.choice(CLAIMS)
        elif kind < 0.3:
            params["sort"] = "time"
        drawn.append(params)
    return drawn


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc): less sensitive to other load on the
    machine than latency, so runs on a busy machine can still be compared."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_api(home: Path, port: int, settings: list[str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEWITNESS_")}
    env.update(
        LIVEWITNESS_HOME=str(home),
        LIVEWITNESS_RATE_LIMIT_PER_SECOND="100000",
        LIVEWITNESS_RATE_LIMIT_BURST="100000",
    )
    for setting in settings:
        name, _, value = setting.partition("=")
        env[name] = value
    server = subprocess.Popen(
        [LIVEWITNESS, "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
            return server  # it answers (/health may say 503: only the api stage runs)
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the API did not start within 60 s")


async def load(
    base: str, keys: list[str], drawn: list[dict[str, str]], seconds: float, pause: float = 0.0
) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def one_client(number: int) -> None:
        # A client of its own each, one connection, as fifty people's browsers would be.
        rng = random.Random(number)
        headers = {"X-API-Key": keys[number]}
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
            while time.perf_counter() < deadline:
                params = rng.choice(drawn)
                began = time.perf_counter()
                try:
                    answer = await client.get("/api/v1/search", params=params)
                    ok = answer.status_code == 200 and "hits" in answer.json()
                    why = f"HTTP {answer.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    ok, why = False, type(exc).__name__
                latencies.append((time.perf_counter() - began) * 1000)
                if not ok:
                    errors[why] += 1
                if pause:
                    await asyncio.sleep(pause * (0.5 + rng.random()))  # not in step

    await asyncio.gather(*(one_client(n) for n in range(len(keys))))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/lw-search-concurrency"))
    parser.add_argument("--utterances", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds not counted.")
    parser.add_argument("--pause", type=float, default=0.0, help="Seconds between searches.")
    parser.add_argument("--reuse", action="store_true", help="Keep a filled --home.")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        help="LIVEWITNESS_NAME=value for the server (e.g. LIVEWITNESS_API_THREADS=40).",
    )
    args = parser.parse_args()

    keys_file = args.home / "bench-keys.json"
    if args.reuse and keys_file.exists():
        keys = json.loads(keys_file.read_text())
    else:
        if args.home.exists():
            raise SystemExit(f"{args.home} exists: remove it, or give --reuse")
        keys = fill(args.home, args.utterances, args.streams, args.clients)
    keys = keys[: args.clients]
    if len(keys) < args.clients:
        raise SystemExit(f"{args.home} has keys for {len(keys)} clients; fill it again")
    drawn = queries(args.streams, 20261202)
    port = free_port()
    server = start_api(args.home, port, args.setting)
    load_before = os.getloadavg()
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(load(base, keys, drawn, args.warmup, args.pause))
        cpu_before = cpu_seconds(server.pid)
        latencies, errors = asyncio.run(load(base, keys, drawn, args.seconds, args.pause))
        server_cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(30)
    result: dict[str, Any] = {
        "clients": args.clients,
        "pause_s": args.pause,
        "settings": args.setting,
        "seconds": args.seconds,
        "requests": len(latencies),
        "per_second": round(len(latencies) / args.seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / max(1, len(latencies)), 2),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()},"
        f" Python {platform.python_version()}",
    }
    print("| clients | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {result['clients']} | {result['requests']:,} | {result['per_second']} |"
        f" {result['p50_ms']} | {result['p95_ms']} | {result['p99_ms']} | {result['max_ms']} |"
        f" {result['errors']} |"
    )
    print(f"server CPU per request: {result['server_cpu_ms_per_request']} ms")
    print(f"load average before {result['load_before']}, after {result['load_after']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
