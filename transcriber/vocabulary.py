"""Per-stream vocabulary handed to the decoder: product names and claim phrases.

Whisper is steered by an initial prompt: text it believes came just before the audio.
Written in Simplified Chinese, it also nudges the output to Simplified characters. Only
product names go in: a long list of claim phrases sent base into repetition loops.
Even product names alone made base worse on our fixtures (higher error rate, product
names written where none was said), so ``whisper_vocabulary`` is off by default and is
meant for larger models (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from storage.models import Product
from transcriber.protocol import DecodeOptions

PROMPT_ITEMS = 40  # Whisper reads at most ~220 prompt tokens


def product_terms(products: Sequence[Product]) -> list[str]:
    terms: list[str] = []
    for product in products:
        terms.append(product.name)
        terms.extend(json.loads(product.aliases or "[]"))
    return list(dict.fromkeys(t for t in terms if t))[:PROMPT_ITEMS]


def decode_options(
    language: str | None, products: Sequence[Product], use_vocabulary: bool = True
) -> DecodeOptions:
    if not use_vocabulary:
        return DecodeOptions(language=language)
    items = product_terms(products)
    if language in (None, "zh"):
        prompt = "以下是普通话直播带货的简体中文记录。"
        if items:
            prompt += "商品：" + "、".join(items) + "。"
    else:
        prompt = "Livestream sales talk." + (
            " Products: " + ", ".join(items) + "." if items else ""
        )
    hotwords = " ".join(items) or None
    return DecodeOptions(language=language, prompt=prompt, hotwords=hotwords)
