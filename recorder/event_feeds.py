"""Where ``livewitness events follow`` reads a connector's events from: a file it tails,
standard input, an HTTP(S) NDJSON stream, or a WebSocket sending one JSON object per
message. Each is an :class:`EventFeed`; :class:`EventFollower` feeds what they yield to
the one ingestion path (storage/events.py), reconnects a network feed with the
recorder's backoff (``reconnect_*`` settings) and notes the time a source was down as a
``gap`` event.

Network feeds connect only where the egress policy allows (core/egress.py), to the
addresses it checked: HTTP through :func:`core.egress_http.egress_client`, WebSockets
over a socket opened to the checked address (the Host header and TLS name stay the URL's).
"""

from __future__ import annotations

import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from core.egress import EgressPolicy
from core.egress_http import egress_client, refusal_in
from core.errors import InvalidInputError, SourceUnreachableError
from core.settings import Settings
from core.timeutil import utc_now
from storage.events import EventService, IngestReport

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how often a tailed file is looked at again, and a batch is taken
MAX_BATCH = 5000  # messages taken in one ingest


class FeedDown(Exception):
    """The source went away (closed, refused, dropped): reconnect after a wait."""


class EventFeed(Protocol):
    """One source of events: yields each event's bytes (a line or a message) until the
    source ends (returns) or goes down (raises :class:`FeedDown`); ``stop`` ends it."""

    @property
    def name(self) -> str: ...

    @property
    def reconnects(self) -> bool:  # a network source: try again when it ends or drops
        ...

    def messages(self, stop: threading.Event) -> Iterator[bytes]: ...


@dataclass
class FileFeed:
    """A file of NDJSON, read to its end and then (``follow``) tailed for new lines."""

    path: Path
    follow: bool = True
    reconnects: bool = False

    @property
    def name(self) -> str:
        return str(self.path)

    def messages(self, stop: threading.Event) -> Iterator[bytes]:
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise SourceUnreachableError(f"cannot open {self.path}: {exc.strerror}") from None
        with handle:
            pending = b""
            while not stop.is_set():
                chunk = handle.readline()
                if chunk.endswith(b"\n"):
                    yield pending + chunk[:-1]
                    pending = b""
                    continue
                pending += chunk  # a line still being written: wait for its end
                if not self.follow:
                    break
                time.sleep(POLL_SECONDS)
            if pending.strip() and not self.follow:
                yield pending


@dataclass
class StdinFeed:
    """Standard input, line by line, until it closes."""

    name: str = "standard input"
    reconnects: bool = False

    def messages(self, stop: threading.Event) -> Iterator[bytes]:
        for line in sys.stdin.buffer:
            if stop.is_set():
                return
            yield line.rstrip(b"\r\n")


@dataclass
class HttpFeed:
    """An HTTP(S) response of NDJSON that stays open (a streaming endpoint)."""

    url: str
    policy: EgressPolicy
    timeout: float
    reconnects: bool = True

    @property
    def name(self) -> str:
        return self.url

    def messages(self, stop: threading.Event) -> Iterator[bytes]:
        client = egress_client(self.policy, timeout=self.timeout, what="event source")
        try:
            with client.stream("GET", self.url) as response:
                if response.status_code != 200:
                    raise FeedDown(f"{self.url} answered HTTP {response.status_code}")
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    yield line.encode()
        except httpx.HTTPError as exc:
            refused = refusal_in(exc)
            if refused is not None:
                raise refused from None
            raise FeedDown(f"{self.url}: {exc}") from None
        finally:
            client.close()
        raise FeedDown(f"{self.url} closed the stream")


@dataclass
class WebSocketFeed:
    """A WebSocket (ws:// or wss://) sending one JSON object per message."""

    url: str
    policy: EgressPolicy
    timeout: float
    reconnects: bool = True

    @property
    def name(self) -> str:
        return self.url

    def messages(self, stop: threading.Event) -> Iterator[bytes]:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        try:
            target = self.policy.check_url(
                self.url,
                schemes=("ws", "wss"),
                what="event source",
                unresolvable=SourceUnreachableError,
            )
        except SourceUnreachableError as exc:  # a name that does not resolve (yet)
            raise FeedDown(str(exc)) from None
        port = target.port or (443 if target.scheme == "wss" else 80)
        try:
            sock = _connect_any(target.addresses, port, self.timeout)
            with connect(
                self.url,
                sock=sock,
                server_hostname=target.host if target.scheme == "wss" else None,
                proxy=None,
                open_timeout=self.timeout,
            ) as ws:
                while not stop.is_set():
                    try:
                        message = ws.recv(timeout=POLL_SECONDS)
                    except TimeoutError:
                        continue
                    yield message.encode() if isinstance(message, str) else message
        except (OSError, WebSocketException) as exc:
            raise FeedDown(f"{self.url}: {exc}") from None
        raise FeedDown(f"{self.url} closed the connection")


def _connect_any(addresses: tuple[str, ...], port: int, timeout: float) -> socket.socket:
    failed: OSError | None = None
    for address in addresses:  # an address literal: nothing is resolved again
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            failed = exc
    assert failed is not None
    raise failed


def open_feed(source: str, settings: Settings, follow: bool = True) -> EventFeed:
    """The feed for a SOURCE argument: ``-``, a URL (http, https, ws, wss) or a file."""
    if source == "-":
        return StdinFeed()
    scheme = urlsplit(source).scheme.lower() if "://" in source else ""
    policy = EgressPolicy.for_settings(settings)
    timeout = settings.connect_timeout_seconds
    if scheme in ("http", "https"):
        policy.check_url(source, what="event source", unresolvable=SourceUnreachableError)
        return HttpFeed(source, policy, timeout)
    if scheme in ("ws", "wss"):
        return WebSocketFeed(source, policy, timeout)
    if scheme:
        raise InvalidInputError(
            f"unsupported event source scheme {scheme!r}: a file, -, http(s):// or ws(s)://"
        )
    path = Path(source)
    if not path.is_file():
        raise SourceUnreachableError(f"cannot open {source} (no such file)")
    return FileFeed(path, follow=follow)


@dataclass
class FollowSummary:
    report: IngestReport
    batches: int = 0
    gaps: int = 0
    reconnects: int = 0


class EventFollower:
    """Reads a feed into a stream's events until the feed ends or ``stop`` is set,
    sealing batches as their windows close and all that is left at the end."""

    def __init__(
        self,
        service: EventService,
        stream_id: int,
        stream: str,
        feed: EventFeed,
        on_report: Callable[[IngestReport], None] | None = None,
    ) -> None:
        self.service = service
        self.stream_id = stream_id
        self.stream = stream
        self.feed = feed
        self.on_report = on_report
        self.summary = FollowSummary(IngestReport())
        self._line = 0
        self._connected = False  # this connection yielded a message

    def run(self, stop: threading.Event) -> FollowSummary:
        settings = self.service.stores.settings
        backoff = settings.reconnect_initial_seconds
        down_since: datetime | None = None
        try:
            while not stop.is_set():
                self._connected = False
                try:
                    self._read(stop, down_since)
                    if not self.feed.reconnects or stop.is_set():
                        break
                    raise FeedDown(f"{self.feed.name} ended")
                except FeedDown as exc:
                    if self._connected:  # it had worked: a new drop, a fresh backoff
                        down_since, backoff = None, settings.reconnect_initial_seconds
                    if down_since is None:
                        down_since = utc_now()
                    down = (utc_now() - down_since).total_seconds()
                    if down > settings.reconnect_give_up_seconds:
                        raise SourceUnreachableError(
                            f"{self.feed.name} was down for {down:.0f}s: {exc}"
                        ) from None
                    log.warning("%s: %s; again in %.1fs", self.stream, exc, backoff)
                    self.summary.reconnects += 1
                    if stop.wait(backoff):
                        break
                    backoff = min(backoff * 2, settings.reconnect_max_seconds)
        finally:
            self.summary.batches += len(self.service.seal(self.stream_id, self.stream, final=True))
        return self.summary

    def _read(self, stop: threading.Event, down_since: datetime | None) -> None:
        """One connection: read messages in a thread, ingest them in batches; a source
        back after being down since ``down_since`` gets that time noted as a gap."""
        messages: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4 * MAX_BATCH)

        def reader() -> None:
            try:
                for message in self.feed.messages(stop):
                    self._connected = True
                    messages.put(message)
                messages.put(None)
            except BaseException as exc:  # handed to the ingesting thread
                messages.put(exc)

        thread = threading.Thread(target=reader, name="event-feed", daemon=True)
        thread.start()
        noted_gap = down_since is None
        last_seal = time.monotonic()
        try:
            while True:
                taken: list[tuple[int, bytes]] = []
                ended: BaseException | bool | None = False
                try:
                    item = messages.get(timeout=POLL_SECONDS)
                    while True:
                        if item is None or isinstance(item, BaseException):
                            ended = item
                            break
                        self._line += 1
                        taken.append((self._line, item))
                        if len(taken) >= MAX_BATCH:
                            break
                        item = messages.get_nowait()
                except queue.Empty:
                    pass
                if taken and not noted_gap and down_since is not None:
                    # Back after a drop: the time between is a gap in the events.
                    self.service.record_gap(
                        self.stream_id, down_since, utc_now(), f"{self.feed.name} was down"
                    )
                    self.summary.gaps += 1
                    noted_gap = True
                if taken:
                    report = self.service.ingest_lines(self.stream_id, taken)
                    self.summary.report.add(report)
                    if self.on_report is not None:
                        self.on_report(report)
                if time.monotonic() - last_seal >= 1.0:
                    self.summary.batches += len(self.service.seal(self.stream_id, self.stream))
                    last_seal = time.monotonic()
                if ended is None:
                    return
                if isinstance(ended, BaseException):
                    raise ended
                if stop.is_set() and messages.empty():
                    return
        finally:
            thread.join(timeout=2 * POLL_SECONDS)
