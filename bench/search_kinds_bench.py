"""Search latency with chat and on-screen text beside the speech (issue 16).

    .venv/bin/python bench/search_kinds_bench.py --utterances 1000000 --chat-ratio 1.0 \
        --screen-ratio 0.1 --db /tmp/lw-search/kinds.sqlite3

Builds the speech corpus of ``bench/search_corpus.py`` and, per stream, chat messages
(``--chat-ratio`` per utterance; busy rooms write more than the host says) and on-screen
text lines (``--screen-ratio``: stickers and banners change far less often), spread over
the stream's time, as documents of their kind built by the Indexer's own builder
(:func:`indexer.timeline_docs.text_doc`: mentions, claims, banned terms). Then runs the
query mix of ``bench/search_bench.py`` unfiltered and with each ``kind`` filter (speech:
the "not another kind" exclusion; chat, screen: a kind token), and prints p50/p95/p99.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_bench import (
    KINDS,
    db_size,
    machine,
    make_queries,
    remove_db,
    run_queries,
    summarise,
    warm,
)
from bench.search_corpus import CorpusGenerator, StreamPlan
from indexer.documents import UtteranceDoc
from indexer.embedded import EmbeddedSearchIndex
from indexer.protocol import DocKind
from indexer.timeline_docs import text_doc
from storage.models import Product

CHAT = (
    "{p}还有吗", "{p}包邮吗", "{p}多少钱", "主播{p}有没有优惠", "已拍{p}", "{p}什么时候发货",
    "想要{p}", "{p}是正品吗", "主播好", "来了来了", "支持主播", "求链接", "七天无理由吗",
    "假一赔十是真的吗", "已下单", "{p}能便宜点吗", "666", "好看", "刚拍了两件", "怎么退货",
    "{p}有优惠券吗", "第一次来直播间", "主播说的最低价是真的吗", "{p}尺码偏大吗",
)  # fmt: skip
SCREEN = (
    "到手价¥{n}", "{p} 限时秒杀", "假一赔十", "全国包邮", "七天无理由退货", "关注主播领券",
    "{p} 券后{n}元", "全网最低价", "{p} 直播间专享", "拍一发二",
)  # fmt: skip
SECONDS_PER_UTTERANCE = 3.5  # about what the corpus's streams take per utterance


def stream_extras(
    plan: StreamPlan, chat_ratio: float, screen_ratio: float, seed: int
) -> Iterator[UtteranceDoc]:
    rng = random.Random(f"{seed}:extras:{plan.index}")
    products = [Product(name=p.name, aliases=json.dumps(list(p.aliases))) for p in plan.products]
    span = plan.utterances * SECONDS_PER_UTTERANCE
    kinds: list[tuple[DocKind, int]] = [
        ("chat", round(plan.utterances * chat_ratio)),
        ("screen", round(plan.utterances * screen_ratio)),
    ]
    for kind, count in kinds:
        for n in range(count):
            offset = round(rng.uniform(0, span), 3)
            product = rng.choice(plan.products).name
            price = rng.choice((9.9, 19.9, 29, 59, 99, 129, 199, 299))
            template = rng.choice(CHAT if kind == "chat" else SCREEN)
            text = template.format(p=product, n=f"{price:g}")
            at: datetime = plan.starts_at + timedelta(seconds=offset)
            end = offset if kind == "chat" else offset + rng.uniform(5, 60)
            yield text_doc(
                kind,
                f"{plan.name}:{kind}:{n:07d}",
                plan.name,
                None,
                -1 if kind == "chat" else int(offset // 10),
                text,
                at,
                offset,
                end,
                {},
                products,
            )


def build(
    corpus: CorpusGenerator, db: Path, chat_ratio: float, screen_ratio: float, seed: int
) -> dict[str, Any]:
    remove_db(db)
    index = EmbeddedSearchIndex(db)
    counts = {"speech": 0, "chat": 0, "screen": 0}
    began = time.perf_counter()
    indexing = 0.0
    for plan in corpus.plans:
        docs = list(corpus.stream_docs(plan)) + list(
            stream_extras(plan, chat_ratio, screen_ratio, seed)
        )
        for doc in docs:
            counts[doc.kind] += 1
        t0 = time.perf_counter()
        index.bulk_load(docs)
        indexing += time.perf_counter() - t0
        if plan.index % 50 == 49:
            print(f"  {plan.index + 1} streams {counts}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    index.optimize()
    optimizing = time.perf_counter() - t0
    index.close()
    return {
        **counts,
        "documents": sum(counts.values()),
        "index_s": round(indexing, 1),
        "optimize_s": round(optimizing, 1),
        "wall_s": round(time.perf_counter() - began, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--chat-ratio", type=float, default=1.0)
    parser.add_argument("--screen-ratio", type=float, default=0.1)
    parser.add_argument("--db", type=Path, default=Path("/tmp/lw-search/kinds.sqlite3"))
    parser.add_argument("--reuse", action="store_true", help="keep an existing database")
    parser.add_argument("--queries", type=int, default=200, help="queries per kind")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--out", type=Path, default=Path("bench/out/search_kinds_bench.json"))
    args = parser.parse_args()

    corpus = CorpusGenerator(args.utterances, args.streams, args.seed)
    results: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    args.db.parent.mkdir(parents=True, exist_ok=True)
    if args.reuse and args.db.exists():
        results["index"] = None
    else:
        results["index"] = build(corpus, args.db, args.chat_ratio, args.screen_ratio, args.seed)
    results["db_bytes"] = db_size(args.db)
    index = EmbeddedSearchIndex(args.db)
    results["count"] = index.count()
    warm(args.db, index, make_queries(corpus, 20, args.seed + 1))
    queries = make_queries(corpus, args.queries, args.seed)
    results["search"] = {}
    lines = [
        "| queries | kind filter | n | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for filter_kind in (None, "speech", "chat", "screen"):
        for kind in KINDS:
            batch = [replace(q, kind=filter_kind) for q in queries[kind]]
            summary = summarise(run_queries(index, batch))
            results["search"][f"{kind} / {filter_kind or 'any'}"] = summary
            lines.append(
                f"| {kind} | {filter_kind or 'any'} | {summary['queries']} | {summary['p50_ms']}"
                f" | {summary['p95_ms']} | {summary['p99_ms']} | {summary['max_ms']} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    index.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    print(f"\n{results['count']:,} documents, database {results['db_bytes'] / 2**20:,.0f} MiB")
    if results["index"]:
        print(json.dumps(results["index"]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
