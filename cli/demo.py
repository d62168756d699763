"""The bundled demo of ``livewitness serve --demo``: the committed Mandarin sales talk
is published as a live HLS stream on 127.0.0.1 and recorded like any live room, with a
product list, a reviewer key to sign in with, and a local webhook receiver that prints
each banned-word alert, so a new user sees the whole pipeline within a minute."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cli.demo_keys import demo_keys
from cli.demo_source import DEMO_PRODUCTS, LiveHlsSource, make_demo_source
from compliance.alerts import (
    BANNED_WORD_EVENT,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    SPIKE_EVENT,
    TIMESTAMP_HEADER,
    verify_signature,
)
from storage.products import parse_products
from storage.stores import Stores

DEMO_STREAM = "demo"
DEMO_STREAMER = "演示主播"
ALERT_PATH = "/demo-alerts"


@dataclass
class Demo:
    source: LiveHlsSource
    alerts: ThreadingHTTPServer
    keys: dict[str, str]

    def stop(self, stores: Stores) -> None:
        stream = stores.catalog.get_stream(DEMO_STREAM)
        stores.catalog.want_recording(stream.id, False)
        self.source.stop()
        self.alerts.shutdown()
        self.alerts.server_close()


def start_demo(stores: Stores, say: Callable[[str], None]) -> Demo:
    settings = stores.settings
    video = make_demo_source(settings, settings.home / "demo" / "demo-source.mp4")
    source = LiveHlsSource(settings.ffmpeg, video, settings.home / "demo" / "hls")
    source.start()
    stream_id = stores.chain.open_stream(DEMO_STREAM, source.url)
    stores.catalog.set_stream_details(stream_id, language="zh", streamer=DEMO_STREAMER)
    stores.catalog.set_products(stream_id, parse_products(DEMO_PRODUCTS))
    stores.catalog.want_recording(stream_id, True, source.url)  # the recorder stage starts it
    alerts, url, secret = _alert_receiver(say)
    for webhook in stores.catalog.webhooks(active_only=True):
        if webhook.url.endswith(ALERT_PATH):  # a receiver of an earlier demo run
            stores.catalog.deactivate_webhook(webhook.id)
    stores.catalog.add_webhook(url, secret)
    return Demo(source, alerts, demo_keys(stores))  # the last start's keys, still valid


def _alert_receiver(say: Callable[[str], None]) -> tuple[ThreadingHTTPServer, str, str]:
    """A webhook receiver that checks each signature and prints the alert."""
    secret = secrets.token_urlsafe(24)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            signed = verify_signature(
                secret,
                self.headers.get(TIMESTAMP_HEADER, ""),
                body,
                self.headers.get(SIGNATURE_HEADER, ""),
            )
            self.send_response(200 if signed else 401)
            self.end_headers()
            event = self.headers.get(EVENT_HEADER, "")
            if signed and event == SPIKE_EVENT:
                spike = json.loads(body)
                window = spike["window"]
                say(
                    f"[bold red]SPIKE[/] streamer {spike['streamer']}: {window['hits']} banned"
                    f" terms in the last hour ({window['hits_per_hour']:.0f}/h on air, baseline"
                    f" {spike['baseline']['hits_per_hour']:.0f}/h)"
                )
            elif signed and event == BANNED_WORD_EVENT:  # receipts are not shown
                alert = json.loads(body)
                say(
                    f"[bold red]ALERT[/] {alert['stream']} +{alert['offset']:.1f}s"
                    f" banned term [bold]{alert['term']}[/] ({alert['category']},"
                    f" {alert['severity']}, {alert['match']}: heard {alert['heard']!r})"
                    f"  {alert['link']}"
                )

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # the OS picks a free port
    port = int(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}{ALERT_PATH}", secret
