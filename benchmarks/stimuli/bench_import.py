"""Benchmark: decoding in worker processes during an import.

``stimuli.importer.import_folder`` normalises files in a process pool when
there are many. This writes a folder of JPEG and PNG photographs (256 x 256
crops of scikit-image's sample photographs, repeated with small shifts to
reach the count), imports it with 1 worker (the baseline) and with 2 and all
CPUs, and prints the wall times and the speed-up against 1 worker, measured
in the same run. On a busy machine the speed-up is smaller.

Run from the repository root::

    python benchmarks/stimuli/bench_import.py --files 600
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from stimuli.demo import photo_crops
from stimuli.importer import import_folder


def write_folder(folder: Path, n_files: int) -> None:
    crops = photo_crops(256)
    for i in range(n_files):
        pixels = np.roll(crops[i % len(crops)].pixels, i // len(crops), axis=1)
        source = "real" if i % 2 else "model"
        fmt, suffix = ("JPEG", "jpg") if i % 3 else ("PNG", "png")
        path = folder / source / f"{i:05d}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--size", type=int, default=128, help="output side")
    args = parser.parse_args()

    cpus = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    print(
        f"{platform.processor() or platform.machine()}, {cpus} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_folder(folder, args.files)
        timings = {}
        for workers in sorted({1, 2, cpus or 1}):
            start = time.perf_counter()
            report = import_folder(
                folder, size=args.size, progress=False, workers=workers
            )
            timings[workers] = time.perf_counter() - start
            assert len(report.imported) + len(report.duplicates) == args.files
    print(f"{args.files} files to {args.size} px PNG (dry run, no store)")
    print(f"{'workers':>7} {'seconds':>8} {'files/s':>8} {'speed-up':>9}")
    for workers, seconds in timings.items():
        print(
            f"{workers:>7} {seconds:8.2f} {args.files / seconds:8.0f} "
            f"{timings[1] / seconds:9.2f}"
        )


if __name__ == "__main__":
    main()
