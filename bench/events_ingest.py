"""Stream events ingested per second: through the one ingestion path (storage/events.py)
directly, and over real HTTP (``POST /api/v1/streams/{name}/events`` with a connector
key, NDJSON bodies), each followed by sealing every event into chained batches and
``verify`` re-reading them.

    .venv/bin/python bench/events_ingest.py [--events 50000] [--per-request 500]

Events are chat lines of ~150 bytes (Mandarin text, a user, one extra field kept under
raw) timed over the last minutes, as a danmaku connector sends them. The rate limit is
raised for the run (it is what the measurement is of). Writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_bench import machine
from core.settings import Settings
from core.timeutil import iso, utc_now
from evidence.verify import verify_stream
from storage.events import EventService
from storage.stores import Stores, open_stores
from tests.support.apiserver import running_api


def lines(count: int, prefix: str) -> list[bytes]:
    start = utc_now() - timedelta(minutes=10)
    step = 540.0 / count  # spread over nine minutes: 54 windows of 10 s
    return [
        json.dumps(
            {
                "id": f"{prefix}{n}",
                "kind": "chat",
                "at": iso(start + timedelta(seconds=n * step)),
                "text": f"主播这款羽绒服包邮吗 第{n}条",
                "user": f"观众{n % 997}",
                "badge": "fans-3",
            },
            ensure_ascii=False,
        ).encode()
        for n in range(count)
    ]


def seal_and_verify(stores: Stores, name: str) -> dict[str, float]:
    stream_id = stores.catalog.get_stream(name).id
    began = time.perf_counter()
    batches = EventService(stores).seal(stream_id, name, final=True)
    sealed = time.perf_counter() - began
    began = time.perf_counter()
    report = verify_stream(stores.catalog, stores.blobs, stores.settings.signing_keys_dir, name)
    return {
        "batches": len(batches),
        "seal_seconds": round(sealed, 3),
        "verify_seconds": round(time.perf_counter() - began, 3),
        "verified_events": report.events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--per-request", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("bench/out/events_ingest.json"))
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lw-events-"))
    settings = Settings(
        home=home,
        events_rate_per_second=1e9,
        events_rate_burst=10**9,
        rate_limit_per_second=10_000,
        rate_limit_burst=10_000,
    )
    results: dict[str, object] = {"machine": machine(), "events": args.events}
    with open_stores(settings) as stores:
        # Directly: what `events import` and `events follow` do, 500 lines per ingest.
        stream_id = stores.chain.open_stream("direct")
        service = EventService(stores)
        data = lines(args.events, "d")
        began = time.perf_counter()
        for start in range(0, len(data), args.per_request):
            chunk = data[start : start + args.per_request]
            report = service.ingest_lines(stream_id, list(enumerate(chunk, start=1)))
            assert report.accepted == len(chunk), report.problems[:3]
        seconds = time.perf_counter() - began
        results["direct"] = {
            "seconds": round(seconds, 3),
            "events_per_second": round(args.events / seconds),
            **seal_and_verify(stores, "direct"),
        }
        # Over HTTP: one connector posting NDJSON bodies one after another.
        stores.chain.open_stream("http")
        data = lines(args.events, "h")
        with running_api(stores) as api, api.client("connector") as client:
            began = time.perf_counter()
            for start in range(0, len(data), args.per_request):
                body = b"\n".join(data[start : start + args.per_request])
                answer = client.post(
                    "/api/v1/streams/http/events",
                    content=body,
                    headers={"Content-Type": "application/x-ndjson"},
                )
                assert answer.status_code == 200 and answer.json()["refused"] == 0, answer.text
            seconds = time.perf_counter() - began
        results["http"] = {
            "seconds": round(seconds, 3),
            "requests": -(-len(data) // args.per_request),
            "events_per_second": round(args.events / seconds),
            **seal_and_verify(stores, "http"),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
