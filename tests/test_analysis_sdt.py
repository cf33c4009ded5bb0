"""Signal detection: d' and criterion against hand-computed values.

Reference values were computed by hand from the log-linear formula and
checked once in R 4:

    sdt <- function(h, ns, fa, nn) {
      H <- (h + .5) / (ns + 1); F <- (fa + .5) / (nn + 1)
      c(qnorm(H) - qnorm(F), -(qnorm(H) + qnorm(F)) / 2)
    }
    print(sdt(91, 100, 20, 100), digits = 12)  #  2.147223051302 -0.242553046354
    print(sdt(100, 100, 0, 100), digits = 12)  #  5.15853627089   0
    print(sdt(30, 50, 10, 50), digits = 12)    #  1.069067181439  0.286258497613
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.readers import read_participants
from analysis.sdt import dprime, model_sdt, participant_sdt


def test_dprime_by_hand():
    # H = 91.5 / 101 = 0.905941, F = 20.5 / 101 = 0.202970
    # z(H) = 1.316165, z(F) = -0.831058
    d, c = dprime(91, 100, 20, 100)
    assert d == pytest.approx(2.147223051302, abs=1e-9)
    assert c == pytest.approx(-0.242553046354, abs=1e-9)


def test_dprime_perfect_participant_stays_finite():
    d, c = dprime(100, 100, 0, 100)
    assert d == pytest.approx(5.15853627089, abs=1e-9)
    assert c == pytest.approx(0.0, abs=1e-12)


def test_dprime_lean_towards_real_is_positive_criterion():
    d, c = dprime([30], [50], [10], [50])
    assert d[0] == pytest.approx(1.069067181439, abs=1e-9)
    assert c[0] == pytest.approx(0.286258497613, abs=1e-9)


def test_no_correction_gives_infinite_values():
    d, _ = dprime(100, 100, 0, 100, correction="none")
    assert np.isinf(d)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="loglinear, none"):
        dprime(1, 2, 1, 2, correction="hautus")
    with pytest.raises(ValueError, match="between 0 and their totals"):
        dprime(5, 4, 1, 4)
    with pytest.raises(ValueError, match="positive"):
        dprime(0, 0, 0, 4)


def test_participant_and_model_sdt_on_published_row(shared_data):
    path = shared_data / "anchors/dgm_eval_human_realism/per_participant/cifar10.csv"
    table = participant_sdt(read_participants(path))
    # participant_0: f_err_rt 0.09 -> 91 hits of 100; r_err_rt 0.20 -> 20 FAs.
    row = table[table["participant"] == "participant_0"].iloc[0]
    assert row["hits"] == 91 and row["false_alarms"] == 20
    assert row["d_prime"] == pytest.approx(2.147223051302, abs=1e-9)
    assert row["criterion"] == pytest.approx(-0.242553046354, abs=1e-9)

    summary = model_sdt(table).set_index("model")
    acgan = table[table["model"] == "ACGAN"]["d_prime"]
    assert summary.loc["ACGAN", "d_prime"] == pytest.approx(acgan.mean())
    assert summary.loc["ACGAN", "d_prime_sem"] == pytest.approx(
        acgan.std(ddof=1) / np.sqrt(len(acgan))
    )


def test_missing_real_trials_give_nan():
    table = pd.DataFrame(
        {
            "dataset": ["d", "d"],
            "participant": ["a", "b"],
            "model": ["m", "m"],
            "n_fake_trials": [10, 10],
            "fake_error_rate": [0.1, 0.2],
            "n_real_trials": [0, 10],
            "real_error_rate": [np.nan, 0.3],
        }
    )
    out = participant_sdt(table)
    assert np.isnan(out.loc[0, "d_prime"])
    d, c = dprime(8, 10, 3, 10)
    assert out.loc[1, "d_prime"] == pytest.approx(d)
    assert out.loc[1, "criterion"] == pytest.approx(c)
