"""Exclusion rules: every drop has a reason code and is counted."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.exclude import REASONS, ExclusionRules, apply_exclusions


def person(name, *, status="completed", checks_wrong=0, rt=800.0, **kwargs):
    """Rows for one participant: 4 main trials and 3 attention checks."""
    unanswered = kwargs.get("unanswered", 0)
    invalid = kwargs.get("timing_invalid", 0)
    rows = []
    for i in range(4):
        answered = i < 4 - unanswered
        rows.append(
            {
                "dataset": "d",
                "participant": name,
                "session_status": status,
                "model": "m",
                "stimulus": f"img{i}",
                "is_real": i % 2 == 0,
                "kind": "main",
                "response": ("real" if i % 2 == 0 else "generated")
                if answered
                else None,
                "rt_ms": rt if answered else None,
                "timing_invalid": i < invalid,
            }
        )
    for i in range(3):
        rows.append(
            {
                "dataset": "d",
                "participant": name,
                "session_status": status,
                "model": "m",
                "stimulus": f"check{i}",
                "is_real": True,
                "kind": "check",
                "response": "generated" if i < checks_wrong else "real",
                "rt_ms": rt,
                "timing_invalid": False,
            }
        )
    return rows


@pytest.fixture
def trials():
    rows = (
        person("ok1")
        + person("ok2")
        + person("checks1", checks_wrong=1)
        + person("checks2", checks_wrong=2)
        + person("excluded", status="excluded")
        + person("returned", status="returned", unanswered=2)
        + person("fast", rt=150.0)
        + person("fast_and_checks", rt=150.0, checks_wrong=3)
        + person("flicker", timing_invalid=1)
    )
    frame = pd.DataFrame(rows)
    frame["response"] = frame["response"].astype("string")
    truth = frame["is_real"].map({True: "real", False: "generated"})
    frame["correct"] = (frame["response"] == truth).astype("boolean")
    return frame


def counts(table: pd.DataFrame) -> dict[str, tuple[int, int]]:
    return {
        r.reason: (r.n_participants, r.n_trials)
        for r in table.itertuples()
        if r.n_participants or r.n_trials
    }


def test_default_rules(trials):
    with pytest.warns(UserWarning, match="exclusions: d/failed_checks"):
        result = apply_exclusions(trials)
    assert list(result.table["reason"]) == list(REASONS)
    assert result.table["applied"].all()
    # Each participant under the first reason that applies to them.
    assert counts(result.table) == {
        "failed_checks": (2, 8),
        "session_excluded": (1, 4),
        "incomplete_session": (1, 4),
        "too_fast": (1, 4),
        "timing_invalid": (1, 1),
    }
    kept = result.trials[result.trials["kind"] == "main"]
    assert sorted(kept["participant"].unique()) == ["checks1", "flicker", "ok1", "ok2"]
    assert len(kept) == 15
    reasons = result.participants.set_index("participant")["reason"]
    assert reasons["fast_and_checks"] == "failed_checks"


def test_rules_can_be_relaxed(trials):
    rules = ExclusionRules(
        max_failed_checks=3,
        min_median_rt_ms=0,
        drop_timing_invalid=False,
        keep_incomplete=True,
    )
    with pytest.warns(UserWarning, match="exclusions"):
        result = apply_exclusions(trials, rules)
    assert counts(result.table) == {"session_excluded": (1, 4), "unanswered": (1, 2)}
    applied = result.table.set_index("reason")["applied"]
    assert not applied["incomplete_session"] and not applied["too_fast"]
    assert not applied["timing_invalid"]
    rule = result.table.set_index("reason")["rule"]
    assert rule["failed_checks"] == "checks failed > 3"
    assert rule["too_fast"] == "off"
    main = result.trials[result.trials["kind"] == "main"]
    assert len(main) == 9 * 4 - 4 - 2  # 9 participants, 4 main trials each


def test_missing_columns_are_reported_not_guessed(trials):
    bare = trials.drop(columns=["session_status", "rt_ms", "timing_invalid"])
    with pytest.warns(UserWarning) as record:
        result = apply_exclusions(bare)
    messages = " | ".join(str(w.message) for w in record)
    assert "incomplete_session" in messages and "'session_status'" in messages
    assert "too_fast" in messages and "'rt_ms'" in messages
    assert "timing_invalid" in messages
    applied = result.table.set_index("reason")["applied"]
    assert applied["failed_checks"] and not applied["too_fast"]
    # Unanswered trials are still dropped and counted.
    assert counts(result.table)["unanswered"] == (1, 2)


def test_bad_settings_name_the_allowed_values():
    with pytest.raises(ValueError, match="0 or more"):
        ExclusionRules(max_failed_checks=-1)
    with pytest.raises(ValueError, match="0 or more"):
        ExclusionRules(min_median_rt_ms=-5)
