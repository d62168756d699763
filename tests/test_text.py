"""Text folding, number search forms, hallucination guard, model assembly, assembly of words."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import IntegrityError
from core.text import is_hallucination, search_form, to_simplified
from core.transcript import SegmentTranscript, TranscriptWord, assemble_words, utterances_of
from transcriber import model_store


def test_traditional_is_folded_to_simplified() -> None:
    assert to_simplified("歡迎來到直播間，七天無理由退貨") == "欢迎来到直播间，七天无理由退货"


@pytest.mark.parametrize(
    ("spoken", "written"),
    [("只要九十九元", "只要99元"), ("一百二十九块", "129块"), ("减三十元", "减30元")],
)
def test_spoken_and_written_numbers_share_a_search_form(spoken: str, written: str) -> None:
    assert search_form(spoken) == search_form(written)


def test_search_form_folds_width_and_case() -> None:
    assert search_form("ＡＢＣ１２３") == search_form("abc123")


@pytest.mark.parametrize(
    "junk",
    [
        "字幕由Amara.org社区提供",
        "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
        "謝謝觀看",
        "  ，。 ",
    ],
)
def test_known_hallucinations_are_recognised(junk: str) -> None:
    assert is_hallucination(junk)


@pytest.mark.parametrize("real", ["谢谢观看我们的直播，今天羽绒服九十九", "七天无理由退货", "包邮"])
def test_real_speech_is_not_a_hallucination(real: str) -> None:
    assert not is_hallucination(real)


def test_bundled_model_is_assembled_and_checked(tmp_path: Path) -> None:
    directory = model_store.base_model_dir(tmp_path)
    assert (directory / "model.bin").stat().st_size > 100_000_000
    assert model_store.base_model_dir(tmp_path) == directory  # second call reuses it


def test_a_corrupt_model_part_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = model_store._packaged

    def tampered(package: str, name: str) -> Path:
        path = real(package, name)
        if name != "model.bin.part2":
            return path
        copy = tmp_path / "part2"
        data = bytearray(path.read_bytes())
        data[1000] ^= 0xFF
        copy.write_bytes(bytes(data))
        return copy

    monkeypatch.setattr(model_store, "_packaged", tampered)
    with pytest.raises(IntegrityError, match=r"model\.bin"):
        model_store.base_model_dir(tmp_path / "models")
    assert not (tmp_path / "models" / "whisper-base-ct2").exists()


def word(text: str, offset: float, u: int, segment: int, ctx: bool = False) -> TranscriptWord:
    return TranscriptWord(
        text=text,
        start="t",
        end="t",
        offset=offset,
        end_offset=offset + 0.2,
        probability=0.9,
        utterance=u,
        context=ctx,
        segment=segment,
    )


def transcript(segment: int, from_offset: float, words: list[TranscriptWord]) -> SegmentTranscript:
    """A stored transcript of which only the segment, handover and words matter here."""
    return SegmentTranscript(
        version=1,
        stream="s",
        segment=segment,
        segment_sha256="0" * 64,
        segment_start="t",
        model="test",
        language="zh",
        context_seconds=3.0 if segment else 0.0,
        from_offset=from_offset,
        text="",
        search="",
        words=tuple(words),
    )


def test_words_near_a_boundary_come_from_the_next_segment_once() -> None:
    first = transcript(
        0,
        0.0,
        [
            word("七", 9.4, 0, 0),
            word("天", 9.6, 0, 0),
            word("无", 9.8, 0, 0),
            word("礼", 9.95, 0, 0),
        ],
    )
    second = transcript(
        1,
        9.0,
        [
            word("七", 9.42, 0, 1, True),
            word("天", 9.6, 0, 1, True),
            word("无", 9.8, 0, 1, True),
            word("理", 9.97, 0, 1, True),
            word("由", 10.1, 0, 1),
            word("退", 10.3, 0, 1),
            word("货", 10.5, 0, 1),
        ],
    )
    words = assemble_words([second, first])
    assert "".join(w.text for w in words) == "七天无理由退货"
    (utterance,) = utterances_of(words)
    assert utterance.text == "七天无理由退货" and utterance.offset == 9.42


def test_vocabulary_reaches_the_decoder_options() -> None:
    from storage.products import parse_products
    from transcriber.vocabulary import decode_options

    products = parse_products([{"name": "羽绒服", "aliases": ["白鸭绒"]}, {"name": "手镯"}])
    options = decode_options("zh", products)
    assert options.prompt is not None and "羽绒服、白鸭绒、手镯" in options.prompt
    assert options.hotwords == "羽绒服 白鸭绒 手镯"
    plain = decode_options("zh", products, use_vocabulary=False)
    assert plain.prompt is None and plain.hotwords is None


def test_decoding_loops_are_cut_but_repeated_speech_is_kept() -> None:
    from datetime import UTC, datetime

    from storage.models import Segment
    from transcriber.protocol import Word
    from transcriber.worker import build_document

    start = datetime(2026, 11, 20, tzinfo=UTC)
    segment = Segment(seq=0, sha256="0" * 64, starts_at=start, duration=10.0)

    def words(text: str, utterance: int, at: float) -> list[Word]:
        return [
            Word(c, at + 0.2 * i, at + 0.2 * i + 0.1, 0.9, utterance) for i, c in enumerate(text)
        ]

    heard = words("编号零零零零号哈哈哈哈", 0, 0.0) + words("来试" + "试" * 12, 1, 5.0)
    document = build_document("s", segment, heard, 0.0, 0.0, start, "test", "zh")
    assert document.text == "编号零零零零号哈哈哈哈来"


def test_search_form_skips_cn2an_only_where_it_would_change_nothing() -> None:
    """search_form loads cn2an only for text with a character its transform reacts to
    (the CLI's start time): that set must be cn2an's own, and the forms unchanged."""
    import cn2an

    from core.text import NUMERAL_CHARS, fold

    transform = cn2an.transform.__self__
    assert set(transform.all_num) | set(transform.all_unit) | set("两廿半") == NUMERAL_CHARS
    for text in [
        "直播间的家人们闭眼入",
        "全国包邮，假一赔十",
        "七天无理由退货",
        "半价",
        "廿五号发货",
        "九块九包邮",
        "99元两件",
        "Ｔ恤ABC",
        "百分之九十的白鸭绒",
    ]:
        assert search_form(text) == str(cn2an.transform(fold(text), "cn2an")), text
