"""Indexing throughput and search latency of the embedded engine on a synthetic corpus.

    .venv/bin/python bench/search_bench.py --utterances 1000000 --streams 1000 \\
        --db /tmp/livewitness-search/utterances.sqlite3

1. Builds the corpus (:mod:`bench.search_corpus`) batch by batch and loads each batch with
   ``EmbeddedSearchIndex.bulk_load`` (one transaction per batch). Generating documents and
   indexing them are timed apart; utterances/s is indexing alone. ``--reuse`` keeps an
   existing database instead.
2. Runs ``--queries`` queries of each kind on a warm cache (the database file is read once
   and a separate set of queries runs first): plain phrases of 2 to 6 characters from the
   corpus vocabulary (common and rare), sound-alike spellings (包油, 假一陪时, 与荣福, 趋班),
   plain phrases with a stream, claim, product or time-range filter, and plain phrases
   sorted by time. Reports p50/p95/p99 latency (time.perf_counter) and hits per query.
3. ``--profile`` runs every kind once more under cProfile and splits the time into the
   count queries, the hit queries (SQL), JSON decoding, highlighting and the rest.

Results are printed as a Markdown table and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import platform
import pstats
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_corpus import (
    CLAIM_LINES,
    FILLERS,
    GREETINGS,
    HOMOPHONES,
    CorpusGenerator,
    word_list,
)
from indexer.claims import load_claim_types
from indexer.embedded import EmbeddedSearchIndex
from indexer.protocol import SearchQuery

KINDS = (
    "plain",
    "sound-alike",
    "filter: stream",
    "filter: claim",
    "filter: product",
    "filter: time range",
    "sort by time",
)
COMMON = (
    *GREETINGS[:6],
    *FILLERS[:6],
    *word_list("直播间 链接 关注 库存 主播 今天 原价 优惠券 评论区 上身"),
)
# Spellings a reviewer (or Whisper) may use for what was said: same syllables, other characters.
SOUND_ALIKES = (
    *(misheard for _, misheard in HOMOPHONES),
    *word_list(
        "全国包油 假一陪十 七天无里由退货 旗跑 面摸 精华叶 牛仔苦 卫依 买一送衣 免运非 "
        "当天发或 关住 库村 防嗮霜 空气炸过 电饭包"
    ),
)


@dataclass
class Measured:
    query: SearchQuery
    ms: float
    total: int
    returned: int


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- building ------------------------------------------------------------------------------
def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def db_size(db: Path) -> int:
    return sum(
        Path(str(db) + s).stat().st_size for s in ("", "-wal", "-shm") if Path(str(db) + s).exists()
    )


def build(corpus: CorpusGenerator, db: Path, batch: int) -> dict[str, Any]:
    remove_db(db)
    index = EmbeddedSearchIndex(db)
    generating = indexing = 0.0
    done = 0
    per_batch: list[float] = []
    batches = corpus.batches(batch)
    began = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        docs = next(batches, None)
        t1 = time.perf_counter()
        if docs is None:
            break
        index.bulk_load(docs)
        t2 = time.perf_counter()
        generating += t1 - t0
        indexing += t2 - t1
        done += len(docs)
        per_batch.append(len(docs) / (t2 - t1))
        if len(per_batch) % 10 == 0:
            print(
                f"  {done:>9,} docs  generate {done / generating:,.0f}/s"
                f"  index {done / indexing:,.0f}/s (this batch {per_batch[-1]:,.0f}/s)",
                file=sys.stderr,
                flush=True,
            )
    t3 = time.perf_counter()
    index.optimize()  # as `livewitness reindex` ends
    optimizing = time.perf_counter() - t3
    t3 = time.perf_counter()
    index.close()  # the last connection checkpoints the WAL into the database file
    closing = time.perf_counter() - t3
    tenth = max(1, len(per_batch) // 10)
    return {
        "utterances": done,
        "generate_s": round(generating, 1),
        "generate_per_s": round(done / generating),
        "index_s": round(indexing, 1),
        "index_per_s": round(done / indexing),
        "index_per_s_first_10pct": round(sum(per_batch[:tenth]) / tenth),
        "index_per_s_last_10pct": round(sum(per_batch[-tenth:]) / tenth),
        "optimize_s": round(optimizing, 1),
        "index_per_s_with_optimize": round(done / (indexing + optimizing)),
        "close_checkpoint_s": round(closing, 1),
        "wall_s": round(time.perf_counter() - began, 1),
    }


# -- queries -------------------------------------------------------------------------------
def vocabulary(corpus: CorpusGenerator, rng: random.Random) -> list[str]:
    """Plain query texts: common words, product names, claim phrases, and 2-6 character
    runs cut from sentences of a few streams (some common, some rare)."""
    sample: list[str] = []
    for plan in rng.sample(corpus.plans, min(8, len(corpus.plans))):
        for n, doc in enumerate(corpus.stream_docs(plan)):
            if n >= 150:
                break
            sample.append(doc.text)
    runs: list[str] = []
    while len(runs) < 400:
        text = rng.choice(sample)
        chunks = [
            c
            for c in "".join(ch if "\u4e00" <= ch <= "\u9fff" else " " for ch in text).split()
            if len(c) >= 2
        ]
        if not chunks:
            continue
        chunk = rng.choice(chunks)
        length = rng.randint(2, min(6, len(chunk)))
        start = rng.randint(0, len(chunk) - length)
        runs.append(chunk[start : start + length])
    claims = [p for c in load_claim_types() for p in c.phrases if len(p) >= 2] + list(CLAIM_LINES)
    pools = [list(COMMON), corpus.products, claims, runs]
    weights = [0.25, 0.25, 0.2, 0.3]
    return [rng.choice(rng.choices(pools, weights)[0]) for _ in range(4000)]


def make_queries(corpus: CorpusGenerator, per_kind: int, seed: int) -> dict[str, list[SearchQuery]]:
    """Queries of every kind. Filters are combined with texts a reviewer would pair with
    them: a product or a common word within a claim type, a claim or a common word within
    a product, a stream's own products (or any phrase) within a stream, and a day on which
    streams ran for a time range."""
    rng = random.Random(seed)
    words = vocabulary(corpus, rng)
    claim_types = [c.name for c in load_claim_types()]
    claims = [p for c in load_claim_types() for p in c.phrases if len(p) >= 2]

    def plain() -> str:
        return rng.choice(words)

    def stream_query() -> SearchQuery:
        plan = rng.choice(corpus.plans)
        text = rng.choice(plan.products).name if rng.random() < 0.5 else plain()
        return SearchQuery(text, stream=plan.name)

    def claim_query() -> SearchQuery:
        text = rng.choice(corpus.products) if rng.random() < 0.5 else rng.choice(COMMON)
        return SearchQuery(text, claim=rng.choice(claim_types))

    def product_query() -> SearchQuery:
        text = rng.choice(claims) if rng.random() < 0.5 else rng.choice(COMMON)
        return SearchQuery(text, product=rng.choice(corpus.products))

    def time_query() -> SearchQuery:
        day = rng.choice(corpus.plans).starts_at
        since = day.replace(hour=0, minute=0, second=0)
        return SearchQuery(plain(), since=since, until=since + timedelta(days=1))

    makers: dict[str, Callable[[], SearchQuery]] = {
        "plain": lambda: SearchQuery(plain()),
        "sound-alike": lambda: SearchQuery(rng.choice(SOUND_ALIKES)),
        "filter: stream": stream_query,
        "filter: claim": claim_query,
        "filter: product": product_query,
        "filter: time range": time_query,
        "sort by time": lambda: SearchQuery(plain(), sort="time"),
    }
    return {kind: [makers[kind]() for _ in range(per_kind)] for kind in KINDS}


def run_queries(index: EmbeddedSearchIndex, queries: list[SearchQuery]) -> list[Measured]:
    out = []
    for query in queries:
        t0 = time.perf_counter()
        result = index.search(query)
        ms = (time.perf_counter() - t0) * 1000
        out.append(Measured(query, ms, result.total, len(result.hits)))
    return out


def summarise(measured: list[Measured]) -> dict[str, Any]:
    ms = [m.ms for m in measured]
    totals = [float(m.total) for m in measured]
    slowest = sorted(measured, key=lambda m: -m.ms)[:5]
    return {
        "queries": len(measured),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(sum(ms) / len(ms), 1),
        "total_hits_p50": int(percentile(totals, 50)),
        "total_hits_p95": int(percentile(totals, 95)),
        "total_hits_mean": round(sum(totals) / len(totals)),
        "zero_hit_queries": sum(1 for m in measured if m.total == 0),
        "returned_mean": round(sum(m.returned for m in measured) / len(measured), 1),
        "slowest": [
            {"ms": round(m.ms, 1), "total": m.total, "query": describe(m.query)} for m in slowest
        ],
    }


BUCKETS = ((0, 1000, "< 1k"), (1000, 10_000, "1k-10k"), (10_000, 50_000, "10k-50k"),
           (50_000, 10**12, ">= 50k"))  # fmt: skip


def by_hits(measured: list[Measured]) -> dict[str, Any]:
    """Latency of all kinds together, by how many utterances a query matched (its total)."""
    out: dict[str, Any] = {}
    for low, high, label in BUCKETS:
        ms = [m.ms for m in measured if low <= m.total < high]
        if ms:
            out[label] = {
                "queries": len(ms),
                "p50_ms": round(percentile(ms, 50), 1),
                "p95_ms": round(percentile(ms, 95), 1),
                "p99_ms": round(percentile(ms, 99), 1),
            }
    return out


def describe(query: SearchQuery) -> str:
    parts = [query.text]
    for name in ("stream", "product", "claim"):
        if getattr(query, name):
            parts.append(f"{name}={getattr(query, name)}")
    if query.since:
        parts.append(f"since={query.since:%Y-%m-%d}")
    if query.sort != "relevance":
        parts.append(f"sort={query.sort}")
    return " ".join(parts)


def warm(db: Path, index: EmbeddedSearchIndex, queries: dict[str, list[SearchQuery]]) -> None:
    with db.open("rb") as f:
        while f.read(1 << 24):
            pass
    for batch in queries.values():
        run_queries(index, batch)


# -- profiling -----------------------------------------------------------------------------
PARTS = {
    "count (SQL)": ("embedded.py", "_count"),
    "hits (all)": ("embedded.py", "_hits"),
    "json decode": ("json/__init__.py", "loads"),
    "highlight": ("query.py", "highlight"),
    "query pinyin": ("phonetic.py", "sound_tokens"),
}


def profile(index: EmbeddedSearchIndex, queries: dict[str, list[SearchQuery]]) -> dict[str, Any]:
    """Share of each part of EmbeddedSearchIndex.search, per kind of query (cProfile)."""
    out: dict[str, Any] = {}
    for kind, batch in queries.items():
        profiler = cProfile.Profile()
        profiler.enable()
        run_queries(index, batch)
        profiler.disable()
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        whole = sum(
            v[3] for k, v in stats.items() if k[0].endswith("embedded.py") and k[2] == "search"
        )
        parts = {}
        for label, (file, func) in PARTS.items():
            # cumulative time of the outermost calls only (highlight calls sound_tokens too)
            parts[label] = sum(
                v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] == func
            )
        parts["hits (SQL)"] = parts["hits (all)"] - parts["json decode"] - parts["highlight"]
        parts["other"] = whole - parts["count (SQL)"] - parts["hits (all)"]
        out[kind] = {
            "profiled_ms_per_query": round(whole / len(batch) * 1000, 1),
            **{k: f"{v / whole:.0%}" for k, v in parts.items() if k != "hits (all)"},
        }
    return out


# -- report --------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_before": os.getloadavg(),
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        "| kind | queries | p50 ms | p95 ms | p99 ms | max ms | hits/query p50 (mean) | zero-hit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, s in results["search"].items():
        lines.append(
            f"| {kind} | {s['queries']} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']}"
            f" | {s['max_ms']} | {s['total_hits_p50']:,} ({s['total_hits_mean']:,}) | {s['zero_hit_queries']} |"
        )
    lines += [
        "",
        "| hits per query (all kinds) | queries | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for label, b in results["by_hits"].items():
        lines.append(
            f"| {label} | {b['queries']} | {b['p50_ms']} | {b['p95_ms']} | {b['p99_ms']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument(
        "--db", type=Path, default=Path("/tmp/livewitness-search/utterances.sqlite3")
    )
    parser.add_argument("--reuse", action="store_true", help="keep an existing database")
    parser.add_argument("--batch", type=int, default=10_000, help="documents per transaction")
    parser.add_argument("--queries", type=int, default=300, help="queries per kind")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/out/search_bench.json"))
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    corpus = CorpusGenerator(args.utterances, args.streams, args.seed)
    if args.reuse and args.db.exists():
        results["index"] = None
    else:
        print(
            f"building {args.utterances:,} utterances over {args.streams} streams", file=sys.stderr
        )
        results["index"] = build(corpus, args.db, args.batch)
    results["db_bytes"] = db_size(args.db)

    index = EmbeddedSearchIndex(args.db)
    results["count"] = index.count()
    warm(args.db, index, make_queries(corpus, 30, args.seed + 1))
    queries = make_queries(corpus, args.queries, args.seed)
    results["search"] = {}
    everything: list[Measured] = []
    for kind in KINDS:
        measured = run_queries(index, queries[kind])
        everything += measured
        results["search"][kind] = summarise(measured)
        print(f"  {kind}: p95 {results['search'][kind]['p95_ms']} ms", file=sys.stderr, flush=True)
    results["by_hits"] = by_hits(everything)
    if args.profile:
        results["profile"] = profile(index, queries)
    index.close()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    built = results["index"]
    print(f"\n{results['count']:,} utterances, database {results['db_bytes'] / 2**20:,.0f} MiB")
    if built:
        print(
            f"generate {built['generate_per_s']:,}/s ({built['generate_s']} s), "
            f"index {built['index_per_s']:,}/s ({built['index_s']} s; first 10 % of batches "
            f"{built['index_per_s_first_10pct']:,}/s, last 10 % {built['index_per_s_last_10pct']:,}/s), "
            f"optimize {built['optimize_s']} s: {built['index_per_s_with_optimize']:,}/s in all"
        )
    print(table(results))
    if args.profile:
        for kind, parts in results["profile"].items():
            print(f"{kind}: {parts}")
    print(f"\n(details in {args.out})")


if __name__ == "__main__":
    main()
