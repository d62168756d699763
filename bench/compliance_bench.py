"""Banned-word matching throughput: MB of transcript text (UTF-8) per second on one core.

    .venv/bin/python -m bench.compliance_bench [--megabytes 2] [--terms 10000]

The lexicon is the shipped one plus generated plausible terms (超好用, 全网第一款, 顶级工艺,
特效修护 ...) up to ``--terms``, from a fixed seed. The text is sales talk from
bench.search_corpus's sentence templates, each sentence once, and ``fold``'s cache of texts
it has seen is emptied before each case: repeats would measure that cache, not the matcher.
Every figure is one utterance per ``find`` call, as the indexer calls it:

    heard=None          find() reads the syllables itself (per-character table)
    heard precomputed   find() gets syllables(text), as the indexer has them
    syllables() alone   pypinyin in context, what "heard precomputed" saves

Prints a table and then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable

from bench.search_corpus import CorpusGenerator, word_list
from compliance.matcher import (
    SEVERITIES,
    BannedWordMatcher,
    Lexicon,
    LexiconTerm,
    TermMatch,
    load_lexicon,
)
from core.phonetic import Syllable, syllables
from core.text import compact, fold

SEED = 20261121
PREFIXES = word_list(
    "最 超 第一 全网 顶级 极 特 全球 史上 独家 国家 专业 秘制 高端 纯 真 无敌 超级 终极 "
    "神级 至尊 王牌 官方 进口 原装 天然 速效 强效 全效 一秒 立刻 永久 绝对"
)
STEMS = word_list(
    "好 强 美 白 润 亮 嫩 滑 香 甜 软 暖 薄 轻 快 稳 真 纯 效果 品质 工艺 配方 技术 面料 "
    "口感 性价比 保湿 修护 补水 控油 遮瑕 持妆 显瘦 保暖 防水 耐磨 透气 降压 排毒 养颜 "
    "祛痘 淡纹 紧致 提亮 抗皱 去黄 护肝 助眠 减脂 增肌 瘦腿 丰盈 焕白 嫩肤 舒缓 镇静"
)
SUFFIXES = word_list("级 款 版 牌 价 效 神器 之王 品牌 好物 爆款 单品 配方 技术 体验 效果")
CATEGORIES = ("absolute", "efficacy", "medical", "false_price", "guarantee")


def bench_lexicon(terms: int, seed: int = SEED) -> Lexicon:
    """The shipped lexicon plus generated 2 to 6 character terms, deterministic."""
    shipped = load_lexicon()
    rng = random.Random(f"{seed}:lexicon")
    seen = {compact(f) for t in shipped.terms for f in (t.term, *t.aliases)}
    generated: list[LexiconTerm] = []
    while len(shipped.terms) + len(generated) < terms:
        parts = [rng.choice(PREFIXES), rng.choice(STEMS)]
        if rng.random() < 0.5:
            parts.append(rng.choice(SUFFIXES))
        term = "".join(parts)
        if not 2 <= len(term) <= 6 or term in seen:
            continue
        seen.add(term)
        generated.append(
            LexiconTerm(
                term=term,
                category=rng.choice(CATEGORIES),
                severity=rng.choice(SEVERITIES),
                source="AdLaw-9(3)",
                sound_alike=rng.random() < 0.8,
            )
        )
    return Lexicon(
        f"{shipped.version}+bench{terms}",
        shipped.terms + tuple(generated),
        shipped.whitelist,
        shipped.sources,
    )


def transcript(megabytes: float, seed: int = SEED) -> list[str]:
    """Distinct utterances of sales talk, at least ``megabytes`` of UTF-8 in all."""
    corpus = CorpusGenerator(utterances=2000, streams=200, seed=seed)
    rng = random.Random(f"{seed}:text")
    texts: dict[str, None] = {}
    size = 0
    while size < megabytes * 1_000_000:
        text = corpus.sentence(rng, rng.choice(corpus.plans))
        if text not in texts:
            texts[text] = None
            size += len(text.encode())
    return list(texts)


def measure(texts: list[str], size: int, run: Callable[[int, str], object]) -> dict[str, float]:
    cache_clear = getattr(fold, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()  # each case folds every text itself, as if it were new
    started = time.perf_counter()
    cpu = time.process_time()
    for i, text in enumerate(texts):
        run(i, text)
    wall = time.perf_counter() - started
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "mb_per_s": round(size / 1_000_000 / wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=2.0)
    parser.add_argument("--terms", type=int, default=10_000)
    args = parser.parse_args()

    started = time.perf_counter()
    lexicon = bench_lexicon(args.terms)
    matcher = BannedWordMatcher(lexicon)
    build_s = time.perf_counter() - started
    shipped = BannedWordMatcher(load_lexicon())
    texts = transcript(args.megabytes)
    size = sum(len(t.encode()) for t in texts)
    matcher.find(texts[0])  # pypinyin's and OpenCC's own lazy start-up, not per text

    results: dict[str, dict[str, float]] = {}
    found: list[list[TermMatch]] = []
    heard: list[list[Syllable]] = []
    again: list[list[TermMatch]] = []
    results["heard=None"] = measure(texts, size, lambda _, t: found.append(matcher.find(t)))
    results["heard=None, shipped lexicon"] = measure(texts, size, lambda _, t: shipped.find(t))
    results["syllables() alone"] = measure(texts, size, lambda _, t: heard.append(syllables(t)))
    results["heard precomputed"] = measure(
        texts, size, lambda i, t: again.append(matcher.find(t, heard[i]))
    )
    hits = sum(map(len, found))
    # Polyphones are read per character without heard, in context with it.
    differ = sum(a != b for a, b in zip(found, again, strict=True))

    print(
        f"{len(lexicon.terms)} terms (built in {build_s:.2f} s), {len(texts)} distinct "
        f"utterances, {size / 1e6:.2f} MB UTF-8, {hits} hits ({hits / len(texts):.2f} per "
        f"utterance; {differ} utterances found differently with heard), Python {platform.python_version()}, one core"
    )
    print(f"{'case':<30}{'seconds':>10}{'MB/s':>10}")
    for name, figures in results.items():
        print(f"{name:<30}{figures['seconds']:>10.2f}{figures['mb_per_s']:>10.2f}")
    print(
        json.dumps(
            {
                "bench": "compliance",
                "terms": len(lexicon.terms),
                "build_seconds": round(build_s, 3),
                "utterances": len(texts),
                "bytes": size,
                "hits": hits,
                "utterances_differing_with_heard": differ,
                "results": results,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
