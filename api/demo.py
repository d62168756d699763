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

from api.keys import create_key
from indexer.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from recorder.demo import DEMO_PRODUCTS, LiveHlsSource, free_port, make_demo_source
from storage.products import parse_products
from storage.runtime import Evidence

DEMO_STREAM = "demo"
DEMO_STREAMER = "演示主播"
ALERT_PATH = "/demo-alerts"


@dataclass
class Demo:
    source: LiveHlsSource
    alerts: ThreadingHTTPServer
    keys: dict[str, str]

    def stop(self, ev: Evidence) -> None:
        stream = ev.catalog.get_stream(DEMO_STREAM)
        ev.catalog.want_recording(stream.id, False)
        self.source.stop()
        self.alerts.shutdown()
        self.alerts.server_close()


def start_demo(ev: Evidence, say: Callable[[str], None]) -> Demo:
    settings = ev.settings
    video = make_demo_source(settings, settings.home / "demo" / "demo-source.mp4")
    source = LiveHlsSource(settings.ffmpeg, video, settings.home / "demo" / "hls")
    source.start()
    stream_id = ev.chain.open_stream(DEMO_STREAM, source.url)
    ev.catalog.describe(stream_id, language="zh", streamer=DEMO_STREAMER)
    ev.catalog.set_products(stream_id, parse_products(DEMO_PRODUCTS))
    ev.catalog.want_recording(stream_id, True, source.url)  # the recorder stage starts it
    alerts, url, secret = _alert_receiver(say)
    for webhook in ev.catalog.webhooks(active_only=True):
        if webhook.url.endswith(ALERT_PATH):  # a receiver of an earlier demo run
            ev.catalog.deactivate_webhook(webhook.id)
    ev.catalog.add_webhook(url, secret)
    keys = {
        role: create_key(ev.catalog, role, f"demo {role}")[0]
        for role in ("reviewer", "compliance", "admin")
    }
    return Demo(source, alerts, keys)


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
            if signed:
                alert = json.loads(body)
                say(
                    f"[bold red]ALERT[/] {alert['stream']} +{alert['offset']:.1f}s"
                    f" banned term [bold]{alert['term']}[/] ({alert['category']},"
                    f" {alert['severity']}, {alert['match']}: heard {alert['heard']!r})"
                    f"  {alert['link']}"
                )

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}{ALERT_PATH}", secret
