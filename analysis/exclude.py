"""Which participants and trials are left out of the analysis, and why.

Every exclusion has a reason code, and every drop is counted: the table from
:func:`apply_exclusions` lists each rule, whether the data allowed it to be
applied, and how many participants and main trials it removed.

Reason codes, in the order they are applied
-------------------------------------------
Participant level (a participant is counted under the first reason that
applies to them, so the counts add up):

``failed_checks``
    More attention checks answered wrongly than ``max_failed_checks``
    (default 1, the published protocol's allowance).
``session_excluded``
    The session's status is ``excluded`` (set on the server by a researcher).
``incomplete_session``
    The session's status is anything but ``completed`` (active, returned,
    timed out, abandoned, screened out); kept with ``keep_incomplete``.
``too_fast``
    The median response time of the participant's answered main trials is
    below ``min_median_rt_ms`` (default 200 ms): faster than a considered
    judgement of a 500 ms exposure allows. 0 switches the rule off.

Trial level (on the participants who remain):

``unanswered``
    A main trial without a response (only incomplete sessions have them).
``timing_invalid``
    The achieved exposure differed from the intended one (the server's
    ``timing_invalid`` flag); kept with ``drop_timing_invalid=False``.

A rule whose column is absent from the data (for example ``rt_ms``) is not
applied; its row says so (``applied`` is False) and a warning names it.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

REASONS = (
    "failed_checks",
    "session_excluded",
    "incomplete_session",
    "too_fast",
    "unanswered",
    "timing_invalid",
)
PARTICIPANT_REASONS = REASONS[:4]

EXCLUSION_COLUMNS = (
    "dataset",
    "reason",
    "level",
    "rule",
    "applied",
    "n_participants",
    "n_trials",
)


@dataclass(frozen=True)
class ExclusionRules:
    """Settings of the exclusion rules (see the module docstring).

    Parameters
    ----------
    max_failed_checks : int
        Most attention checks a participant may fail and stay in.
    min_median_rt_ms : float
        Participants whose median response time (ms) is below this are
        dropped as too fast; 0 disables the rule.
    drop_timing_invalid : bool
        Drop trials flagged ``timing_invalid``.
    keep_incomplete : bool
        Keep the answered trials of sessions that did not complete.
    """

    max_failed_checks: int = 1
    min_median_rt_ms: float = 200.0
    drop_timing_invalid: bool = True
    keep_incomplete: bool = False

    def __post_init__(self) -> None:
        if self.max_failed_checks < 0:
            raise ValueError(
                f"max_failed_checks must be 0 or more, not {self.max_failed_checks}"
            )
        if not np.isfinite(self.min_median_rt_ms) or self.min_median_rt_ms < 0:
            raise ValueError(
                f"min_median_rt_ms must be 0 or more, not {self.min_median_rt_ms}"
            )

    def describe(self) -> dict[str, str]:
        """Return ``{reason: rule in words}`` for the exclusion table."""
        return {
            "failed_checks": f"checks failed > {self.max_failed_checks}",
            "session_excluded": "session status is 'excluded'",
            "incomplete_session": (
                "kept (--keep-incomplete)"
                if self.keep_incomplete
                else "session status is not 'completed'"
            ),
            "too_fast": (
                "off"
                if self.min_median_rt_ms == 0
                else f"median rt_ms < {self.min_median_rt_ms:g}"
            ),
            "unanswered": "main trial without a response",
            "timing_invalid": (
                "timing_invalid is true"
                if self.drop_timing_invalid
                else "kept (--keep-timing-invalid)"
            ),
        }

    def as_dict(self) -> dict[str, object]:
        """Return the settings as a plain dictionary (for JSON output)."""
        return asdict(self)


@dataclass
class Exclusions:
    """The outcome of :func:`apply_exclusions`.

    Attributes
    ----------
    trials : pandas.DataFrame
        The trials that remain (all kinds, of the remaining participants,
        without the dropped main trials).
    table : pandas.DataFrame
        One row per dataset and reason: ``dataset``, ``reason`` (code),
        ``level`` (``participant`` or ``trial``), ``rule`` (the setting in
        words), ``applied`` (bool: the data had the columns the rule needs),
        ``n_participants`` (participants removed, or for trial-level reasons
        participants who lost at least one trial), ``n_trials`` (main trials
        removed).
    participants : pandas.DataFrame
        The excluded participants: ``dataset``, ``participant``, ``reason``.
    """

    trials: pd.DataFrame
    table: pd.DataFrame
    participants: pd.DataFrame


def apply_exclusions(
    trials: pd.DataFrame, rules: ExclusionRules | None = None
) -> Exclusions:
    """Apply the exclusion rules to per-trial data and count every drop.

    Parameters
    ----------
    trials : pandas.DataFrame
        Trials as returned by :func:`analysis.readers.read_trials` (all
        kinds; ``check`` trials are used for the failed-checks rule).
    rules : ExclusionRules, optional
        The settings; the defaults follow the published protocol.

    Returns
    -------
    Exclusions
        The remaining trials, the table of counts (see :class:`Exclusions`)
        and the excluded participants.

    Warns
    -----
    UserWarning
        Once with the number of participants and trials dropped per reason,
        and once per rule that could not be applied for lack of a column.

    Notes
    -----
    A participant is identified by ``(dataset, participant)``; all their
    sessions in one dataset are judged together. Counts in ``n_trials`` are
    main trials only (practice and check trials are never analysed).
    """
    rules = rules or ExclusionRules()
    described = rules.describe()
    key = ["dataset", "participant"]
    main = trials["kind"] == "main"
    per_person = trials.loc[main, key].drop_duplicates()
    reasons = pd.Series(pd.NA, index=pd.MultiIndex.from_frame(per_person), dtype=object)
    applied = dict.fromkeys(REASONS, True)

    for reason, flagged in _participant_flags(trials, rules, applied):
        fresh = reasons.index.isin(flagged) & reasons.isna().to_numpy()
        reasons[fresh] = reason
    excluded = reasons.dropna().rename("reason").reset_index()

    index = pd.MultiIndex.from_frame(trials[key])
    gone = index.isin(pd.MultiIndex.from_frame(excluded[key]))
    trial_reason = pd.Series(pd.NA, index=trials.index, dtype=object)
    trial_reason[gone & main] = (
        trials.loc[gone & main, key]
        .merge(excluded, on=key, how="left")["reason"]
        .to_numpy()
    )
    unanswered = main & ~gone & trials["response"].isna()
    trial_reason[unanswered] = "unanswered"
    if rules.drop_timing_invalid:
        if "timing_invalid" in trials.columns:
            bad = trials["timing_invalid"].fillna(False).astype(bool)
            trial_reason[main & ~gone & ~unanswered & bad] = "timing_invalid"
        else:
            applied["timing_invalid"] = False
    else:
        applied["timing_invalid"] = False

    kept = trials[~gone & trial_reason.isna()].copy()
    table = _count(trials, trial_reason, excluded, applied, described)
    _warn(table, applied, described, rules)
    return Exclusions(trials=kept, table=table, participants=excluded)


def no_exclusions(datasets: list[str], rules: ExclusionRules | None = None):
    """The exclusion table for data that allow no rule (per-participant files).

    Published per-participant files arrive already filtered by their authors;
    every rule is reported as not applied, with zero counts.
    """
    described = (rules or ExclusionRules()).describe()
    rows = [
        _row(dataset, reason, described[reason], False, 0, 0)
        for dataset in datasets
        for reason in REASONS
    ]
    return pd.DataFrame(rows, columns=list(EXCLUSION_COLUMNS))


def _participant_flags(trials, rules: ExclusionRules, applied: dict[str, bool]):
    """Yield ``(reason, flagged participants)`` in the order rules apply."""
    key = ["dataset", "participant"]

    checks = trials[(trials["kind"] == "check") & trials["response"].notna()]
    failed = (
        (~checks["correct"].astype(bool))
        .groupby([checks["dataset"], checks["participant"]])
        .sum()
    )
    yield "failed_checks", failed.index[failed > rules.max_failed_checks]

    if "session_status" in trials.columns:
        status = trials["session_status"].fillna("").str.lower()
        yield "session_excluded", _index(trials.loc[status == "excluded", key])
        if not rules.keep_incomplete:
            incomplete = trials.loc[status != "completed", key]
            yield "incomplete_session", _index(incomplete)
        else:
            applied["incomplete_session"] = False
    else:
        applied["session_excluded"] = applied["incomplete_session"] = False

    answered = trials[(trials["kind"] == "main") & trials["response"].notna()]
    if rules.min_median_rt_ms == 0:
        applied["too_fast"] = False
    elif "rt_ms" in trials.columns and answered["rt_ms"].notna().any():
        median = answered.groupby(key)["rt_ms"].median()
        yield "too_fast", median.index[median < rules.min_median_rt_ms]
    else:
        applied["too_fast"] = False


def _index(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(frame.drop_duplicates())


def _row(dataset, reason, rule, applied, n_participants, n_trials) -> dict:
    level = "participant" if reason in PARTICIPANT_REASONS else "trial"
    return dict(
        zip(
            EXCLUSION_COLUMNS,
            (dataset, reason, level, rule, applied, n_participants, n_trials),
            strict=True,
        )
    )


def _count(trials, trial_reason, excluded, applied, described) -> pd.DataFrame:
    rows = []
    main = trials["kind"] == "main"
    for dataset in sorted(trials["dataset"].unique()):
        in_dataset = trials["dataset"] == dataset
        people = excluded[excluded["dataset"] == dataset]
        for reason in REASONS:
            hit = in_dataset & main & (trial_reason == reason).fillna(False)
            if reason in PARTICIPANT_REASONS:
                n_people = int((people["reason"] == reason).sum())
            else:
                n_people = trials.loc[hit, "participant"].nunique()
            rows.append(
                _row(
                    dataset,
                    reason,
                    described[reason],
                    applied[reason],
                    n_people,
                    int(hit.sum()),
                )
            )
    return pd.DataFrame(rows, columns=list(EXCLUSION_COLUMNS))


def _warn(table, applied, described, rules) -> None:
    dropped = table[(table["n_participants"] > 0) | (table["n_trials"] > 0)]
    if not dropped.empty:
        parts = [
            f"{r.dataset}/{r.reason}: {r.n_participants} participants, "
            f"{r.n_trials} trials"
            for r in dropped.itertuples()
        ]
        warnings.warn("exclusions: " + "; ".join(parts), stacklevel=3)
    skipped = {
        "session_excluded": "session_status",
        "incomplete_session": "session_status",
        "too_fast": "rt_ms",
        "timing_invalid": "timing_invalid",
    }
    wanted = {
        "session_excluded": True,
        "incomplete_session": not rules.keep_incomplete,
        "too_fast": rules.min_median_rt_ms > 0,
        "timing_invalid": rules.drop_timing_invalid,
    }
    for reason, column in skipped.items():
        if wanted[reason] and not applied[reason]:
            warnings.warn(
                f"exclusion rule {reason} ({described[reason]}) not applied: the "
                f"data have no {column!r} values",
                stacklevel=3,
            )
