"""Feature extraction speed: the pipeline against a naive loop, same run.

The pipeline is :func:`analysis.metrics.features.extract_features`: decoding
in worker processes (torch DataLoader), batches, ``torch.inference_mode``,
channels-last for convolutional encoders. The naive loop decodes and
preprocesses every image in the main process and calls the model once per
batch under ``torch.no_grad``. Both use the same encoder, preprocessing and
batch size on the same images; the script prints images per second for each
and their ratio, and checks that both give the same features. The images are
cut into rounds, and each round runs both methods, alternating which goes
first, so that load from other processes falls on both alike.

    python benchmarks/metrics/bench_extract.py [--folder DIR] [--encoder NAME]
        [--batch-size 64] [--workers 2] [--limit N]

Encoders without local weights are randomly initialised (same cost).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from analysis.metrics.encoders import build_encoder
from analysis.metrics.features import extract_features, list_images
from analysis.metrics.preprocess import load_image, preprocess

DEFAULT_FOLDER = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def naive(encoder, root: Path, paths: list[str], batch_size: int) -> np.ndarray:
    """Decode in this process, one model call per batch."""
    out = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            batch = [
                preprocess(load_image(root / p), encoder.spec.preprocessing)
                for p in paths[start : start + batch_size]
            ]
            out.append(encoder(torch.stack(batch))["features"].numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder",
        type=Path,
        default=DEFAULT_FOLDER / "realism-bench",
        help="image folder (searched recursively) [realism-bench]",
    )
    parser.add_argument("--encoder", default="dinov2_vits14")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="use N images only")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    paths = list_images(args.folder)
    if args.limit:
        # spread over the sorted list, so both datasets are represented
        paths = paths[:: max(1, len(paths) // args.limit)][: args.limit]
    encoder = build_encoder(args.encoder, random_init=args.encoder != "pixels")
    print(
        f"encoder {args.encoder}, {len(paths)} images, batch {args.batch_size}, "
        f"{args.workers} workers, torch threads {torch.get_num_threads()}"
    )

    # warm-up (first-call allocations), not timed
    naive(encoder, args.folder, paths[: args.batch_size], args.batch_size)

    def pipeline(part: list[str]) -> np.ndarray:
        return extract_features(
            encoder,
            args.folder,
            part,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=False,
        )["features"]

    methods = {
        "naive": lambda part: naive(encoder, args.folder, part, args.batch_size),
        "pipeline": pipeline,
    }
    seconds = dict.fromkeys(methods, 0.0)
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in methods}
    for r, part in enumerate(np.array_split(np.asarray(paths), args.rounds)):
        order = list(methods) if r % 2 == 0 else list(reversed(methods))
        for name in order:
            start = time.perf_counter()
            outputs[name].append(methods[name](list(part)))
            seconds[name] += time.perf_counter() - start
    t_naive, t_fast = seconds["naive"], seconds["pipeline"]
    reference = np.concatenate(outputs["naive"])
    fast = np.concatenate(outputs["pipeline"])

    n = len(paths)
    print(f"naive loop     {n / t_naive:8.1f} images/s  ({t_naive:.1f} s)")
    print(f"pipeline       {n / t_fast:8.1f} images/s  ({t_fast:.1f} s)")
    print(f"speed-up       {t_naive / t_fast:8.2f}x")
    # Randomly initialised CNNs give features near 1e11 (no trained batch-norm
    # statistics), so the float32 rounding of either path is read relative.
    difference = np.abs(reference - fast).max()
    scale = max(float(np.abs(reference).max()), np.finfo(np.float32).tiny)
    print(
        f"max |difference| of features  {difference:.2e} "
        f"({difference / scale:.1e} of the largest |feature|)"
    )


if __name__ == "__main__":
    main()
