"""Benchmark: the PNG encoder setting of the normalisation pipeline.

Every stimulus is re-encoded as PNG with one fixed zlib level
(``stimuli.normalize.PNG_COMPRESS_LEVEL``). This times the encoder at zlib
levels 1, 3, 6 (zlib's default) and 9 on photographs and prints time and file
size as ratios against level 6, measured in the same run. It also times the
whole ``normalize_image`` on JPEG input.

The images are 256 x 256 crops of scikit-image's sample photographs (always
available), or with ``--data`` the real ImageNet-256 PNGs of realism-bench.

Run from the repository root::

    python benchmarks/stimuli/bench_normalize.py
    python benchmarks/stimuli/bench_normalize.py --data ../shared/data/realism-bench
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from pathlib import Path

from PIL import Image

from stimuli.demo import photo_crops
from stimuli.normalize import PNG_COMPRESS_LEVEL, decode_image, normalize_image

LEVELS = (1, 3, 6, 9)
BASELINE = 6


def load_images(data: Path | None, limit: int) -> list[Image.Image]:
    if data is None:
        return [Image.fromarray(c.pixels) for c in photo_crops(256)][:limit]
    files = sorted((data / "imagenet256" / "real").glob("*.png"))[:limit]
    return [decode_image(f.read_bytes()).image for f in files]


def time_encoder(
    images: list[Image.Image], level: int, repeats: int
) -> tuple[float, float]:
    """Return (best seconds per image over repeats, mean bytes per image)."""
    best = float("inf")
    sizes = []
    for _ in range(repeats):
        sizes = []
        start = time.perf_counter()
        for image in images:
            buffer = io.BytesIO()
            image.save(buffer, "PNG", compress_level=level, optimize=False)
            sizes.append(buffer.tell())
        best = min(best, (time.perf_counter() - start) / len(images))
    return best, statistics.fmean(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="realism-bench folder")
    parser.add_argument("--limit", type=int, default=100, help="images (default 100)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    images = load_images(args.data, args.limit)
    print(
        f"{platform.machine()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{len(images)} images of {images[0].width}x{images[0].height} "
        f"({'realism-bench' if args.data else 'scikit-image crops'}); "
        f"pipeline level {PNG_COMPRESS_LEVEL}"
    )
    results = {level: time_encoder(images, level, args.repeats) for level in LEVELS}
    base_time, base_size = results[BASELINE]
    print(
        f"{'level':>5} {'ms/image':>9} {'KiB/image':>10} "
        f"{'time vs 6':>10} {'size vs 6':>10}"
    )
    for level, (seconds, size) in results.items():
        print(
            f"{level:>5} {seconds * 1e3:9.2f} {size / 1024:10.1f} "
            f"{seconds / base_time:10.2f} {size / base_size:10.3f}"
        )

    jpegs = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    start = time.perf_counter()
    for data in jpegs:
        normalize_image(data, size=128)
    per_image = (time.perf_counter() - start) / len(jpegs)
    print(f"normalize_image (JPEG in, 128 px PNG out): {per_image * 1e3:.2f} ms/image")


if __name__ == "__main__":
    main()
