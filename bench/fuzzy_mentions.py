"""Near-miss product names (one syllable with the right initial and another final:
面收/面烧 for 面霜, 手著 for 手镯): how many fuzzy mentions are false, by name length.

    .venv/bin/python bench/fuzzy_mentions.py --utterances 1000000 [--southern]
    .venv/bin/python bench/fuzzy_mentions.py --vocabulary banned --utterances 1000000

With ``--vocabulary banned`` the same is measured for the banned-word lexicon's terms
(compliance/matcher.py, fuzzy from ``fuzzy_mention_min_syllables`` syllables): of the
sentences holding a banned term, ``--rate`` have one syllable of it misheard; a fuzzy hit
is true when the sentence held that term before, false otherwise.

The synthetic sales talk of ``bench/search_corpus.py`` (its streams, product lists and
sentences), with one change: of the sentences that name one of their stream's products,
``--rate`` (default 8 %, the corpus's own homophone rate) have that name misheard in one
syllable's final, as Whisper does (a common character with the same initial and another
final, drawn from pypinyin's dictionary). Then, for every sentence and every product
of its stream that the sentence does not name exactly or as a sound-alike:

- a fuzzy mention is true when the sentence said that name before the near miss was made
  (the misheard product, or a longer name holding it: 修身羽绒服 when 羽绒服 was misheard);
- any other fuzzy mention is false (the corpus has no other near misses).

Prints, per product-name length in syllables, the misheard names, true and false fuzzy
mentions, precision, and recall (misheard names found as fuzzy mentions), as Markdown.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pypinyin import Style, lazy_pinyin, pinyin_dict

from bench.search_corpus import CorpusGenerator
from core.phonetic import SoundText, blur, sound_tokens, split_syllable
from core.text import fold


def characters_by_initial() -> dict[str, list[tuple[str, str]]]:
    """Common CJK characters (the basic block) with their blurred toneless syllable, by
    initial: the pool a near miss is drawn from."""
    pool: dict[str, list[tuple[str, str]]] = {}
    for code, readings in pinyin_dict.pinyin_dict.items():
        if not 0x4E00 <= code <= 0x9FA5 or "," in readings:
            continue  # one reading only: its syllable is certain
        char = chr(code)
        sound = blur(lazy_pinyin(char, style=Style.NORMAL)[0])
        initial, final = split_syllable(sound)
        if initial:
            pool.setdefault(initial, []).append((char, final))
    return pool


def near_miss(rng: random.Random, name: str, pool: dict[str, list[tuple[str, str]]]) -> str:
    """``name`` with one character swapped for one of the same initial, another final."""
    sounds = sound_tokens(name)
    if len(sounds) != len(name):
        return name  # digits or Latin inside: left alone
    for at in rng.sample(range(len(name)), len(name)):
        initial, final = split_syllable(sounds[at])
        others = [c for c, f in pool.get(initial, []) if f != final]
        if others:
            return name[:at] + rng.choice(others[:400]) + name[at + 1 :]
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.08)
    parser.add_argument("--southern", action="store_true")
    parser.add_argument("--shard", default="0/1", help="K/N: only every Nth stream from K.")
    parser.add_argument("--vocabulary", choices=("products", "banned"), default="products")
    parser.add_argument("--min-syllables", type=int, default=4, help="banned: fuzzy from")
    args = parser.parse_args()
    corpus = CorpusGenerator(utterances=args.utterances, streams=args.streams)
    pool = characters_by_initial()
    if args.vocabulary == "banned":
        measure_banned(args, corpus, pool)
        return
    true: Counter[int] = Counter()
    false: Counter[int] = Counter()
    misheard: Counter[int] = Counter()
    recalled: Counter[int] = Counter()  # misheard names found as fuzzy mentions
    examples: list[str] = []
    k, n = (int(x) for x in args.shard.split("/"))
    for plan in corpus.plans[k::n]:
        rng = random.Random(f"fuzzy:{plan.index}")
        names = [(p.name, sound_tokens(p.name)) for p in plan.products]
        for _ in range(plan.utterances):
            text = corpus.sentence(rng, plan)
            folded = original = fold(text)
            named = [(n, s) for n, s in names if fold(n) in folded]
            target = None
            if named and rng.random() < args.rate:
                target, _ = rng.choice(named)
                changed = near_miss(rng, target, pool)
                if changed == target:
                    target = None
                else:
                    text = text.replace(target, changed, 1)
                    folded = fold(text)
                    misheard[len(target)] += 1
            heard = SoundText.of(text)
            for name, sounds in names:
                if fold(name) in folded or heard.find(sounds) is not None:
                    continue
                if heard.find_fuzzy(sounds, args.southern) is None:
                    continue
                # True: the name was said, and the near miss just made is why it is
                # not found exactly (a longer name holding the misheard one counts too).
                if target is not None and fold(name) in original:
                    true[len(sounds)] += 1
                    recalled[len(sounds)] += name == target
                else:
                    false[len(sounds)] += 1
                    if len(examples) < 12:
                        examples.append(f"{name} in {text}")
    print(
        f"{args.utterances:,} utterances, near-miss rate {args.rate:.0%}, southern {args.southern}"
    )
    print_table(true, false, misheard, recalled, examples)


def print_table(
    true: Counter[int],
    false: Counter[int],
    misheard: Counter[int],
    recalled: Counter[int],
    examples: list[str],
) -> None:
    """Per length in syllables: near misses made, true and false fuzzy hits, precision,
    recall (Markdown), and some false hits."""
    print("| syllables | misheard | true | false | precision | recall |")
    print("|---|---|---|---|---|---|")
    for length in sorted(set(true) | set(false) | set(misheard)):
        t, f, m = true[length], false[length], misheard[length]
        precision = t / (t + f) if t + f else float("nan")
        recall = recalled[length] / m if m else float("nan")
        print(f"| {length} | {m:,} | {t:,} | {f:,} | {precision:.3f} | {recall:.3f} |")
    print("false, for example:")
    for line in examples:
        print(f"- {line}")


def measure_banned(
    args: argparse.Namespace, corpus: CorpusGenerator, pool: dict[str, list[tuple[str, str]]]
) -> None:
    from compliance.matcher import BannedWordMatcher, load_lexicon

    lexicon = load_lexicon()
    plain = BannedWordMatcher(lexicon)
    fuzzy = BannedWordMatcher(lexicon, args.min_syllables, args.southern)
    true: Counter[int] = Counter()
    false: Counter[int] = Counter()
    misheard: Counter[int] = Counter()
    recalled: Counter[int] = Counter()
    examples: list[str] = []
    k, n = (int(x) for x in args.shard.split("/"))
    for plan in corpus.plans[k::n]:
        rng = random.Random(f"fuzzy-banned:{plan.index}")
        for _ in range(plan.utterances):
            text = corpus.sentence(rng, plan)
            said = {h.term: h for h in plain.find(text)}
            target = None
            exact = [h for h in said.values() if h.match == "exact" and len(h.heard) >= 2]
            if exact and rng.random() < args.rate:
                hit = rng.choice(exact)
                changed = near_miss(rng, hit.heard, pool)
                if changed != hit.heard:
                    target = hit.term
                    text = text.replace(hit.heard, changed, 1)
                    misheard[len(sound_tokens(hit.term))] += 1
            for found in fuzzy.find(text):
                if found.match != "fuzzy":
                    continue
                length = len(sound_tokens(found.term))
                if found.term in said:
                    true[length] += 1
                    recalled[length] += found.term == target
                else:
                    false[length] += 1
                    if len(examples) < 12:
                        examples.append(f"{found.term} ({found.heard}) in {text}")
    print(f"banned terms: {args.utterances:,} utterances, near-miss rate {args.rate:.0%},"
          f" southern {args.southern}, fuzzy from {args.min_syllables} syllables")  # fmt: skip
    print_table(true, false, misheard, recalled, examples)


if __name__ == "__main__":
    main()
