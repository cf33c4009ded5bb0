"""Speed of ``analysis fit`` at the published scale, and of the mixed fit.

1. Simulates a study shaped like the published one: 4 datasets with 13, 11,
   9 and 8 models and the published participant counts per model (1,036
   participants, 200 trials each: 207,200 trials), about 1,450 generated
   images per model and 10,000 real images per dataset, and writes it as a
   per-trial export CSV.
2. Times, as subprocesses, ``analysis fit`` without and with ``--mixed``,
   beside a baseline measured in the same run: reading the export with
   ``pandas.read_csv``.
3. Times the mixed fit alone (``analysis.mixed.mixed_fit``) on one dataset
   of growing size, from 12,000 to 207,200 trials, and prints each time as a
   ratio to the smallest.

Run from the repository root (tens of minutes on a busy 2-core machine):

    python benchmarks/analysis/speed.py
    python benchmarks/analysis/speed.py --skip-growth      # steps 1-2 only
    python benchmarks/analysis/speed.py --sizes 12000 50000
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels

from analysis.readers import main_trials
from analysis.simulate import simulate_study

# Participants per model in the published per-participant files.
PUBLISHED_DESIGN = {
    "cifar10": [25, 25, 25, 27, 25, 25, 25, 25, 25, 25, 25, 25, 26],
    "imagenet256": [25, 25, 25, 25, 25, 27, 25, 26, 25, 26, 25],
    "ffhq256": [25, 25, 25, 25, 25, 25, 25, 25, 27],
    "lsun256": [25, 25, 25, 26, 25, 25, 26, 25],
}
FAKE_IMAGES = 1450
REAL_IMAGES = 10_000


def simulate_dataset(name: str, sizes: list[int], seed: int) -> pd.DataFrame:
    trials, _ = simulate_study(
        np.linspace(0.1, 0.45, len(sizes)),
        real_error_rate=0.22,
        participants_per_model=sizes,
        fake_images_per_model=FAKE_IMAGES,
        real_images=REAL_IMAGES,
        dataset=name,
        seed=seed,
    )
    return trials


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def growth_design(n_trials: int) -> list[int]:
    """Participants per model for a one-dataset study of about n_trials."""
    if n_trials >= 207_200:
        return [n for sizes in PUBLISHED_DESIGN.values() for n in sizes]
    participants = n_trials // 200
    n_models = max(3, min(41, participants // 25))
    base, extra = divmod(participants, n_models)
    return [base + (i < extra) for i in range(n_models)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[12_000, 25_000, 50_000, 100_000, 207_200],
        help="trial counts for the mixed-fit growth (one dataset each)",
    )
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas "
        f"{pd.__version__}, statsmodels {statsmodels.__version__}, "
        f"{os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_fit:
            frames = [
                simulate_dataset(name, sizes, args.seed + i)
                for i, (name, sizes) in enumerate(PUBLISHED_DESIGN.items())
            ]
            export = folder / "trials.csv"
            trials = pd.concat(frames, ignore_index=True)
            trials.to_csv(export, index=False)
            people = len(trials[["dataset", "participant"]].drop_duplicates())
            models = len(trials[["dataset", "model"]].drop_duplicates())
            images = len(trials[["dataset", "stimulus"]].drop_duplicates())
            print(
                f"\nexport: {len(trials):,} trials, {people:,} participants, "
                f"{models} models, {images:,} images in 4 datasets, "
                f"{export.stat().st_size / 1e6:.0f} MB"
            )
            start = time.perf_counter()
            pd.read_csv(export)
            baseline = time.perf_counter() - start
            # The installed console script, as a user would run it.
            fit = [str(Path(sys.executable).parent / "analysis"), "fit", str(export)]
            plain = timed([*fit, "--out", str(folder / "plain")])
            mixed = timed([*fit, "--out", str(folder / "mixed"), "--mixed"])
            print(f"baseline pandas.read_csv of the export: {baseline:7.1f} s")
            print(
                f"analysis fit:                           {plain:7.1f} s "
                f"({plain / baseline:5.1f} x baseline)"
            )
            print(
                f"analysis fit --mixed:                   {mixed:7.1f} s "
                f"({mixed / baseline:5.1f} x baseline, {mixed / plain:.1f} x fit)"
            )

    if args.skip_growth:
        return
    from analysis import mixed

    # Count the optimiser's gradient evaluations: unlike seconds, they do not
    # depend on the load of the machine.
    counted = mixed.VectorizedBinomialBayesMixedGLM.vb_elbo_grad
    calls = [0]

    def counting(self, vb_mean, vb_sd):
        calls[0] += 1
        return counted(self, vb_mean, vb_sd)

    mixed.VectorizedBinomialBayesMixedGLM.vb_elbo_grad = counting
    print(
        "\nmixed fit alone, one dataset (correct ~ model + (1|participant) + (1|image))"
    )
    print(
        f"{'trials':>9} {'models':>6} {'particip.':>9} {'images':>7} "
        f"{'seconds':>8} {'x first':>8} {'gradients':>9} {'ms/grad':>8}"
    )
    first = None
    for n_trials in args.sizes:
        sizes = growth_design(n_trials)
        trials = main_trials(simulate_dataset("growth", sizes, args.seed))
        calls[0] = 0
        start = time.perf_counter()
        mixed.mixed_fit(trials, seed=args.seed, progress=False)
        elapsed = time.perf_counter() - start
        first = first or elapsed
        print(
            f"{len(trials):>9,} {len(sizes):>6} {sum(sizes):>9,} "
            f"{trials['stimulus'].nunique():>7,} {elapsed:>8.1f} "
            f"{elapsed / first:>8.1f} {calls[0]:>9,} "
            f"{1e3 * elapsed / calls[0]:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
