"""Near-real-time search: seconds from a transcript being stored to search returning it.

    .venv/bin/python bench/search_nrt.py [--transcripts 50]

An Indexer follows the catalog (poll 0.5 s, as `serve` runs it) while this script stores
transcripts one by one, each with a unique phrase, and polls search until it appears.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import Settings
from indexer.factory import open_search_index
from indexer.protocol import SearchQuery
from indexer.service import Indexer
from storage.stores import open_stores
from tests.support.searchdata import add_stream

DIGITS = "零一二三四五六七八九"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transcripts", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stores = open_stores(Settings(home=Path(tmp) / "home"))
        index = open_search_index(stores)
        stop = threading.Event()
        follower = threading.Thread(target=Indexer(stores, index).follow, args=(stop, 0.5))
        follower.start()
        latencies = []
        for n in range(args.transcripts):
            code = "".join(DIGITS[int(d)] for d in f"{n:04d}")
            phrase = f"编号{code}号链接包邮"
            add_stream(
                stores, Path(tmp), f"nrt-{n}", [[(1.0, phrase)]]
            )  # stores the transcript last
            began = time.perf_counter()
            while not index.search(SearchQuery(text=f"编号{code}号", stream=f"nrt-{n}")).hits:
                time.sleep(0.01)
            latencies.append(time.perf_counter() - began)
        stop.set()
        follower.join()
        index.close()
        stores.close()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"{len(latencies)} transcripts: stored to searchable p50 {statistics.median(latencies):.3f}s"
        f" p95 {p95:.3f}s max {latencies[-1]:.3f}s (goal: within 2 s)"
    )


if __name__ == "__main__":
    main()
