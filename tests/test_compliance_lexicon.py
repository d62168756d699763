"""Banned advertising terms: the shipped lexicon on livestream sales talk, user lexicons,
and the errors a broken lexicon file gives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from compliance.matcher import (
    LEXICON_FILE,
    SEVERITIES,
    BannedWordMatcher,
    Lexicon,
    TermMatch,
    load_lexicon,
)
from core.errors import ConfigError
from core.phonetic import Syllable, syllables
from core.text import fold

E, S = "exact", "sound-alike"

# (what the streamer's words were transcribed as, the (term, match) hits in order)
SALES_TALK: list[tuple[str, list[tuple[str, str]]]] = [
    # -- absolute terms, spelled out
    ("家人们，这款面霜是国家级的配方", [("国家级", E)]),
    ("我们家的羽绒服用的是最高级的白鸭绒", [("最高级", E)]),
    ("这个口红是今年秋冬最佳的选择", [("最佳", E)]),
    ("这款粉底液是我用过最好的一款", [("最好", E)]),
    ("这个颜色上嘴真的最好看", [("最好", E)]),
    ("我们家是行业第一，放心拍", [("行业第一", E)]),
    ("这是第一品牌的保温杯，质量特别好", [("第一品牌", E)]),
    ("销量全国第一的空气炸锅，一键操作", [("全国第一", E)]),
    ("这款手镯是唯一一款有鉴定证书的", [("唯一", E)]),
    ("顶级的工艺，顶级的面料", [("顶级", E), ("顶级", E)]),
    ("我们家的蜂蜜是极品，原产地直发", [("极品", E)]),
    ("万能的清洁膏，厨房卫生间都能擦", [("万能", E)]),
    ("这个效果是绝对的，你们放心拍", [("绝对", E)]),
    ("送女朋友首选这款，闭眼入", [("首选", E)]),
    ("全球首发的新款气垫，今天直播间开卖", [("全球首发", E)]),
    ("销量冠军，这一款卖了十万单了", [("销量冠军", E)]),
    ("独一无二的设计，戴上特别有气质", [("独一无二", E)]),
    ("这个颜色是我们独家定制的", [("独家", E)]),
    ("这个颜色是今年最受欢迎的", [("最受欢迎", E)]),
    ("世界级的工艺，做工特别精细", [("世界级", E)]),
    ("全网第一的好评率，宝宝们放心", [("全网第一", E)]),
    ("我们的技术是遥遥领先的", [("遥遥领先", E)]),
    ("这是我们家最强的一款吸尘器", [("最强", E)]),
    ("姐妹们，这是最时尚的颜色", [("最时尚", E)]),
    ("国家级最佳品质", [("国家级", E), ("最佳", E)]),
    ("全网最低，全网第一", [("全网最低", E), ("全网第一", E)]),
    # -- false price claims: the longest term at a place
    ("这个价格是全网最低价，拍下就发", [("全网最低价", E)]),
    ("史上最低价，只要九十九元", [("史上最低价", E)]),
    ("今天直播间最低价，错过就没有了", [("最低价", E)]),
    ("价格最低，品质最好", [("最低价", E), ("最好", E)]),
    ("这个价格真的是跳楼价了，家人们", [("跳楼价", E)]),
    ("亏本价给大家，只有今天晚上", [("亏本价", E)]),
    ("我们是工厂直供，出厂价给到大家", [("出厂价", E)]),
    ("最便宜的一次，赶紧拍", [("最便宜", E)]),
    ("全网最便宜，没有比这更低的了", [("全网最便宜", E)]),
    ("这是地板价了，再也没有这么低了", [("地板价", E)]),
    ("这个价格是政府定价的，不能再低了", [("政府定价", E)]),
    # -- medical and efficacy claims
    ("这个面霜可以治疗痘痘", [("治疗", E)]),
    ("坚持用三个月可以根治湿疹", [("根治", E), ("湿疹", E)]),
    ("这个茶叶能降血压，老人喝特别合适", [("降血压", E)]),
    ("纯天然的，没有任何副作用", [("无副作用", E)]),
    ("用了以后立即见效", [("立即见效", E)]),
    ("三天见效，无效退款", [("天见效", E), ("无效退款", E)]),
    ("这个减肥茶喝了永不反弹", [("减肥", E), ("永不反弹", E)]),
    ("这款精华一洗白，特别神奇", [("一洗白", E)]),
    ("祛斑效果特别好，一个月就能看到", [("祛斑", E)]),
    ("这个面膜美白祛斑一步到位", [("美白", E), ("祛斑", E)]),
    ("这个面霜是药妆，还可以消炎", [("药妆", E), ("消炎", E)]),
    ("胶原蛋白可以让细胞再生", [("细胞再生", E)]),
    ("抗衰老去皱纹，一瓶搞定", [("抗衰老", E), ("去皱", E)]),
    ("每天喝一杯可以提高免疫力", [("提高免疫力", E)]),
    ("这个洗衣凝珠还能杀菌", [("杀菌", E)]),
    ("孕妇用了也不会长妊娠纹", [("妊娠纹", E)]),
    ("这是祖传秘方做的阿胶糕", [("祖传秘方", E)]),
    ("这款洗发水防脱发效果特别好", [("防脱", E)]),
    ("喝了能改善睡眠，晚上睡得特别香", [("改善睡眠", E)]),
    # -- guarantees, endorsements, superstition
    ("百分之百有效，不满意包退", [("100%有效", E)]),
    ("效果100%保证，你们放心", [("100%", E)]),
    ("零风险，稳赚不赔", [("零风险", E), ("稳赚", E)]),
    ("这款手串是大师开光的，可以辟邪", [("开光", E), ("辟邪", E)]),
    ("国家领导人推荐的茶叶", [("国家领导人推荐", E)]),
    ("医生推荐的护肤品，临床验证过的", [("医生推荐", E), ("临床验证", E)]),
    ("这是驰名商标，大牌子放心买", [("驰名商标", E)]),
    ("中南海特供的白酒，今天只要一百九十九", [("中南海特供", E)]),
    ("这个摆件招财进宝，放在家里", [("招财进宝", E)]),
    ("戴上这个转运，一整年都顺", [("转运", E)]),
    # -- Traditional characters, full width, symbols between characters
    ("這款面霜是國家級的配方", [("国家级", E)]),
    ("我們家是銷量第一", [("销量第一", E)]),
    ("全網最低價，只有今天", [("全网最低价", E)]),
    ("這款能根治濕疹", [("根治", E), ("湿疹", E)]),
    ("國.家.級的品質", [("国家级", E)]),
    ("国 家 级 的工艺", [("国家级", E)]),
    ("国*家*级配方", [("国家级", E)]),
    ("第-一-品-牌的保温杯", [("第一品牌", E)]),
    ("最/佳/选择", [("最佳", E)]),
    ("治～疗痘痘", [("治疗", E)]),
    ("ＮＯ．１的品牌", [("no.1", E)]),
    ("这款是销量第1的", [("销量第一", S)]),  # 1 is read out as 一
    ("我们家是第1，放心拍", [("第一", E)]),
    ("第1次来的宝宝扣个1", []),
    ("效果１００％有效", [("100%有效", E)]),
    # -- homophones Whisper writes
    ("这是国家极的品质", [("国家级", S)]),
    ("国家及的工艺，大家放心", [("国家级", S)]),
    ("这个精华趋斑效果特别好", [("祛斑", S)]),
    ("美白祛班一步到位", [("美白", E), ("祛斑", S)]),
    ("这个价格是全网最低家，拍下就发", [("全网最低价", S)]),
    ("史上最低家，先拍先得", [("史上最低价", S)]),
    ("世界及的品质", [("世界级", S)]),
    ("最高极的面料，摸着特别舒服", [("最高级", S)]),
    ("顶及的工艺", [("顶级", S)]),
    ("纯天然的，无负作用", [("无副作用", S)]),
    ("用了立即见笑", [("立即见效", S)]),
    ("这个药要到病除", [("药到病除", S)]),
    ("航业第一的品质", [("行业第一", S)]),
    # -- time and order, advice, and words that only sound like a term
    ("第一次来直播间的宝宝点个关注", []),
    ("这是我们今天的第一款产品", []),
    ("第一个拍下的宝宝送小样", []),
    ("第一时间给大家发货", []),
    ("第一眼就喜欢上了", []),
    ("第一批货已经发出去了", []),
    ("最近天气冷了，羽绒服要备起来", []),
    ("最后三单，赶紧拍", []),
    ("这是我们家最新款的连衣裙", []),
    ("最新的颜色已经上了", []),
    ("宝宝们最好提前下单", []),
    ("最好是按平时的尺码拍", []),
    ("最高减五十元，优惠券领一下", []),
    ("空调调到最低档就行", []),
    ("这款100%纯棉，透气不闷", []),
    ("百分之百纯棉的面料", []),
    ("家里备一支万能胶", []),
    ("这是国家级非遗传承人做的", []),
    ("国家机关单位上班的姐妹穿这个特别合适", []),
    ("唯一的缺点就是太好卖了", []),
    ("保质期十二个月，最佳食用期是三个月", []),
    ("治愈系的颜色，看着就开心", []),
    ("小眼睛的姐妹也能画", []),
    ("厨房必备的好东西", []),
    ("这个资料给大家看一下", []),
    ("打底衣特别保暖", []),
    ("因为一直在用，所以推荐给大家", []),
    ("黄金吊坠优惠券领一下", []),
    ("翡翠吊坠假一赔三", []),
    ("这个品质世界级，拼手速了", [("世界级", E)]),  # 级，拼 is no 极品 across the comma
    ("今天追加一百单", []),
    ("手链戴上特别显白", []),
    ("这个开关很好用", []),
    ("正在给大家打包", []),
    ("这双皮鞋特别舒服", []),
    ("这个是真的好用", []),
    ("转运珠手链，送女朋友", []),
    ("快递已经到了转运中心", []),
    ("我们家的招财猫摆件", []),
    ("冬天喝姜汤特别暖和", []),
    ("纯银的，不过敏，戴着特别舒服", []),
    ("包邮，七天无理由退货", []),
    ("三二一上链接，手慢无", []),
    ("这款羽绒服含绒量百分之九十", []),
    # -- English and mixed
    ("This lipstick is the best ever", [("best ever", E)]),
    ("No.1 in sales this year", [("no.1", E)]),
    ("piano 1 lesson for kids", []),
    ("free shipping and seven day returns", []),
    ("This cream cures acne, 100% effective", [("miracle cure", E), ("100% effective", E)]),
    ("manicure set, only 99 yuan", []),
    ("risk-free trial, lowest price ever", [("100% effective", E), ("lowest price ever", E)]),
    ("这款 lipstick 是 No.1，全网最低价", [("no.1", E), ("全网最低价", E)]),
    ("buy one get one free, only today", []),
]


@pytest.fixture(scope="module")
def matcher() -> BannedWordMatcher:
    return BannedWordMatcher(load_lexicon())


def found(hits: list[TermMatch]) -> list[tuple[str, str]]:
    return [(h.term, h.match) for h in hits]


@pytest.mark.parametrize(("text", "expected"), SALES_TALK, ids=[t for t, _ in SALES_TALK])
def test_sales_talk(matcher: BannedWordMatcher, text: str, expected: list[tuple[str, str]]) -> None:
    hits = matcher.find(text)
    assert found(hits) == expected
    folded = fold(text)
    for hit in hits:
        assert folded[hit.start : hit.end] == hit.heard
    # The indexer passes the syllables it worked out in context: the same hits.
    assert matcher.find(text, syllables(text)) == hits


def test_the_table_is_big_and_balanced() -> None:
    assert len(SALES_TALK) >= 100
    assert sum(1 for _, hits in SALES_TALK if not hits) >= 30
    assert sum(1 for _, hits in SALES_TALK if (S in {m for _, m in hits})) >= 10


def test_a_hit_says_what_was_heard_and_where(matcher: BannedWordMatcher) -> None:
    text = "ＡＢＣ 家人們，國家極的品質，全網最低價"
    folded = fold(text)
    assert folded == "abc 家人们,国家极的品质,全网最低价"
    first, second = matcher.find(text)
    assert (first.term, first.heard, first.match) == ("国家级", "国家极", S)
    assert (first.start, first.end) == (8, 11)
    assert (first.category, first.severity, first.source) == ("absolute", "critical", "AdLaw-9(3)")
    assert (second.term, second.heard, second.match) == ("全网最低价", "全网最低价", E)
    assert folded[second.start : second.end] == "全网最低价"
    assert second.category == "false_price"


def test_symbols_between_characters_are_inside_the_span(matcher: BannedWordMatcher) -> None:
    (hit,) = matcher.find("这是国 . 家 . 级的")
    assert (hit.heard, hit.start, hit.end) == ("国 . 家 . 级", 2, 11)


def test_syllables_can_come_in_any_holder(matcher: BannedWordMatcher) -> None:
    @dataclass
    class Heard:  # as core.phonetic.SoundText holds them
        syllables: list[Syllable]

    text = "这个精华趋斑效果特别好"
    assert matcher.find(text, Heard(syllables(text))) == matcher.find(text)


def test_shipped_lexicon_is_versioned_and_cites_its_rules() -> None:
    lexicon = load_lexicon()
    assert lexicon.version.count(".") == 2
    assert len(lexicon.terms) >= 150
    assert {
        "absolute",
        "false_price",
        "medical",
        "efficacy",
        "guarantee",
        "state_endorsement",
        "superstition",
    } <= set(lexicon.categories)
    assert {t.severity for t in lexicon.terms} == set(SEVERITIES)
    assert all(t.source in lexicon.sources for t in lexicon.terms)
    assert {"最近", "最后", "最新", "第一次", "第一款", "第一个"} <= set(lexicon.whitelist)
    assert load_lexicon(LEXICON_FILE) == lexicon


def test_a_user_lexicon_adds_terms(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        'version: "1"\n'
        "terms:\n"
        "  - {term: 国货之光, category: absolute, severity: low, source: 平台规则 3.2}\n"
        "  - {term: 神仙水, category: efficacy, severity: medium, source: 平台规则 4.1,\n"
        "     except: [神仙水瓶]}\n",
        encoding="utf-8",
    )
    lexicon = load_lexicon(path)
    assert (lexicon.version, len(lexicon.terms), lexicon.whitelist) == ("1", 2, ())
    matcher = BannedWordMatcher(lexicon)
    assert found(matcher.find("这款神仙水真的是国货之光")) == [("神仙水", E), ("国货之光", E)]
    assert found(matcher.find("锅货之光")) == [("国货之光", S)]
    assert matcher.find("神仙水瓶子") == []
    assert matcher.find("国家级的品质") == []  # only the user's terms
    assert matcher.find("锅货之光")[0].source == "平台规则 3.2"


def test_an_edited_lexicon_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("version: a\nterms: [{term: 甲, category: x, severity: low, source: s}]\n")
    assert load_lexicon(path).version == "a"
    path.write_text("version: bb\nterms: [{term: 乙, category: x, severity: low, source: s}]\n")
    assert [t.term for t in load_lexicon(path).terms] == ["乙"]


BROKEN = [
    (
        "terms:\n  - {category: absolute, severity: high, source: s}\nversion: '1'\n",
        "term 1: missing 'term'",
    ),
    (
        "version: '1'\nterms:\n  - {term: 最佳, category: absolute, severity: hi, source: s}\n",
        "term 1 (最佳): unknown severity 'hi' (one of low, medium, high, critical)",
    ),
    ("version: '1'\nterms: [ {term: 最佳\n", "not valid YAML at line 3"),
    ("just a sentence\n", "expected a mapping with 'version' and 'terms'"),
    ("version: '1'\nterms: []\n", "'terms' must be a non-empty list"),
    (
        "terms: [{term: 最佳, category: a, severity: low, source: s}]\n",
        "missing 'version'",
    ),
    (
        "version: 1.5\nterms: [{term: 最佳, category: a, severity: low, source: s}]\n",
        "'version' must be text such as \"2026.11.1\", not 1.5",
    ),
    (
        "version: '1'\nterms: [{term: 最佳, category: a, severity: low, source: s, exept: [x]}]\n",
        "term 1 (最佳): unknown key 'exept'",
    ),
    (
        "version: '1'\nsources: {a: rule a}\n"
        "terms: [{term: 最佳, category: a, severity: low, source: b}]\n",
        "term 1 (最佳): source 'b' is not a key of 'sources'",
    ),
    (
        "version: '1'\nterms:\n  - {term: 最佳, category: a, severity: low, source: s}\n"
        "  - {term: 最低, category: a, severity: low, source: s, aliases: [最 佳]}\n",
        "term 2: '最 佳' is already listed (term 1)",
    ),
    (
        "version: '1'\nterms: [{term: 100, category: a, severity: low, source: s}]\n",
        "term 1: missing 'term' (text; quote numbers",
    ),
]


@pytest.mark.parametrize(("content", "problem"), BROKEN, ids=[p for _, p in BROKEN])
def test_a_broken_lexicon_is_a_readable_config_error(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_lexicon(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_a_missing_lexicon_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot read the lexicon"):
        load_lexicon(tmp_path / "nowhere.yaml")


def test_an_empty_lexicon_object_still_matches_nothing() -> None:
    lexicon = Lexicon("0", ())
    assert BannedWordMatcher(lexicon).find("国家级的品质") == []
