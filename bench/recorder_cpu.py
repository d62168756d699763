"""CPU per recorded stream: N recorders in one process on a live HLS source.

    .venv/bin/python bench/recorder_cpu.py --streams 1 3 --seconds 60

The publisher (the stand-in for the platform) runs in this process; the recorders run in
a child process whose own CPU time and its ffmpeg children's are what is measured.
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

CHILD = """
import json, resource, sys, time
from recorder.pool import RecorderPool
from storage.stores import open_stores
from core.settings import Settings
home, url, streams, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
stores = open_stores(Settings(home=home))
pool = RecorderPool(stores.settings, stores.chain)
began = time.monotonic()
names = [f"bench-{i}" for i in range(streams)]
for name in names:
    pool.start(name, url, max_duration=seconds)
summaries = [pool.wait(name) for name in names]
wall = time.monotonic() - began
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "wall": wall,
    "python_cpu": me.ru_utime + me.ru_stime,
    "ffmpeg_cpu": kids.ru_utime + kids.ru_stime,
    "segments": sum(s.segments for s in summaries if s),
    "max_rss_mb": me.ru_maxrss / 1024,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    ffmpeg = Settings().ffmpeg
    with tempfile.TemporaryDirectory() as tmp:
        video = make_test_video(ffmpeg, Path(tmp) / "source.mp4", seconds=60)
        source = LiveHlsSource(ffmpeg, video, Path(tmp) / "hls")
        source.start()
        try:
            for streams in args.streams:
                home = Path(tmp) / f"home-{streams}"
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(home), source.url, str(streams)]
                    + [str(args.seconds)],
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
                    f"segments={result['segments']} rss={result['max_rss_mb']:.0f}MB "
                    f"cpu_per_stream={per_stream:.2f}% of one core"
                )
                time.sleep(1)
        finally:
            source.stop()


if __name__ == "__main__":
    main()
