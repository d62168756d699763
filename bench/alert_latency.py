"""Banned-word alert latency: from a segment's transcript being stored to the webhook
receiving the alert, over real HTTP (issue goal: within 5 s).

    .venv/bin/python bench/alert_latency.py [--segments 40]

The indexer stage runs as ``livewitness serve`` runs it (Indexer.follow and
WebhookNotifier with their default 0.25 s polls, woken at once by the catalog when a
transcript is stored or an alert raised in the same process) on a fresh data directory;
a local receiver (tests.support.webhook_receiver) answers 200. Each round stores one segment's
transcript containing a banned term said seconds ago (a live stream) and waits for its
alert. With ``--no-wake`` the transcripts are stored through a catalog of their own (as a
transcriber process would), so the stages find them by polling, as a separate
``livewitness indexer`` process does.
Reports p50/p95/max in seconds and writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_bench import machine, percentile
from compliance.alerts import WebhookNotifier
from core.settings import Settings
from core.timeutil import utc_now
from indexer.factory import open_search_index
from indexer.service import Indexer
from storage.stores import open_stores
from tests.support.searchdata import add_stream
from tests.support.webhook_receiver import WebhookReceiver

LINES = ("这款精华是国家级配方", "全网最低价只要九十九", "用了可以祛斑", "效果全国第一")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/out/alert_latency.json"))
    parser.add_argument("--no-wake", action="store_true", help="store from another catalog")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lw-alerts-"))
    (home / "tmp").mkdir()
    receiver = WebhookReceiver()
    receiver.start()
    latencies: list[float] = []
    with open_stores(Settings(home=home)) as stores:
        stores.catalog.add_webhook(receiver.url, "bench-secret-0123456789abcdef")
        stop = threading.Event()
        index = open_search_index(stores)
        notifier = WebhookNotifier(stores.catalog, stores.settings)
        threads = [
            threading.Thread(target=Indexer(stores, index).follow, args=(stop,), daemon=True),
            threading.Thread(target=notifier.follow, args=(stop,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        writer = open_stores(Settings(home=home)) if args.no_wake else stores
        for n in range(args.segments):
            line = LINES[n % len(LINES)]
            before = len(receiver.received)
            stored = time.time()
            # One stream per round: each is a new live stream whose first segment has a hit.
            add_stream(
                writer, home / "tmp", f"room{n}", [[(1.0, line)]], utc_now() - timedelta(seconds=12)
            )
            got = receiver.wait_for(before + 1, timeout=30)
            if len(got) > before:
                latencies.append(got[before].at - stored)
            time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        if writer is not stores:
            writer.close()
        notifier.close()
        index.close()
    receiver.stop()
    result = {
        "machine": machine(),
        "rounds": args.segments,
        "woken": not args.no_wake,
        "received": len(latencies),
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "max_s": round(max(latencies), 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("| stages | rounds | alerts received | p50 s | p95 s | max s |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {'polling' if args.no_wake else 'woken'} | {args.segments} | {result['received']}"
        f" | {result['p50_s']} | {result['p95_s']} | {result['max_s']} |"
    )


if __name__ == "__main__":
    main()
