"""The egress policy (core/egress.py) and the clients that obey it: every outbound URL
(webhooks, stream sources, TSAs) reaches only globally routable addresses unless the
allow-list names them, connects to the address it checked, follows no redirects; ffmpeg
opens only the protocols a source's scheme needs.

The policy is tried with the system resolver wherever the host is an address literal
(no DNS needed); a name that answers differently each time is a resolver injected at the
policy's seam, and a local server stands in for a public address at the client's dial
seam. Servers listen on 127.0.0.1 only."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from compliance.alerts import WebhookNotifier
from core.egress import EgressPolicy, refusal_reason
from core.egress_http import egress_client
from core.errors import (
    EgressRefusedError,
    InvalidInputError,
    SourceUnreachableError,
    TimestampError,
)
from core.settings import Settings
from recorder.ffmpeg import protocol_whitelist, segmenter_command
from recorder.hls import read_playlist
from recorder.recorder import StreamRecorder
from recorder.sources import check_source_allowed
from storage.catalog import OutboxEvent
from storage.stores import open_stores
from storage.timestamping.client import TsaClient
from tests.support.apiserver import running_api
from tests.support.cli import cli_in_process
from tests.support.media import make_test_video

PUBLIC = "93.184.216.34"  # a globally routable address (never dialled: see `dial`)

# Issue 14's list, and their neighbours: URL, and an allow-list entry that lets it through.
REFUSED = [
    ("http://127.0.0.1:6379/", "127.0.0.1"),
    ("http://[::1]/", "::1"),
    ("http://0x7f000001/", "127.0.0.0/8"),
    ("http://2130706433/", "127.0.0.1/32"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://10.0.0.1/", "10.0.0.0/8"),
    ("http://172.16.5.4/", "172.16.0.0/12"),
    ("http://192.168.1.1/", "192.168.0.0/16"),
    ("http://100.100.100.200/", "100.64.0.0/10"),
    ("http://[2002:7f00:1::1]/", "127.0.0.1"),  # 6to4 of 127.0.0.1: judged by the IPv4
    ("http://[2002:a00:1::]/", "2002::/16"),
    ("http://[fec0::1]/", "fec0::/10"),
    ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),  # IPv4-mapped loopback
    ("http://[64:ff9b::a9fe:a9fe]/", "169.254.0.0/16"),  # NAT64 of the metadata address
    ("http://[fd00::1]/", "fc00::/7"),
    ("http://[fe80::1]/", "fe80::/10"),
    ("http://0.0.0.0/", "0.0.0.0"),
    ("http://[::]/", "::"),
    ("http://224.0.0.1/", "224.0.0.0/4"),
    ("http://192.0.2.1/", "192.0.2.0/24"),  # documentation (reserved) range
]


@pytest.mark.parametrize(("url", "entry"), REFUSED)
def test_addresses_that_are_not_global_are_refused_unless_the_allow_list_names_them(
    url: str, entry: str
) -> None:
    with pytest.raises(EgressRefusedError, match="egress policy") as refused:
        EgressPolicy().check_url(url, what="webhook")
    assert "\n" not in str(refused.value)
    assert EgressPolicy([entry]).check_url(url).addresses
    # Allowing something else does not allow this.
    with pytest.raises(EgressRefusedError):
        EgressPolicy(["198.51.100.7", "other.example"]).check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/\r\nX-Injected: 1",
        "http://example.com/a b",
        "http://example.com/\x00",
        "http://exam\u200bple.com/",
        "\thttp://example.com/",
    ],
)
def test_urls_with_control_or_space_characters_are_refused_even_when_allowed(url: str) -> None:
    with pytest.raises(EgressRefusedError, match="control or space character"):
        EgressPolicy(["0.0.0.0/0", "::/0", "example.com"]).check_url(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "must be http, https"),
        ("file:///etc/passwd", "must be http, https"),
        ("http:///no-host", "no host"),
        ("http://[::1/", "malformed"),
        ("http://example.com:99999/", "malformed"),
    ],
)
def test_malformed_urls_are_refused_in_one_line(url: str, problem: str) -> None:
    with pytest.raises(EgressRefusedError, match=problem):
        EgressPolicy(["0.0.0.0/0"]).check_url(url, what="webhook")


def test_public_hosts_pass_and_one_bad_address_refuses_the_name() -> None:
    answers = {"hooks.example.com": [PUBLIC], "mixed.example.com": [PUBLIC, "10.1.2.3"]}
    policy = EgressPolicy(resolver=lambda host, _port: answers[host])
    target = policy.check_url("https://hooks.example.com/x")
    assert (target.host, target.port, target.addresses) == ("hooks.example.com", 443, (PUBLIC,))
    with pytest.raises(EgressRefusedError, match=r"mixed\.example\.com \(10\.1\.2\.3\)"):
        policy.check_url("https://mixed.example.com/x")
    assert EgressPolicy().check_url("http://8.8.8.8/").addresses == ("8.8.8.8",)


def test_a_host_name_in_the_allow_list_allows_that_name_only() -> None:
    answers = {"tsa.internal": ["10.9.8.7"], "evil.example": ["10.9.8.7"]}
    policy = EgressPolicy(["TSA.internal."], resolver=lambda host, _port: answers[host])
    assert policy.check_url("http://tsa.internal/").addresses == ("10.9.8.7",)
    with pytest.raises(EgressRefusedError, match="private"):
        policy.check_url("http://evil.example/")


def test_a_host_that_does_not_resolve_is_refused_in_one_line() -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(EgressRefusedError, match=r"cannot resolve the webhook host 'gone.example'"):
        EgressPolicy(resolver=nowhere).check_url("http://gone.example/", what="webhook")


def test_refusal_reasons_judge_the_ipv4_inside_ipv6() -> None:
    from ipaddress import ip_address

    assert refusal_reason(ip_address("2002:5db8:d822::1")) is None  # 6to4 of PUBLIC
    assert "loopback" in (refusal_reason(ip_address("::ffff:7f00:1")) or "")
    assert refusal_reason(ip_address("2606:4700:4700::1111")) is None


def test_settings_read_the_allow_list_and_refuse_nonsense() -> None:
    assert Settings(egress_allow="10.0.0.0/8, ::1,tsa.internal").egress_allow == [
        "10.0.0.0/8",
        "::1",
        "tsa.internal",
    ]
    assert Settings(egress_allow='["127.0.0.1"]').egress_allow == ["127.0.0.1"]
    with pytest.raises(ValueError, match="not a network"):
        Settings(egress_allow="10.0.0.0/33")


# -- the HTTP client --------------------------------------------------------------------


class _Server:
    """Answers every request with ``status`` (and ``location``); keeps what it got."""

    def __init__(self, status: int = 200, location: str | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                server.requests.append((self.path, dict(self.headers)))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    yield running
    running.close()


def test_the_client_connects_to_the_address_it_checked_not_a_second_answer(
    server: _Server,
) -> None:
    """DNS rebinding: the name answers a public address to the first question and
    127.0.0.1 after; the client asks once and dials the public answer (which the test's
    dial seam routes to the local server standing in for it)."""
    answers = iter([[PUBLIC], ["127.0.0.1"], ["127.0.0.1"]])
    asked: list[str] = []
    dialled: list[tuple[str, int]] = []

    def resolver(host: str, _port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    def dial(address: str, port: int) -> tuple[str, int]:
        dialled.append((address, port))
        return ("127.0.0.1", server.port) if address == PUBLIC else (address, port)

    policy = EgressPolicy(resolver=resolver)
    with egress_client(policy, timeout=5, what="webhook", dial=dial) as client:
        reply = client.post(f"http://hooks.example.com:{server.port}/hook", content=b"{}")
    assert reply.status_code == 200
    assert asked == ["hooks.example.com"]
    assert dialled == [(PUBLIC, server.port)]
    # The request still names the host it was meant for (Host header; SNI alike for TLS).
    assert server.requests[0][1]["Host"] == f"hooks.example.com:{server.port}"


def test_the_client_refuses_a_name_that_now_points_inside(server: _Server) -> None:
    policy = EgressPolicy(resolver=lambda _host, _port: ["127.0.0.1"])
    with (
        egress_client(policy, timeout=5, what="webhook") as client,
        pytest.raises(httpx.ConnectError, match=r"webhook host hooks.example.com .*loopback"),
    ):
        client.post(f"http://hooks.example.com:{server.port}/hook", content=b"{}")
    assert server.requests == []


def test_a_name_that_does_not_resolve_is_a_failed_connect_not_a_refusal() -> None:
    """Delivery retries it and a recorder reconnects later; only a refusal is final."""

    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    policy = EgressPolicy(resolver=nowhere)
    with (
        egress_client(policy, timeout=5, what="webhook") as client,
        pytest.raises(httpx.ConnectError, match="cannot resolve the webhook host"),
    ):
        client.post("http://gone.example/hook", content=b"{}")
    with pytest.raises(SourceUnreachableError, match="cannot resolve the source host"):
        read_playlist("http://gone.example/live.m3u8", 5, policy)


def test_the_client_follows_no_redirect() -> None:
    target = _Server()
    redirecting = _Server(302, f"http://127.0.0.1:{target.port}/inside")
    try:
        with egress_client(EgressPolicy(["127.0.0.1"]), timeout=5) as client:
            reply = client.post(f"http://127.0.0.1:{redirecting.port}/hook", content=b"{}")
        assert reply.status_code == 302
        assert target.requests == []
    finally:
        target.close()
        redirecting.close()


def test_each_delivery_checks_the_webhook_again(home: Path) -> None:
    """A webhook stored before the policy (or whose name now resolves inside) is not
    posted to: the attempt is logged with the refusal and retried by the schedule."""
    receiver = _Server()
    try:
        # Retries wait long enough that the refused first delivery stays out of the way.
        wait = 600.0
        strict = Settings(home=home, webhook_retry_initial_seconds=wait, egress_allow=[])
        with open_stores(strict) as stores:
            stores.catalog.add_webhook(f"http://127.0.0.1:{receiver.port}/hook", "s" * 24)
            stores.catalog.queue_events([OutboxEvent("banned_word", "shop", "x", "{}")])
            notifier = WebhookNotifier(stores.catalog, stores.settings)
            try:
                assert notifier.deliver_due() == 0
            finally:
                notifier.close()
            [delivery] = stores.catalog.deliveries()
            assert delivery.status == "pending" and delivery.attempts == 1
            assert "refused by the egress policy" in (delivery.last_error or "")
            allowed = strict.model_copy(update={"egress_allow": ["127.0.0.1"]})
            with open_stores(allowed) as reopened:
                reopened.catalog.queue_events([OutboxEvent("banned_word", "shop", "y", "{}")])
                notifier = WebhookNotifier(reopened.catalog, allowed)
                try:
                    assert notifier.deliver_due() == 1  # the new one; the first waits
                finally:
                    notifier.close()
        assert [path for path, _headers in receiver.requests] == ["/hook"]
    finally:
        receiver.close()


def test_a_tsa_the_policy_refuses_is_not_asked() -> None:
    client = TsaClient(5.0, [])
    try:
        with pytest.raises(TimestampError, match="egress policy") as refused:
            client.stamp("http://127.0.0.1:9/tsa", b"a signed head")
        assert refused.value.reason == "unreachable"
    finally:
        client.close()


# -- webhook registration ---------------------------------------------------------------


def test_the_api_refuses_a_webhook_the_policy_refuses(home: Path) -> None:
    with (
        open_stores(Settings(home=home, egress_allow=[])) as stores,
        running_api(stores) as api,
        api.client("case-system") as client,
    ):
        for url in ("http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/"):
            answer = client.post("/api/v1/webhooks", json={"url": url})
            assert answer.status_code == 400, answer.text
            assert "egress policy" in answer.json()["error"]
        assert client.get("/api/v1/webhooks").json() == []


def test_the_cli_refuses_a_webhook_the_policy_refuses(home: Path) -> None:
    # The tests allow loopback (tests/conftest.py); 10.0.0.0/8 stays refused.
    done = cli_in_process(home, "webhooks", "add", "http://10.0.0.1/hook")
    assert done.exit_code == 2
    assert "egress policy" in done.output and "Traceback" not in done.output
    assert len(done.output.strip().splitlines()) == 1


# -- stream sources ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc/passwd",
        "concat:/a.ts|/b.ts",
        "subfile,,start,0,end,100,,:/etc/passwd",
        "data:video/mp2t;base64,AAAA",
        "pipe:0",
        "gopher://127.0.0.1:6379/_INFO",
        "ftp://example.com/a.ts",
        "udp://127.0.0.1:1234",
        "tls://example.com:443",
        "unix:/run/docker.sock",
        "crypto+file:///etc/passwd",
    ],
)
def test_sources_of_other_ffmpeg_protocols_never_come_through_the_api(
    source: str, home: Path
) -> None:
    settings = Settings(home=home, allow_file_sources=True, allow_private_sources=True)
    with pytest.raises(InvalidInputError, match="cannot be recorded from the API"):
        check_source_allowed(source, settings)


def test_source_hosts_follow_the_policy_and_the_deprecated_switches(home: Path) -> None:
    strict = Settings(home=home, egress_allow=[])
    for source in (
        "rtmp://127.0.0.1/live/key",
        "http://100.100.100.200/live.flv",
        "http://[2002:a00:1::]/live.flv",
        "http://[fec0::1]/live.flv",
    ):
        with pytest.raises(EgressRefusedError):
            check_source_allowed(source, strict)
    private = Settings(home=home, egress_allow=[], allow_private_sources=True)
    assert check_source_allowed("http://10.0.0.1/live.flv", private) is not None
    with pytest.raises(EgressRefusedError, match="loopback"):
        check_source_allowed("http://[::ffff:127.0.0.1]/live.m3u8", private)
    loopback = Settings(home=home, egress_allow=[], allow_loopback_sources=True)
    assert check_source_allowed("http://[::ffff:127.0.0.1]/live.m3u8", loopback) is not None
    assert (
        check_source_allowed("/srv/demo.mp4", Settings(home=home, allow_file_sources=True)) is None
    )
    with pytest.raises(InvalidInputError, match="only network sources"):
        check_source_allowed("/srv/demo.mp4", strict)


def test_ffmpeg_may_open_only_what_the_scheme_needs() -> None:
    assert (
        protocol_whitelist("https://cdn.example/live.flv") == "http,https,httpproxy,tcp,tls,crypto"
    )
    assert protocol_whitelist("rtmp://live.example/app/key") == "rtmp,rtmps,tcp,tls"
    assert protocol_whitelist("srt://live.example:9000") == "srt"
    assert protocol_whitelist("/srv/demo.mp4") == "file"
    assert protocol_whitelist("concat:/a.ts|/b.ts") == "file"
    command = segmenter_command("ffmpeg", "rtsp://cam.example/1", Path("/tmp/x"), 2.0, False, 5)
    at = command.index("-protocol_whitelist")
    assert command[at + 1] == "rtsp,rtp,srtp,udp,tcp,tls" and at < command.index("-i")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Path:
    """Two seconds of MPEG-TS beside an HLS playlist, served over HTTP on 127.0.0.1."""
    directory = tmp_path_factory.mktemp("egress-media")
    clip = make_test_video(ffmpeg, directory / "clip.mp4", seconds=2)
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(clip), "-c", "copy", str(directory / "seg0.ts")],
        check=True,
        timeout=60,
    )
    return directory


def _serve(directory: Path, files: dict[str, str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path, "").encode()
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _playlist(segment_uri: str) -> str:
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\n{segment_uri}\n#EXT-X-ENDLIST\n"
    )


def test_ffmpeg_refuses_a_file_segment_in_an_http_playlist(
    media_dir: Path, ffmpeg: str, tmp_path: Path
) -> None:
    segment = media_dir / "seg0.ts"
    # The recorder follows an .m3u8 source itself (recorder/hls.py); ffmpeg given one
    # directly (a playlist behind another URL) must refuse what the playlist lists.
    httpd = _serve(media_dir, {"/live.m3u8": _playlist(f"file://{segment}")})
    try:
        source = f"http://127.0.0.1:{httpd.server_address[1]}/live.m3u8"
        command = segmenter_command(ffmpeg, source, tmp_path, 2.0, False, 5)
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "Protocol 'file' not on whitelist 'http,https,httpproxy,tcp,tls,crypto'" in done.stderr
    assert not list(tmp_path.glob("seg*.ts"))


def test_ffmpeg_refuses_a_concat_path_given_as_a_file(
    media_dir: Path, ffmpeg: str, tmp_path: Path
) -> None:
    segment = media_dir / "seg0.ts"
    command = segmenter_command(ffmpeg, f"concat:{segment}|{segment}", tmp_path, 2.0, False, 5)
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "Protocol 'concat' not on whitelist 'file'" in done.stderr
    # The same file as a path is read.
    command = segmenter_command(ffmpeg, str(segment), tmp_path, 2.0, False, 5)
    assert subprocess.run(command, capture_output=True, timeout=60, check=False).returncode == 0


def test_a_followed_playlist_may_list_only_segments_the_policy_allows(media_dir: Path) -> None:
    files = {
        "/file.m3u8": _playlist(f"file://{media_dir / 'seg0.ts'}"),
        "/inside.m3u8": _playlist("http://10.0.0.1/seg0.ts"),
        "/key.m3u8": _playlist("seg0.ts").replace(
            "#EXTINF", '#EXT-X-KEY:METHOD=AES-128,URI="http://169.254.169.254/k"\n#EXTINF'
        ),
        "/fine.m3u8": _playlist("seg0.ts"),
    }
    httpd = _serve(media_dir, files)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    policy = EgressPolicy(["127.0.0.1"])
    try:
        with pytest.raises(EgressRefusedError, match="must be http, https, not 'file'"):
            read_playlist(f"{base}/file.m3u8", 5, policy)
        with pytest.raises(EgressRefusedError, match=r"playlist segment host 10.0.0.1"):
            read_playlist(f"{base}/inside.m3u8", 5, policy)
        with pytest.raises(EgressRefusedError, match=r"169.254.169.254 is a link-local"):
            read_playlist(f"{base}/key.m3u8", 5, policy)
        assert read_playlist(f"{base}/fine.m3u8", 5, policy).segments[0].uri == f"{base}/seg0.ts"
        with pytest.raises(EgressRefusedError, match=r"source host 127.0.0.1 is a loopback"):
            read_playlist(f"{base}/fine.m3u8", 5, EgressPolicy())
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_playlist_redirect_is_checked_at_each_hop(media_dir: Path) -> None:
    inside = _Server(302, "http://10.0.0.1/live.m3u8")
    try:
        with pytest.raises(EgressRefusedError, match=r"10.0.0.1 is a private address"):
            read_playlist(
                f"http://127.0.0.1:{inside.port}/live.m3u8", 5, EgressPolicy(["127.0.0.1"])
            )
        assert len(inside.requests) == 1
    finally:
        inside.close()


@pytest.mark.parametrize("source", ["http://127.0.0.1:9/live.m3u8", "rtmp://127.0.0.1:9/live/key"])
def test_the_recorder_checks_the_policy_before_it_connects(home: Path, source: str) -> None:
    """A stream the API accepted is checked again when the recorder connects (its host
    may resolve elsewhere by now): refused before ffmpeg or a playlist read starts."""
    with open_stores(Settings(home=home, egress_allow=[])) as stores:
        recorder = StreamRecorder(stores.settings, stores.chain, "probe", source, max_duration=5)
        with pytest.raises(EgressRefusedError, match=r"source host 127\.0\.0\.1 is a loopback"):
            recorder.run()
