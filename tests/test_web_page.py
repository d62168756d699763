"""The reviewer web page in a real browser (Chromium through Playwright) against the real
app over HTTP: real segments of the Mandarin test video, a transcript stored at the
speech's known character times (no Whisper model needed), the real search index."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from storage.signing import signing_key_info
from storage.stores import Stores, open_stores
from tests.support.apiserver import running_api
from tests.support.speech import clip
from transcriber.protocol import Word
from transcriber.worker import build_document, store_transcript

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).parent / "out" / "web-page.png"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STREAM = "shop"
CLAUSE_BREAKS = "，。！？、"

Clause = list[tuple[str, float, float]]  # (character, onset, end), seconds into the audio


def spoken_clauses(name: str) -> list[Clause]:
    """The clauses of a speech fixture with each character's measured times."""
    out: list[Clause] = []
    for sentence in clip(name)["sentences"]:
        timed = iter(sentence["chars"])
        clause: Clause = []
        for char in sentence["text"]:
            if char in CLAUSE_BREAKS:
                out += [clause] if clause else []
                clause = []
                continue
            info = next(timed)
            assert info["char"] == char
            clause.append((char, info["onset"], info["end"]))
        out += [clause] if clause else []
    return out


def store_spoken_transcript(stores: Stores, stream: str, clauses: list[Clause]) -> None:
    """One transcript per recorded segment, each word in the segment where it starts, one
    utterance per clause (a clause that crosses a cut becomes two, as Whisper's would)."""
    row = stores.catalog.get_stream(stream)
    segments = stores.catalog.segments(row.id)
    first = segments[0].starts_at
    for segment in segments:
        start = (segment.starts_at - first).total_seconds()
        words = [
            Word(char, onset - start, end - start, 0.95, number)
            for number, clause in enumerate(clauses)
            for char, onset, end in clause
            if start <= onset < start + segment.duration
        ]
        document = build_document(stream, segment, words, 0.0, 0.0, first, "test", "zh")
        store_transcript(stores, row, segment.seq, document)


@dataclass
class Served:
    url: str
    key: str
    stores: Stores
    clauses: list[Clause]


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not found at /usr/bin/chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, test_video: Path) -> Iterator[Served]:
    """The app on a free port, with one real recording searchable and a reviewer key
    (made once for the module: the recording and its index are the slow part)."""
    tmp_path = tmp_path_factory.mktemp("served")
    from indexer.factory import open_search_index
    from indexer.service import Indexer
    from recorder.recorder import StreamRecorder
    from storage.products import parse_products

    stores = open_stores(Settings(home=tmp_path / "home"))
    StreamRecorder(
        stores.settings, stores.chain, STREAM, str(test_video), segment_seconds=5.0, started_at=T0
    ).run()
    stream = stores.catalog.get_stream(STREAM)
    stores.catalog.set_stream_details(stream.id, language="zh", streamer="小王")
    stores.catalog.set_products(stream.id, parse_products([{"name": "羽绒服"}, {"name": "手镯"}]))
    clauses = spoken_clauses("sales_1")
    store_spoken_transcript(stores, STREAM, clauses)
    index = open_search_index(stores)
    Indexer(stores, index).index_pending()
    index.close()
    try:
        with running_api(stores) as server:
            yield Served(server.url, server.keys["reviewer"], stores, clauses)
    finally:
        stores.close()


def clause_at(clauses: list[Clause], text: str) -> float:
    """The onset of the clause saying ``text``: the offset its search hit has."""
    for clause in clauses:
        if "".join(c for c, _, _ in clause) == text:
            return clause[0][1]
    raise AssertionError(f"no clause {text!r}")


def search(page: Any, text: str) -> None:
    page.get_by_role("searchbox").fill(text)
    page.locator("#search-form button[type=submit]").click()  # sets aria-busy at once
    page.wait_for_selector("#results[aria-busy=false] .hit")


def play_first_hit(page: Any) -> tuple[float, float]:
    """Click the first hit; (the clip's X-Clip-Start-Offset, video time after the seek)."""
    page.evaluate(
        """() => {
            const video = document.getElementById('video');
            window.seeks = [];
            // Runs after the page's own listener, so its transcript highlight is current.
            video.addEventListener('seeked', () => window.seeks.push({
                time: video.currentTime,
                current: document.querySelector('#transcript .utterance.current')?.textContent,
            }));
        }"""
    )
    with page.expect_response(lambda r: "/clip?" in r.url) as clip_response:
        page.locator("#results .hit").first.click()
    start = float(clip_response.value.headers["x-clip-start-offset"])
    page.wait_for_function("window.seeks.length > 0", timeout=20_000)
    seeked = page.evaluate("window.seeks[0]")
    return start, seeked["time"]


def test_a_reviewer_finds_plays_and_exports_a_promise(
    browser: Any, served: Served, tmp_path: Path
) -> None:
    from evidence.package_verify import verify_package

    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1440, "height": 900}
    )
    page = context.new_page()
    outside: list[str] = []
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    def only_this_server(route: Any) -> None:
        # The page must work offline: any request to another host is refused and noted.
        if route.request.url.startswith(served.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(served.url)

    # A wrong key is refused with the API's own reason (Chinese: the browser's language).
    page.get_by_label("API 密钥").fill("lw_not-a-key")
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("#message:not([hidden])")
    assert "unknown or revoked API key" in page.inner_text("#message-text")

    # The right key is asked for once, then remembered.
    page.get_by_label("API 密钥").fill(served.key)
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("#workspace:not([hidden])")
    assert page.locator("#f-stream option[value=shop]").count() == 1
    page.reload()
    page.wait_for_selector("#workspace:not([hidden])")

    # Search: the match in <mark>, the claim it makes as a badge.
    hit_offset = clause_at(served.clauses, "假一赔十")
    search(page, "假一赔十")
    hit = page.locator("#results .hit").first
    assert "<mark>假一赔十</mark>" in hit.inner_html()
    assert "正品保证" in hit.locator(".badge-claim").all_inner_texts()
    assert page.locator("#total").inner_text().startswith("共 ")
    assert float(hit.get_attribute("data-offset") or "nan") == pytest.approx(hit_offset, abs=0.01)
    assert "2026-11-20 20:00:11" in hit.locator("time").inner_text()  # the reviewer's zone

    # Play: the clip is fetched with the key and seeked to the hit's offset in the stream.
    clip_start, seeked_time = play_first_hit(page)
    assert abs(clip_start + seeked_time - hit_offset) < 1.0
    shown = float(page.get_attribute("#player", "data-stream-offset") or "nan")
    assert abs(shown - hit_offset) < 1.5
    assert "假一赔十" in page.evaluate("window.seeks[0].current")
    page.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return !v.paused && v.currentTime > window.seeks[0].time + 0.5; }",
        timeout=15_000,
    )
    assert page.get_attribute("#player", "data-state") == "playing"
    unmute = page.locator("#unmute")
    assert unmute.inner_text() == "取消静音"
    unmute.click()
    page.wait_for_function("document.getElementById('unmute').textContent === '静音'")
    assert page.evaluate("document.getElementById('video').muted") is False
    # The transcript shows the moment and follows playback to the next clause.
    assert "假一赔十" in page.locator("#transcript .utterance.moment").inner_text()
    page.wait_for_function(
        "document.querySelector('#transcript .utterance.current')"
        "?.textContent.includes('七天无理由退货')",
        timeout=15_000,
    )

    # Export 30 s either side of the hit: a package that verifies.
    with page.expect_download(timeout=60_000) as download_info:
        page.get_by_role("button", name="导出证据包").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    report = verify_package(saved)
    assert report.stream == STREAM
    assert report.segments
    # The finished export stays shown: its file name, size and the command that checks it.
    page.wait_for_selector("#export-done:not([hidden])")
    done = page.inner_text("#export-done")
    key_id = signing_key_info(served.stores.chain.signer.public_key).key_id
    assert f"已下载 {saved.name}（" in done and ("kB）" in done or "MB）" in done), done
    assert f"livewitness verify-package --key-id {key_id} {saved.name}" in done, done

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # A hit later in the stream: its clip starts on a later key frame and still lands.
    page.select_option("#f-banned", "absolute")
    search(page, "国家级")
    assert "绝对化用语" in page.locator("#results .hit").first.inner_text()
    clip_start, seeked_time = play_first_hit(page)
    assert clip_start > 0
    assert abs(clip_start + seeked_time - clause_at(served.clauses, "品质国家级")) < 1.0

    # A link from an alert (#stream=…&t=…) plays that moment.
    page.evaluate("window.seeks = []")
    page.goto(f"{served.url}/#stream={STREAM}&t=17.0")
    page.wait_for_function("window.seeks.length > 0", timeout=20_000)
    assert abs(float(page.get_attribute("#player", "data-stream-offset") or "nan") - 17) < 1.0

    # A homophone is found and marked as one.
    page.select_option("#f-banned", "")
    search(page, "包油")
    assert page.locator("#results .hit").first.locator(".badge-sound").inner_text() == "同音"

    # Errors are shown, not swallowed: an empty export range is refused by the API.
    page.fill("#export-before", "0")
    page.fill("#export-after", "0")
    page.get_by_role("button", name="导出证据包").click()
    page.wait_for_selector("#message:not([hidden])")
    assert "HTTP 400" in page.inner_text("#message-text")

    # Every label switches language.
    page.select_option("#lang", "en")
    assert page.get_by_role("button", name="Export evidence package").count() == 1
    badges = page.locator("#results .hit").first.locator(".badge").all_inner_texts()
    # 羽绒服: the product presented just before, which the shipping promise is about.
    assert badges == ["sound-alike", "羽绒服", "Free shipping"]

    # Signing out forgets the key.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#sign-in:not([hidden])")
    assert page.evaluate("localStorage.getItem('livewitness.apiKey')") is None

    assert outside == []
    assert page_errors == []
    context.close()


def test_the_compliance_overview_charts_a_streams_banned_words(
    browser: Any, served: Served
) -> None:
    from storage.api_keys import create_api_key

    hits = served.stores.catalog.banned_hits()
    assert {h.term for h in hits} >= {"全网最低价", "国家级"}  # what sales_1 says
    key = create_api_key(served.stores.catalog, "compliance", "overview test")[0]
    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1440, "height": 900}
    )
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(served.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(served.url)
    page.get_by_label("API 密钥").fill(key)
    page.get_by_role("button", name="登录").click()
    # The compliance role lands on the overview; the first load (last 7 days) finishes.
    page.wait_for_selector("#overview:not([hidden])")
    page.wait_for_selector("#overview[aria-busy=false]")
    assert page.locator("#views").is_visible()

    # The recording's hour, in the reviewer's zone (T0 is 20:00 in Shanghai), by hour.
    page.fill("#o-since", "2026-11-20T19:00:00")
    page.fill("#o-until", "2026-11-20T22:00:00")
    page.select_option("#o-bucket", "hour")
    page.locator("#overview-form button[type=submit]").click()
    page.wait_for_selector("#chart-timeline rect.bar")
    page.wait_for_selector("#overview[aria-busy=false]")
    bars = page.eval_on_selector_all(
        "#chart-timeline rect.bar",
        "els => els.map(e => [e.dataset.category, e.dataset.bucket, Number(e.dataset.count),"
        " e.getBBox().height])",
    )
    assert sum(count for _, _, count, _ in bars) == len(hits)
    assert {category for category, _, _, _ in bars} == {h.category for h in hits}
    assert {bucket for _, bucket, _, _ in bars} == {"2026-11-20T12:00:00.000Z"}
    assert all(height > 0 for *_, height in bars)  # drawn, not only listed
    assert f"违禁词命中 {len(hits)} 次" in page.inner_text("#overview-summary")
    assert "国家级" in page.inner_text("#chart-terms")
    assert "小王" in page.inner_text("#chart-streamers")
    assert page.locator("#chart-claims rect.bar").count() >= 2  # 包邮, 七天无理由退货, …
    row = page.locator("#overview-streams tr[data-stream=shop]")
    assert row.locator("td").nth(2).inner_text() == str(len(hits))
    assert row.locator("svg.spark rect.bar").count() >= 1

    # English labels, the same charts.
    page.select_option("#lang", "en")
    assert page.inner_text("#overview-title") == "Compliance overview"
    assert "banned-word hits" in page.inner_text("#overview-summary")
    assert page.locator("#chart-timeline rect.bar").count() == len(bars)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT.with_name("overview.png")), full_page=True)
    assert page_errors == [] and outside == []
    context.close()


def test_a_reviewer_keeps_two_hits_in_a_case_notes_one_and_downloads_the_report(
    browser: Any, served: Served, tmp_path: Path
) -> None:
    from evidence.case_package import verify_case_package

    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1440, "height": 900}
    )
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(served.url)
    page.get_by_label("API 密钥").fill(served.key)
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("#workspace:not([hidden])")

    # Two hits into a new case: the first makes it, the second joins it.
    for query in ("假一赔十", "国家级"):
        search(page, query)
        play_first_hit(page)
        if query == "假一赔十":
            page.select_option("#case-pick", "new")
            page.fill("#case-new-title", "假一赔十 纠纷")
        page.locator("#case-add-button").click()
        page.wait_for_function(
            "document.getElementById('status').textContent.includes('已加入')", timeout=20_000
        )
    (case,) = served.stores.catalog.cases()
    assert case.title == "假一赔十 纠纷"
    moments = served.stores.catalog.case_moments(case.id)
    assert [m.found_by for m in moments] == ['search "假一赔十"', 'search "国家级"']
    assert abs(moments[0].start_offset - clause_at(served.clauses, "假一赔十")) < 1.0

    # The case view: both moments, a note written and shown as signed, beside the moment.
    page.locator('#views [data-view="cases"]').click()
    page.locator("#case-list [data-case]").first.click()
    page.wait_for_selector("#case-moments .case-moment >> nth=1")
    first = page.locator("#case-moments .case-moment").first
    first.locator(".overlay-form input").fill("买家截图与此一致")
    first.locator(".overlay-form button").click()
    page.wait_for_selector("#case-moments .overlay-note")
    note = page.locator("#case-moments .overlay-note").inner_text()
    assert "买家截图与此一致" in note and "签名有效" in note
    # Play from the case: the search view's player takes the moment.
    first.get_by_role("button", name="播放").click()
    page.wait_for_selector("#workspace:not([hidden])")
    page.wait_for_function(
        "document.getElementById('player').dataset.state === 'playing'", timeout=20_000
    )

    # The report and the case package download, and the package verifies.
    page.locator('#views [data-view="cases"]').click()
    page.wait_for_selector("#case-report:not([hidden])")
    with page.expect_download(timeout=60_000) as pdf_download:
        page.locator("#case-report").click()
    pdf = tmp_path / pdf_download.value.suggested_filename
    pdf_download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    with page.expect_download(timeout=60_000) as zip_download:
        page.locator("#case-package").click()
    package = tmp_path / zip_download.value.suggested_filename
    zip_download.value.save_as(package)
    report = verify_case_package(package, served.stores.chain.signer.public_key)
    assert len(report.packages) == 2 and (report.overlays, report.overlays_ok) == (1, 1)
    assert page_errors == []
    context.close()


def test_the_timeline_strip_shows_chat_cards_and_screen_text_and_plays_them(
    browser: Any, served: Served
) -> None:
    """Under the player: the search's speech hits, chat, a product card, on-screen text
    and the banned term on it, each a mark that plays its moment; beside the transcript,
    the chat around the moment and the card up then. Chat and cards are stored as the
    event service stores them, screen text as the OCR stage does (no OCR here)."""
    import json
    from datetime import timedelta

    from core.events import StreamEvent
    from core.screen import ScreenLine
    from storage.models import EventRow

    stores = served.stores
    stream = stores.catalog.get_stream(STREAM)
    first = stores.catalog.first_segment(stream.id)
    assert first is not None
    t0 = first.starts_at
    hit_offset = clause_at(served.clauses, "假一赔十")
    chat_offset = round(hit_offset + 2.0, 1)

    def event(**fields: Any) -> EventRow:
        at = t0 + timedelta(seconds=fields.pop("offset"))
        item = StreamEvent(at=at, at_text=at.isoformat(), received_at=at, **fields)
        body = json.dumps(item.to_json(), ensure_ascii=False)
        return EventRow(
            stream_id=stream.id,
            event_id=item.id,
            kind=item.kind,
            at=at,
            received_at=at,
            body=body,
            late=False,
        )

    stores.catalog.add_events(
        stream.id,
        [
            event(
                id="w-card",
                kind="product_card",
                offset=0.5,
                action="shown",
                title="羽绒服",
                price=129.0,
            ),
            event(
                id="w-chat", kind="chat", offset=chat_offset, user="买家A", text="假一赔十是真的吗"
            ),
        ],
    )
    sticker = ScreenLine(
        stream=STREAM,
        segment_seq=0,
        text="全网第一",
        box=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)),
        confidence=0.9,
        first_seen_at=t0 + timedelta(seconds=1),
        last_seen_at=t0 + timedelta(seconds=4),
        first_offset=1.0,
        last_offset=4.0,
        keyframe_key="test/keyframe.jpg",
    )
    stores.catalog.replace_screen_text(stream.id, 0, [sticker])

    context = browser.new_context(locale="en-US", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(served.url)
    page.get_by_label("API key").fill(served.key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#workspace:not([hidden])")
    search(page, "假一赔十")
    page.locator("#results .hit").first.click()
    page.wait_for_selector("#timeline-pane:not([hidden]) .timeline-mark.mark-chat")
    kinds = set(
        page.eval_on_selector_all(
            "#timeline-strip .timeline-mark", "m => m.map(x => x.dataset.kind)"
        )
    )
    assert {"speech", "chat", "card", "screen", "banned"} <= kinds
    assert page.locator("#context-cards").inner_text().strip() == "羽绒服 ¥129"
    assert "假一赔十是真的吗" in page.locator("#context-chat").inner_text()
    page.screenshot(path=str(SCREENSHOT.with_name("web-timeline.png")))  # for a human look
    # A mark plays its own moment: the page's address names the chat's offset.
    page.locator("#timeline-strip .mark-chat").first.click()
    page.wait_for_function(f"location.hash.endsWith('t={chat_offset:.1f}')")
    assert page_errors == []
    context.close()
