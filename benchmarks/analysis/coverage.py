"""Coverage of the reported 95% interval of the human error rate.

Draws simulated crossed studies (participants x images, between design as
published) whose per-model population error rates are known, computes each
interval from every study, and prints how often each covered the truth:

- glm_cluster2: the interval ``analysis fit`` reports for per-trial data
  (binomial GLM, two-way cluster-robust errors on participant and image);
- glm_cluster1: the same GLM clustered on participant only;
- participant_bootstrap: the interval reported for per-participant data;
- wilson_pooled: a Wilson interval on the pooled trials (the baseline that
  must not be reported).

Run from the repository root:

    python benchmarks/analysis/coverage.py            # 200 studies, ~minutes
    python benchmarks/analysis/coverage.py --studies 50
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.readers import main_trials, participants_from_trials
from analysis.scores import bootstrap_ci, cluster_glm, wilson_ci
from analysis.simulate import simulate_study

FAKE_RATES = (0.15, 0.25, 0.35, 0.45)
REAL_RATE = 0.25


def one_study(seed: int, args) -> pd.DataFrame:
    trials, truth = simulate_study(
        FAKE_RATES,
        real_error_rate=REAL_RATE,
        participants_per_model=args.participants,
        trials_per_participant=200,
        fake_images_per_model=args.fake_images,
        real_images=args.real_images,
        participant_sd=args.participant_sd,
        image_sd=args.image_sd,
        seed=seed,
    )
    main = main_trials(trials)
    rows = []
    for outcome, subset in (
        ("error_rate", main),
        ("fake_error_rate", main[~main["is_real"].astype(bool)]),
        ("real_error_rate", main[main["is_real"].astype(bool)]),
    ):
        two_way = cluster_glm(subset).set_index("model")
        one_way = cluster_glm(subset, image="participant").set_index("model")
        counts = subset.groupby("model")["error"].agg(["sum", "size"])
        low, high = wilson_ci(counts["sum"], counts["size"])
        wilson = pd.DataFrame({"ci_low": low, "ci_high": high}, index=counts.index)
        methods = {
            "glm_cluster2": two_way,
            "glm_cluster1": one_way,
            "wilson_pooled": wilson,
        }
        if outcome == "error_rate":
            people = participants_from_trials(main)
            boot = bootstrap_ci(people, n_boot=2000, seed=seed).set_index("model")
            methods["participant_bootstrap"] = boot
        for model, true_rate in zip(truth["model"], truth[outcome], strict=True):
            for method, table in methods.items():
                rows.append(
                    {
                        "outcome": outcome,
                        "model": model,
                        "true_rate": true_rate,
                        "method": method,
                        "covered": table.loc[model, "ci_low"]
                        <= true_rate
                        <= table.loc[model, "ci_high"],
                        "width": table.loc[model, "ci_high"]
                        - table.loc[model, "ci_low"],
                    }
                )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--participants", type=int, default=25)
    parser.add_argument("--fake-images", type=int, default=400)
    parser.add_argument("--real-images", type=int, default=1000)
    parser.add_argument("--participant-sd", type=float, default=0.45)
    parser.add_argument("--image-sd", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    results = pd.concat(
        [
            one_study(args.seed + i, args)
            for i in tqdm(range(args.studies), desc="studies", unit="study")
        ],
        ignore_index=True,
    )
    elapsed = time.perf_counter() - start

    print(f"python {platform.python_version()}, {args.studies} simulated studies")
    print(
        f"design: {len(FAKE_RATES)} models x {args.participants} participants x 200 "
        f"trials (100 generated, 100 real); {args.fake_images} generated images per "
        f"model, {args.real_images} real images shared; participant SD "
        f"{args.participant_sd}, image SD {args.image_sd} (logit scale)"
    )
    mc_se = np.sqrt(0.95 * 0.05 / args.studies)
    print(f"Monte Carlo SE of a coverage near 0.95: {mc_se:.3f}\n")
    for outcome, part in results.groupby("outcome", sort=False):
        part = part.assign(true_rate=part["true_rate"].map("{:.3f}".format))
        table = part.pivot_table(
            index=["model", "true_rate"],
            columns="method",
            values="covered",
            aggfunc="mean",
        )
        widths = part.groupby("method")["width"].mean()
        table.loc[("all models", ""), :] = part.groupby("method")["covered"].mean()
        order = [
            m
            for m in (
                "glm_cluster2",
                "glm_cluster1",
                "participant_bootstrap",
                "wilson_pooled",
            )
            if m in table.columns
        ]
        print(f"coverage of the 95% interval of {outcome}:")
        print(table[order].to_string(float_format=lambda v: f"{v:.3f}"))
        print(
            "mean width: "
            + ", ".join(f"{m} {widths[m]:.4f}" for m in order)
            + f"; width ratio glm_cluster2 / wilson_pooled = "
            f"{widths['glm_cluster2'] / widths['wilson_pooled']:.2f}\n"
        )
    print(f"total time {elapsed:.0f} s")


if __name__ == "__main__":
    main()
