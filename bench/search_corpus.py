"""A deterministic synthetic corpus of Mandarin livestream sales talk, as UtteranceDocs.

    from bench.search_corpus import CorpusGenerator
    corpus = CorpusGenerator(utterances=1_000_000, streams=1000, seed=20261121)
    for batch in corpus.batches(10_000): ...

Streams are named ``room-0001`` ... and each sells 6 to 14 products from a catalogue of
about 300 (羽绒服, 手镯, 面霜, 保温杯, 口红, 连衣裙, ...). Each stream starts on an evening
(Beijing time) between 2026-10-01 and 2026-11-19 and says its utterances one after another,
so start times increase; an utterance belongs to the 10 s segment its first word falls in,
and its words are one per character (a digit run or a Latin word is one word) with
plausible onsets. Sentences are drawn from templates that combine greetings, product
names, prices spoken as Chinese numerals or digits (九十九元 / 99元 / 九块九), promises and
claims (the phrases of ``indexer/claims.yaml``: 包邮, 假一赔十, 七天无理由退货, 买一送一, ...),
absolute advertising terms (全网最低价, 第一, 国家级, 最好), fillers (家人们, 宝宝们,
赶紧下单), and about 1 % English. A few percent of sentences carry an ASR-style homophone
(包油, 假一陪时, 手桌, 与荣福, 趋班) instead of the intended phrase.

Every stream is generated from its own seeded RNG (``seed:index``), so the corpus is the
same on every run and one stream can be regenerated alone (the benchmark does this to draw
queries without rebuilding the corpus).

Product and claim mentions are found by :func:`indexer.documents.find_mentions`, the
function the Indexer uses, on the utterance's :class:`core.phonetic.SoundText`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cn2an

from compliance.matcher import BannedWordMatcher, load_lexicon
from core.phonetic import SoundText
from core.text import search_form
from core.transcript import UtteranceWord
from indexer.claims import load_claim_types
from indexer.documents import UtteranceDoc, banned_json, find_mentions

SEGMENT_SECONDS = 10.0
FIRST_DAY = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 50

# -- vocabulary ----------------------------------------------------------------------------
# Word lists are written space-separated (see word_list) to keep them readable.


def word_list(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Per category: base product names, qualifiers that make variants, descriptions, prices.
CATEGORIES: dict[str, dict[str, tuple[str, ...]]] = {
    "clothing": {
        "base": word_list(
            "羽绒服 连衣裙 卫衣 牛仔裤 风衣 大衣 毛衣 羊绒衫 打底裤 衬衫 T恤 "
            "半身裙 西装 棉服 冲锋衣 运动裤 阔腿裤 针织衫 马甲 睡衣 保暖内衣 皮衣 "
            "旗袍 雪地靴 运动鞋 围巾 羊毛袜"
        ),
        "qualifier": word_list("长款 短款 加厚 轻薄 修身 宽松 女士 男士 儿童 情侣"),
        "desc": word_list(
            "面料特别舒服 上身特别显瘦 不起球不掉色 版型特别正 含绒量百分之九十 "
            "白鸭绒填充 冬天穿特别暖和 纯棉的，透气不闷 羊绒含量很高 走线特别工整 "
            "码数是标准的，按平时的尺码拍 一百六的个子穿中码刚好 袖口做了收紧设计"
        ),
        "price": word_list("59 79 99 129 139 199 259 299 399 499 599 899"),
    },
    "jewelry": {
        "base": word_list(
            "手镯 项链 耳环 戒指 手链 吊坠 金条 耳钉 脚链 发夹 胸针 转运珠 平安扣 "
            "玉镯 珍珠项链 银手镯 金手镯 翡翠吊坠"
        ),
        "qualifier": word_list("足金 纯银 和田玉 黄金 玫瑰金 天然 古法 小众"),
        "desc": word_list(
            "是纯银的，不过敏 足金的，有证书 戴上特别显白 送女朋友特别合适 "
            "每一件都有鉴定证书 做工特别精细 克重是足的 不掉色不氧化 "
            "内圈是光滑的，戴着不磨手 可以到任何一家检测机构去检测"
        ),
        "price": word_list("39 69 99 199 299 499 699 999 1299 2999"),
    },
    "beauty": {
        "base": word_list(
            "面霜 口红 精华液 面膜 粉底液 眼霜 防晒霜 洗面奶 爽肤水 香水 眉笔 "
            "卸妆水 气垫 唇釉 身体乳 护手霜 洗发水 精华油 睫毛膏 散粉 遮瑕膏 乳液 "
            "冻干粉 安瓶"
        ),
        "qualifier": word_list("美白 补水 保湿 控油 修护 大牌 小样 敏感肌"),
        "desc": word_list(
            "补水保湿效果特别好 用完皮肤特别细腻 敏感肌也能用 一个月就能看到效果 "
            "美白祛斑一步到位 抗衰老去皱纹 质地很清爽，不油腻 成分表给大家看一下 "
            "孕妇也可以用 持妆一整天不脱妆 薄涂厚涂都好看 黄皮也能驾驭"
        ),
        "price": word_list("29 49 69 99 129 159 199 299 399 599"),
    },
    "home": {
        "base": word_list(
            "保温杯 空气炸锅 电饭煲 四件套 枕头 拖把 保鲜盒 不粘锅 菜刀 收纳箱 毛巾 "
            "电热毯 加湿器 吸尘器 扫地机器人 榨汁机 电水壶 晾衣架 乳胶枕 蚕丝被 "
            "洗衣凝珠 垃圾袋 餐具套装 电动牙刷"
        ),
        "qualifier": word_list("家用 大容量 304不锈钢 加厚 便携 智能 迷你 全自动"),
        "desc": word_list(
            "保温十二个小时 质量特别好，用好多年都不坏 厨房必备 一键操作，老人也会用 "
            "三百零四不锈钢的内胆 清洗特别方便 静音设计，晚上开着也不吵 容量特别大 "
            "家里有小孩的一定要备一个 耗电特别少"
        ),
        "price": word_list("9.9 19.9 29 39 59 99 129 199 299 499"),
    },
    "food": {
        "base": word_list(
            "坚果 牛肉干 茶叶 蜂蜜 燕窝 螺蛳粉 大米 阿胶糕 红枣 枸杞 普洱茶 咖啡 "
            "麦片 牛奶 酸奶 鸡爪 辣条 月饼 海参 车厘子 橙子 腊肠 粽子 奶粉"
        ),
        "qualifier": word_list("原味 无糖 有机 新疆 云南 东北 手工 进口"),
        "desc": word_list(
            "原产地直发 没有添加剂 小孩老人都能吃 口感特别好 每一颗都是精挑细选的 "
            "当季新鲜的 一箱有五斤 冷链发货，坏果包赔 保质期十二个月 开袋即食"
        ),
        "price": word_list("9.9 19.9 29.9 39 49 59 69 99 128 199"),
    },
}

ALIASES: dict[str, tuple[str, ...]] = {
    "羽绒服": ("羽绒外套",),
    "保温杯": ("水杯",),
    "口红": ("唇膏",),
    "手镯": ("镯子",),
    "四件套": ("床上四件套",),
    "空气炸锅": ("炸锅",),
    "面霜": ("霜",),  # one syllable: found exactly only
    "T恤": ("短袖",),
    "螺蛳粉": ("柳州螺蛳粉",),
}
GREETINGS = word_list(
    "家人们 宝宝们 姐妹们 哥哥姐姐们 直播间的家人们 新进来的宝宝们 兄弟们 老铁们 亲们 "
    "所有的宝宝们 直播间的姐妹们"
)
FILLERS = word_list(
    "赶紧下单 赶紧拍 抓紧时间 手慢无 三二一上链接 库存不多了 拍下就发 不要犹豫 冲冲冲 "
    "先拍先得 点点关注不迷路 拼手速了 闭眼入 直接拍"
)
ABSOLUTES = word_list("第一 国家级 最好 顶级 最佳 万能 销量第一 行业第一 独家 最高级 世界级")
PRICE_ABSOLUTES = word_list("全网最低价 史上最低价 最便宜 全网最低 独一份 最低价")
ENGLISH_PRODUCTS = (
    "down jacket", "lipstick", "bracelet", "face cream", "thermos cup", "dress", "necklace",
)  # fmt: skip
# (intended phrase, how an ASR may write it): the same toneless, blurred syllables.
HOMOPHONES: tuple[tuple[str, str], ...] = (
    ("包邮", "包油"),
    ("假一赔十", "假一陪时"),
    ("羽绒服", "与荣福"),
    ("手镯", "手桌"),
    ("祛斑", "趋班"),
    ("口红", "口洪"),
    ("面霜", "面双"),
    ("保温杯", "保温被"),
    ("秒杀", "秒沙"),
    ("无理由", "无里由"),
    ("连衣裙", "连一裙"),
    ("最低价", "最低家"),
    ("正品", "正聘"),
    ("美白", "美百"),
    ("赠送", "增送"),
    ("现货", "线货"),
    ("链接", "连接"),
    ("宝宝们", "宝宝门"),
)
NOISE_RATE = 0.08  # of the sentences that hold an intended phrase: about 3 % of all

# Claims spoken as whole promises (most phrases come from claims.yaml; some lines join two).
CLAIM_LINES = word_list(
    "全国包邮 包邮到家 顺丰包邮 免运费 假一赔十 假一赔三 官方正品 专柜正品 品牌授权 "
    "保真 七天无理由退货 七天无理由 还送运费险 退货包运费 包退包换 当天发货 今天发货 "
    "二十四小时发货 四十八小时发货 现货秒发 马上发货 次日达 买一送一 买二送一 加赠一个 "
    "免费送 拍下再赠送小样 抽奖送免单 到手价 秒杀价 直接减五十 优惠券领一下 今天打折 "
    "折扣力度最大的一次"
)
EFFICACY = word_list("祛斑 美白 祛痘 抗衰老 去皱 防脱 生发 减肥 瘦身")
TEMPLATES = (
    "{g}，{p}{price}，{claim}！",
    "{g}，今天这款{p}只要{price}",
    "这款{p}原价{orig}，今天直播间{price}",
    "{p}{desc}",
    "我们家的{p}{desc}，{claim}",
    "{link}{p}，{price}，{f}",
    "{claim}，{claim2}，{f}",
    "{g}{f}",
    "这个价格是{low}，{f}",
    "{low}，{p}只要{price}",
    "{abs}的品质，{p}只要{price}",
    "{g}听我说，{p}{desc}",
    "没有抢到的{g}不要着急，马上给大家加库存",
    "还有最后{stock}单，{f}",
    "喜欢主播的{g}点个关注，每天晚上八点准时开播",
    "来，{g}，我们看下一款{p}",
    "有问题的{g}可以在评论区问我",
    "{g}，{p}是{abs}的，{claim}",
    "今天拍下{p}{claim}",
    "这个颜色特别好看，{g}可以{f}",
    "你们看这个质感，{desc}",
    "主播自己家里也在用，{desc}",
    "拍一发二，{f}",
    "{g}扣一，扣一的宝宝我给你们上链接",
    "好，{link}已经上了，{f}",
    "小助理把{p}的库存再加{stock}单",
    "{p}{price}{claim}{claim2}",
    "这一款{p}在我们直播间卖了十万单了",
    "{g}，{p}{claim}，{claim2}，放心拍",
    "刚进来的{g}先点个关注",
    "欢迎{g}来到直播间",
    "{p}和{p2}一起拍更划算",
    "{g}，{p}今天{price}，明天就恢复原价{orig}了",
    "谢谢{g}的支持，{f}",
    "已经拍到的{g}扣个已拍",
    "{p}，{claim}，{abs}，{f}",
    "这个价格真的是亏本在卖，{g}{f}",
)
CATEGORY_TEMPLATES: dict[str, tuple[str, ...]] = {
    "clothing": (
        "{p}给大家上身看一下效果",
        "模特身高一米六八，穿的是M码",
        "{p}的{effect}效果是{abs}的",
    ),
    "jewelry": ("{p}给大家上手看一下效果", "{p}戴上特别有气质，{claim}"),
    "beauty": ("{p}的{effect}效果是{abs}的", "{p}我给大家试一下色", "用了{p}{effect}，{claim}"),
    "home": ("{p}给大家演示一下怎么用", "{p}一家人都能用"),
    "food": ("{p}我现场给大家尝一下", "{p}拆开给大家看一下，{desc}"),
}
EFFECTS = {"clothing": ("保暖", "显瘦"), "beauty": EFFICACY}
ENGLISH_TEMPLATES = (
    "this {e} is only {d} yuan today",
    "free shipping and seven day returns",
    "buy one get one free, only today",
    "genuine product, money back if fake",
    "the {e} ships today, free shipping",
)
_TOKEN = re.compile(r" ?[A-Za-z][A-Za-z'-]*[^\w\s]*| ?\d+(?:\.\d+)?[^\w\s]*|\w[^\w\s]*|\W+")


# -- the corpus ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticProduct:
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreamPlan:
    index: int  # 0-based
    name: str
    category: str
    starts_at: datetime
    utterances: int
    products: tuple[SyntheticProduct, ...]


def catalogue(seed: int = 20261121) -> dict[str, list[SyntheticProduct]]:
    """About 300 product names in all: each base name, and on average 1.8 qualified
    variants of it (长款羽绒服, 足金手镯, 美白面霜)."""
    rng = random.Random(f"{seed}:catalogue")
    out: dict[str, list[SyntheticProduct]] = {}
    for category, vocab in CATEGORIES.items():
        products = [SyntheticProduct(b, ALIASES.get(b, ())) for b in vocab["base"]]
        for base in vocab["base"]:
            for qualifier in rng.sample(vocab["qualifier"], 3):
                if rng.random() < 0.6:
                    products.append(SyntheticProduct(qualifier + base))
        out[category] = products
    return out


def spoken_price(rng: random.Random, price: str) -> str:
    """A price as a streamer says it and Whisper writes it: 九十九元, 99元, 九块九, 99块."""
    if "." in price:
        whole, tenth = price.split(".")
        if rng.random() < 0.5:
            return f"{cn2an.an2cn(whole)}块{cn2an.an2cn(tenth)}"
        return price + rng.choice(("元", "块"))
    number = cn2an.an2cn(price) if rng.random() < 0.5 else price
    return number + rng.choice(("元", "块", "块钱", "元"))


def spoken_number(rng: random.Random, number: int) -> str:
    return str(cn2an.an2cn(number)) if rng.random() < 0.6 else str(number)


class CorpusGenerator:
    def __init__(self, utterances: int = 1_000_000, streams: int = 1000, seed: int = 20261121):
        if streams < 1 or utterances < streams:
            raise ValueError("need at least one stream and one utterance per stream")
        self.utterances = utterances
        self.seed = seed
        self.catalogue = catalogue(seed)
        self.claim_phrases = [(c.name, p) for c in load_claim_types() for p in c.phrases]
        self.banned_words = BannedWordMatcher(load_lexicon())  # as the Indexer finds them
        self.plans = [self._plan(i, streams) for i in range(streams)]

    def _plan(self, index: int, streams: int) -> StreamPlan:
        rng = random.Random(f"{self.seed}:plan:{index}")
        category = rng.choice(sorted(self.catalogue))
        own = rng.sample(self.catalogue[category], rng.randint(5, 12))
        other = rng.choice(sorted(set(self.catalogue) - {category}))
        extra = rng.sample(self.catalogue[other], rng.randint(1, 2))
        day = FIRST_DAY + timedelta(days=index * DAYS // streams)
        starts_at = day + timedelta(hours=11, seconds=rng.randint(0, 3 * 3600))  # 19-22h CST
        share = self.utterances // streams + (1 if index < self.utterances % streams else 0)
        return StreamPlan(
            index, f"room-{index + 1:04d}", category, starts_at, share, tuple(own + extra)
        )

    @property
    def products(self) -> list[str]:
        return sorted({p.name for plan in self.plans for p in plan.products})

    @property
    def time_span(self) -> tuple[datetime, datetime]:
        return self.plans[0].starts_at, self.plans[-1].starts_at + timedelta(hours=2)

    # -- sentences -------------------------------------------------------------------------
    def sentence(self, rng: random.Random, plan: StreamPlan) -> str:
        if rng.random() < 0.01:
            text = rng.choice(ENGLISH_TEMPLATES)
            return text.format(e=rng.choice(ENGLISH_PRODUCTS), d=rng.choice(("99", "199", "59")))
        vocab = CATEGORIES[plan.category]
        own = CATEGORY_TEMPLATES[plan.category]
        template = rng.choice(own) if rng.random() < 0.08 else rng.choice(TEMPLATES)
        product, product2 = rng.sample(plan.products, 2)
        name = product.name
        if product.aliases and rng.random() < 0.2:
            name = rng.choice(product.aliases)
        price = rng.choice(vocab["price"])
        orig = str((int(float(price) * rng.choice((2, 3, 5))) // 10 + 1) * 10 - 1)
        claims = rng.sample(CLAIM_LINES, 2)
        number = rng.randint(1, 60)
        text = template.format(
            g=rng.choice(GREETINGS),
            f=rng.choice(FILLERS),
            p=name,
            p2=product2.name,
            price=spoken_price(rng, price),
            orig=spoken_price(rng, orig),
            claim=claims[0],
            claim2=claims[1],
            abs=rng.choice(ABSOLUTES),
            low=rng.choice(PRICE_ABSOLUTES),
            desc=rng.choice(vocab["desc"]),
            link=f"{spoken_number(rng, number)}号链接",
            stock=spoken_number(rng, rng.choice((3, 5, 10, 20, 30, 50, 100, 200))),
            effect=rng.choice(EFFECTS.get(plan.category, ("",))),
        )
        if rng.random() < NOISE_RATE:
            for intended, misheard in rng.sample(HOMOPHONES, len(HOMOPHONES)):
                if intended in text:
                    return text.replace(intended, misheard, 1)
        return text

    # -- documents -------------------------------------------------------------------------
    def stream_docs(self, plan: StreamPlan) -> Iterator[UtteranceDoc]:
        rng = random.Random(f"{self.seed}:stream:{plan.index}")
        phrases = self.product_phrases(plan)
        claims = self.claim_phrases
        base_ms = int(plan.starts_at.timestamp() * 1000)
        clock = _Clock(base_ms)
        cursor = rng.uniform(1.0, 5.0)  # seconds from stream start
        segment, number = -1, 0
        for _ in range(plan.utterances):
            text = self.sentence(rng, plan)
            words: list[UtteranceWord] = []
            at = cursor
            for token in _TOKEN.findall(text):
                length = sum(1 for c in token if not c.isspace() and c.isalnum())
                duration = max(0.12, rng.uniform(0.17, 0.3) * max(1, min(length, 3)))
                start_ms, end_ms = round(at * 1000), round((at + duration * 0.9) * 1000)
                words.append(
                    UtteranceWord(
                        text=token,
                        start=clock.iso(start_ms),
                        end=clock.iso(end_ms),
                        offset=start_ms / 1000,
                        end_offset=end_ms / 1000,
                        probability=round(rng.uniform(0.55, 0.99), 3),
                    )
                )
                at += duration
            seg = int(cursor // SEGMENT_SECONDS)
            segment, number = (seg, number + 1) if seg == segment else (seg, 0)
            doc = UtteranceDoc(
                id=f"{plan.name}:{segment:08d}:{number:03d}",
                stream=plan.name,
                streamer=None,  # as the Indexer builds them (utterance_docs without a streamer)
                segment=segment,
                number=number,
                text=text,
                start=words[0].start,
                offset=words[0].offset,
                end_offset=words[-1].end_offset,
                words=words,
                search=search_form(text),  # as the transcriber writes it into the transcript
            )
            heard = doc.heard = SoundText.of(text)  # as utterance_docs does
            doc.products = find_mentions(doc, heard, phrases)
            doc.claims = find_mentions(doc, heard, claims)
            doc.banned = [banned_json(doc, hit) for hit in self.banned_words.find(text, heard)]
            yield doc
            cursor = at + rng.uniform(0.3, 2.0)

    def docs(self) -> Iterator[UtteranceDoc]:
        for plan in self.plans:
            yield from self.stream_docs(plan)

    def batches(self, size: int) -> Iterator[list[UtteranceDoc]]:
        batch: list[UtteranceDoc] = []
        for doc in self.docs():
            batch.append(doc)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def product_phrases(self, plan: StreamPlan) -> list[tuple[str, str]]:
        """As :func:`indexer.documents.product_phrases` makes them from catalog rows."""
        return [(p.name, a) for p in plan.products for a in (p.name, *p.aliases)]


class _Clock:
    """ISO 8601 UTC with milliseconds and a Z (as core.timeutil.iso writes), fast."""

    def __init__(self, base_ms: int) -> None:
        self.base_ms = base_ms
        self._seconds: dict[int, str] = {}

    def iso(self, offset_ms: int) -> str:
        seconds, ms = divmod(self.base_ms + offset_ms, 1000)
        prefix = self._seconds.get(seconds)
        if prefix is None:
            prefix = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._seconds[seconds] = prefix
        return f"{prefix}.{ms:03d}Z"
