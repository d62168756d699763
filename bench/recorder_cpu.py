"""CPU per recorded stream: N recorders in one process on a live HLS source.

    .venv/bin/python bench/recorder_cpu.py --streams 1 3 --seconds 60
    .venv/bin/python bench/recorder_cpu.py --streams 4 --seconds 60 --tsa --sign-interval 10

The publisher (the stand-in for the platform) runs in this process; the recorders run in
a child process whose own CPU time and its ffmpeg children's are what is measured.

``--tsa`` also runs a local RFC 3161 TSA here (``openssl ts -reply``, tests/support/tsa.py)
and the stamper thread in the recorders' process, as ``livewitness recorder`` does, so
the figure includes requesting, checking and storing every token (the TSA's own work is
this process's, not the recorders'). ``--sign-interval`` signs live heads more often
than the default 300 s, so that a 60 s run stamps more than the final heads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import Settings
from tests.support.livesource import LiveHlsSource
from tests.support.media import make_test_video
from tests.support.tsa import LocalTsa, make_tsa_pki

CHILD = """
import json, resource, sys, threading, time
from recorder.pool import RecorderPool
from storage.stores import open_stores
from core.settings import Settings
home, url, streams, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
options = json.loads(sys.argv[5])
stores = open_stores(Settings(home=home, **options))
stop = threading.Event()
stamping = None
stamper_cpu = [0.0]
if stores.settings.tsa_urls:
    from storage.timestamping import Stamper
    stamper = Stamper(stores.settings, stores.catalog, stores.blobs)
    def stamp():
        stamper.follow(stop)
        stamper_cpu[0] = time.thread_time()  # the stamper thread's own CPU, all of it
    stamping = threading.Thread(target=stamp)
    stamping.start()
pool = RecorderPool(stores.settings, stores.chain)
began = time.monotonic()
names = [f"bench-{i}" for i in range(streams)]
for name in names:
    pool.start(name, url, max_duration=seconds)
summaries = [pool.wait(name) for name in names]
wall = time.monotonic() - began
if stamping is not None:  # the final heads' tokens, then stop
    ids = [stores.catalog.get_stream(n).id for n in names]
    signed = sum(len(stores.catalog.signatures(i)) for i in ids)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sum(len(stores.catalog.timestamp_tokens(i)) for i in ids) >= signed:
            break
        time.sleep(0.2)
    stop.set()
    stamping.join()
    wall = time.monotonic() - began
ids = [stores.catalog.get_stream(n).id for n in names]
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "wall": wall,
    "python_cpu": me.ru_utime + me.ru_stime,
    "ffmpeg_cpu": kids.ru_utime + kids.ru_stime,
    "segments": sum(s.segments for s in summaries if s),
    "signatures": sum(len(stores.catalog.signatures(i)) for i in ids),
    "tokens": sum(len(stores.catalog.timestamp_tokens(i)) for i in ids),
    "stamper_cpu": stamper_cpu[0],
    "max_rss_mb": me.ru_maxrss / 1024,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tsa", action="store_true", help="stamp every signed head")
    parser.add_argument("--sign-interval", type=float, default=None, help="seconds")
    args = parser.parse_args()
    ffmpeg = Settings().ffmpeg
    with tempfile.TemporaryDirectory() as tmp:
        video = make_test_video(ffmpeg, Path(tmp) / "source.mp4", seconds=60)
        source = LiveHlsSource(ffmpeg, video, Path(tmp) / "hls")
        source.start()
        tsa = None
        options: dict[str, object] = {}
        if args.sign_interval:
            options["sign_interval_seconds"] = args.sign_interval
        if args.tsa:
            pki = make_tsa_pki(Path(tmp) / "tsa")
            tsa = LocalTsa(pki).start()
            options.update(tsa_urls=[tsa.url], tsa_ca_bundle=str(pki.ca_pem))
        try:
            for streams in args.streams:
                home = Path(tmp) / f"home-{streams}"
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(home), source.url, str(streams)]
                    + [str(args.seconds), json.dumps(options)],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                cpu = result["python_cpu"] + result["ffmpeg_cpu"]
                per_stream = 100 * cpu / result["wall"] / streams
                print(
                    f"streams={streams} wall={result['wall']:.1f}s "
                    f"python_cpu={result['python_cpu']:.2f}s "
                    f"ffmpeg_cpu={result['ffmpeg_cpu']:.2f}s "
                    f"segments={result['segments']} signatures={result['signatures']} "
                    f"tokens={result['tokens']} rss={result['max_rss_mb']:.0f}MB "
                    f"cpu_per_stream={per_stream:.2f}% of one core"
                    + (
                        f" stamper_cpu={result['stamper_cpu']:.3f}s"
                        f" ({100 * result['stamper_cpu'] / result['wall'] / streams:.3f}%"
                        " of one core per stream)"
                        if args.tsa
                        else ""
                    )
                )
                time.sleep(1)
        finally:
            if tsa is not None:
                tsa.stop()
            source.stop()


if __name__ == "__main__":
    main()
