"""The default training path as the photo count grows (issue 33 §4, scale-up): wall time, time per photo, peak RSS
and the activation cache's disk, for 1,000, 4,000 and 16,000 photos.

    python benchmarks/scale_up.py [--counts 1000 4000 16000] [--set alpha=0.35 --set size=96]

The photos are ../shared's flowers and, past its 4,317, variants of them (mirrored, re-encoded at another JPEG
quality: other bytes, so the data check sees no duplicates), in nested sets (the 1,000 are among the 4,000).
Each count is one `edgetl train` process (MobileNetV2 0.35 @ 96 px by default, defaults otherwise, a cold scan
cache), timed end to end; its peak RSS is the kernel's (ru_maxrss of a wrapper that only waits for it); the
cache's disk is the largest size of the run's cache/ folder, polled while it trains. RSS includes the cache's
pages the process touched (memory-mapped): "RSS − cache" is what grows otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageOps
from shared_data import SHARED, settings, use_shared_keras_weights

WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def photos(target: Path, count: int) -> Path:
    """`count` distinct photos in class folders: flowers first, then its variants, in one fixed order."""
    source = sorted(p for p in (SHARED / "datasets" / "flowers").rglob("*.jpg"))
    for i in range(count):
        original = source[i % len(source)]
        path = target / original.parent.name / f"{i:06d}.jpg"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        copy = i // len(source)
        if copy == 0:
            path.symlink_to(original)
            continue
        with Image.open(original) as image:
            image = ImageOps.mirror(image) if copy % 2 else image
            image.convert("RGB").save(path, quality=90 - 3 * copy)
    return target


def cache_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def train(data: Path, out: Path, changes: dict) -> dict:
    options = [f"--{key.replace('_', '-')}={value}" for key, value in changes.items()]
    edgetl = str(Path(sys.executable).parent / "edgetl")  # the console script beside this Python
    command = [sys.executable, "-c", WRAPPER, edgetl, "train", str(data), "--out", str(out), *options]
    env = {**os.environ, "XDG_CACHE_HOME": tempfile.mkdtemp(prefix="scale-scan-"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    peak_cache, done = [0], threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            peak_cache[0] = max(peak_cache[0], cache_bytes(out.with_name(out.name + ".partial") / "cache"))

    threading.Thread(target=poll, daemon=True).start()
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    done.set()
    if result.returncode:
        raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
    rss_kb = int(result.stderr.split("MAXRSS_KB")[1].split()[0])
    meta = json.loads((out / "edgetl.json").read_text())
    found = {"wall": wall, "rss_mb": rss_kb / 1024, "cache_mb": peak_cache[0] / 1e6}
    return found | {"seconds": meta["training"]["seconds"], "top1": meta["metrics"]["test_top1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="A train option.")
    parser.add_argument("--work", type=Path, default=None, help="Where the photos and runs go (default: a temp dir).")
    args = parser.parse_args()
    use_shared_keras_weights()
    changes = {"alpha": 0.35, "size": 96} | settings(args.set)
    work = args.work or Path(tempfile.mkdtemp(prefix="edgetl-scale-"))
    rows = []
    for count in args.counts:
        data = photos(work / "photos" / str(count), count)
        found = train(data, work / "runs" / str(count), changes)
        rows.append((count, found))
        print(f"{count} photos: {json.dumps(found)}", flush=True)
    print(f"\n{changes}, defaults otherwise; one run each")
    print(f"{'photos':>7} {'wall s':>7} {'ms/photo':>9} {'peak RSS MB':>12} {'cache MB':>9} {'RSS - cache':>12} "
          f"{'cache KB/photo':>15} {'test top-1':>10}")  # fmt: skip
    for count, found in rows:
        print(
            f"{count:>7} {found['wall']:>7.1f} {1000 * found['wall'] / count:>9.2f} {found['rss_mb']:>12.0f} "
            f"{found['cache_mb']:>9.0f} {found['rss_mb'] - found['cache_mb']:>12.0f} "
            f"{1000 * found['cache_mb'] / count:>15.1f} {found['top1']:>10.1%}"
        )


if __name__ == "__main__":
    main()
