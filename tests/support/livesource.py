"""A real live source for end-to-end tests: the demo's live HLS publisher (ffmpeg -re,
served on 127.0.0.1), which tests kill and restart as a streamer's connection drops."""

from cli.demo_source import LiveHlsSource

__all__ = ["LiveHlsSource"]
