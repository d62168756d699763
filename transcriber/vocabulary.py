"""Per-stream vocabulary handed to the decoder: product names and claim phrases.

Whisper is steered by an initial prompt: text it believes came just before the audio.
Written in Simplified Chinese, it also nudges the output to Simplified characters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from indexer.claims import load_claim_types
from storage.models import Product
from transcriber.protocol import DecodeOptions

PROMPT_CLAIMS = 24  # Whisper reads at most ~220 prompt tokens; keep the best-known phrases


def product_terms(products: Sequence[Product]) -> list[str]:
    terms: list[str] = []
    for product in products:
        terms.append(product.name)
        terms.extend(json.loads(product.aliases or "[]"))
    return list(dict.fromkeys(t for t in terms if t))


def claim_terms() -> list[str]:
    phrases = [p for claim in load_claim_types() for p in claim.phrases if len(p) >= 2]
    chinese = [p for p in phrases if not p.isascii()]
    return list(dict.fromkeys(chinese))[:PROMPT_CLAIMS]


def decode_options(
    language: str | None, products: Sequence[Product], use_vocabulary: bool = True
) -> DecodeOptions:
    if not use_vocabulary:
        return DecodeOptions(language=language)
    items = product_terms(products)
    claims = claim_terms()
    if language in (None, "zh"):
        prompt = "以下是普通话直播带货的简体中文记录。"
        if items:
            prompt += "商品：" + "、".join(items) + "。"
        prompt += "常用语：" + "、".join(claims) + "。"
    else:
        prompt = "Livestream sales talk." + (
            " Products: " + ", ".join(items) + "." if items else ""
        )
    hotwords = " ".join(items) or None
    return DecodeOptions(language=language, prompt=prompt, hotwords=hotwords)
