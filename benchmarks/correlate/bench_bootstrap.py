"""Benchmark: the vectorised two-level bootstrap of ``analysis correlate``.

A simulated study at the published scale (41 models, about 1,000
participants, 14 metrics, Spearman, Kendall and Pearson) is bootstrapped
9,999 times, models and participants within models resampled. The same work
done by a plain Python loop over resamples (participant means with numpy,
coefficients with ``scipy.stats``) is timed on fewer resamples and scaled to
the same count; the ratio is printed.

Run from the repository root::

    python benchmarks/correlate/bench_bootstrap.py
    python benchmarks/correlate/bench_bootstrap.py --layout single
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd
from scipy import stats

from analysis import correlate as corr
from analysis.bootstrap import (
    METHODS,
    Participants,
    bootstrap_block,
    dataset_rng,
    resample_blocks,
)

# Models per dataset in the published study (Stein et al. 2023).
PUBLISHED = {"cifar10": 13, "imagenet256": 11, "ffhq256": 9, "lsun256": 8}
N_METRICS = 14
SCIPY = {
    "spearman": lambda x, y: stats.spearmanr(x, y).statistic,
    "kendall": lambda x, y: stats.kendalltau(x, y).statistic,
    "pearson": lambda x, y: stats.pearsonr(x, y).statistic,
}


def simulate(layout: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-participant error rates and a tidy metric table."""
    rng = np.random.default_rng(seed)
    sizes = PUBLISHED if layout == "published" else {"all": 41}
    people, metrics = [], []
    for dataset, n_models in sizes.items():
        truth = rng.uniform(0.05, 0.45, n_models)
        for m in range(n_models):
            n = int(rng.choice([25, 25, 25, 26, 27]))
            errors = rng.binomial(200, truth[m], size=n) / 200
            people.append(
                pd.DataFrame(
                    {
                        "dataset": dataset,
                        "participant": [f"{dataset}_{m}_{i}" for i in range(n)],
                        "model": f"model_{m}",
                        "error_rate": errors,
                    }
                )
            )
        for k in range(N_METRICS):
            # Metrics from good to useless, some on a coarse grid (ties).
            noise = rng.normal(0, 0.02 + 0.05 * k, n_models)
            value = -(truth + noise) if k % 2 else truth + noise
            value = np.round(value, 2) if k % 3 == 0 else value
            metrics.append(
                pd.DataFrame(
                    {
                        "dataset": dataset,
                        "model": [f"model_{m}" for m in range(n_models)],
                        "encoder": "sim",
                        "weights": "none",
                        "metric": f"metric_{k:02d}",
                        "value": value,
                    }
                )
            )
    return pd.concat(people, ignore_index=True), pd.concat(metrics, ignore_index=True)


def dataset_arrays(people: pd.DataFrame, metrics: pd.DataFrame):
    """Per dataset: human means (M,), metric values (K, M), Participants."""
    out = {}
    for dataset, group in people.groupby("dataset", sort=False):
        models = list(dict.fromkeys(group["model"]))
        wide = metrics[metrics["dataset"] == dataset].pivot(
            index="model", columns="metric", values="value"
        )
        values = wide.loc[models].to_numpy().T
        participants = Participants.from_groups(
            [group.loc[group["model"] == m, "error_rate"].to_numpy() for m in models]
        )
        out[dataset] = (participants.means(), values, participants)
    return out


def vectorised(arrays, n_boot: int, seed: int) -> float:
    """Seconds for the bootstrap core: every block of every dataset."""
    start = time.perf_counter()
    for dataset, (human, values, participants) in arrays.items():
        for number, block in enumerate(resample_blocks(n_boot)):
            rng = dataset_rng(seed, dataset, number)
            size = block.stop - block.start
            bootstrap_block(rng, size, human, values, METHODS, participants)
    return time.perf_counter() - start


def plain_loop(arrays, n_boot: int, seed: int) -> float:
    """Seconds for the same work, one resample, metric and method at a time."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _dataset, (_human, values, participants) in arrays.items():
        n_models = values.shape[1]
        for _ in range(n_boot):
            slots = rng.integers(0, n_models, size=n_models)
            human = np.empty(n_models)
            for j, model in enumerate(slots):
                lo = participants.offsets[model]
                own = participants.values[lo : lo + participants.counts[model]]
                human[j] = own[rng.integers(0, own.size, size=own.size)].mean()
            for k in range(values.shape[0]):
                metric = values[k, slots]
                if np.ptp(metric) == 0 or np.ptp(human) == 0:
                    continue
                for method in METHODS:
                    SCIPY[method](human, metric)
    return time.perf_counter() - start


def end_to_end(people: pd.DataFrame, metrics: pd.DataFrame, n_boot: int, seed: int):
    """Seconds for correlate() itself: point estimates, CIs, BH, comparisons."""
    human = corr.HumanData("participants", people)
    start = time.perf_counter()
    result = corr.correlate(human, metrics, n_boot=n_boot, seed=seed, progress=False)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resamples", type=int, default=9999)
    parser.add_argument("--loop-resamples", type=int, default=50)
    parser.add_argument(
        "--layout", choices=["published", "single"], default="published"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    people, metrics = simulate(args.layout, args.seed)
    arrays = dataset_arrays(people, metrics)
    n_models = sum(v[1].shape[1] for v in arrays.values())
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    print(
        f"layout {args.layout}: {len(arrays)} dataset(s), {n_models} models, "
        f"{len(people)} participants, {N_METRICS} metrics, "
        f"methods {', '.join(METHODS)}"
    )

    # Interleaved repeats, best of each: other work on the machine slows
    # whichever runs at the time, and the minimum is the least disturbed.
    fast_times, slow_times = [], []
    for _ in range(args.repeats):
        fast_times.append(vectorised(arrays, args.resamples, args.seed))
        slow_times.append(plain_loop(arrays, args.loop_resamples, args.seed))
    fast, slow = min(fast_times), min(slow_times)
    scaled = slow * args.resamples / args.loop_resamples
    print(f"vectorised bootstrap, {args.resamples} resamples: {fast:.2f} s")
    print(
        f"plain Python loop, {args.loop_resamples} resamples: {slow:.2f} s "
        f"-> {scaled:.1f} s scaled to {args.resamples}"
    )
    print(f"ratio (loop / vectorised): {scaled / fast:.0f}x")

    seconds, result = end_to_end(people, metrics, args.resamples, args.seed)
    print(
        f"correlate() end to end, {args.resamples} resamples: {seconds:.2f} s "
        f"({len(result.correlations)} correlations, "
        f"{len(result.comparisons)} paired comparisons)"
    )


if __name__ == "__main__":
    main()
