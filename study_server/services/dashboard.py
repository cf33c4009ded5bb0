"""The figures of a study's live dashboard, as one JSON-ready dictionary.

Everything is computed in the database with aggregate queries, so a refresh
costs a few grouped scans of the study's trials however large it is. Counts are
taken after :func:`~study_server.services.lifecycle.abandon_inactive_sessions`
has freed the places of silent sessions.

The error rates here are a *running monitor*: pooled over the main trials of
active and completed sessions, with Wilson 95% intervals that treat every
trial as independent. They are approximate and too narrow, because trials of
one participant and of one image are correlated; ``analysis fit`` reports the
proper per-model scores and intervals (DESIGN.md §8).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, cast, func, or_, select
from sqlalchemy.engine import Connection, Engine

from ..db import db, utcnow
from ..errors import OutOfRange
from ..models import (
    SESSION_HOLDING,
    SESSION_STATUSES,
    Event,
    Participant,
    Session,
    Stimulus,
    Study,
    Trial,
)
from .exports import StudyInfo, read_connection, study_info
from .lifecycle import SESSION_MARKS, abandon_inactive_sessions, get_study
from .validate import check_string

#: z for a two-sided 95% interval.
Z_95 = 1.959963984540054
#: Width of the response-time histogram's bins, and where it stops (the last
#: bin holds everything slower).
RT_BIN_MS = 100
RT_MAX_MS = 3000
#: Events shown on the dashboard.
N_EVENTS = 25

ERROR_RATE_NOTE = (
    "Running monitor: main trials of active and completed sessions pooled; "
    "95% Wilson intervals treat trials as independent, so they are approximate "
    "and too narrow. Use `analysis fit` for the reported scores and intervals."
)

_T = Trial.__table__
_S = Session.__table__
_ST = Stimulus.__table__
_E = Event.__table__


def wilson_interval(errors: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Return the Wilson score interval of the proportion ``errors / n``.

    ``(nan, nan)`` when ``n`` is 0. Formula: (p + z²/2n ± z sqrt(p(1-p)/n +
    z²/4n²)) / (1 + z²/n) (Wilson 1927); statsmodels'
    ``proportion_confint(errors, n, method="wilson")`` gives the same.
    """
    if n == 0:
        return math.nan, math.nan
    p = errors / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denominator = 1 + z2 / n
    # Clipped because rounding can put a bound a hair outside [0, 1] at p = 0 or 1.
    low = max(0.0, (centre - spread) / denominator)
    high = min(1.0, (centre + spread) / denominator)
    return low, high


def _rate(errors: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(errors, n)
    finite = n > 0
    return {
        "n": n,
        "errors": errors,
        "rate": errors / n if finite else None,
        "ci_low": low if finite else None,
        "ci_high": high if finite else None,
    }


def dashboard(engine: Engine, slug: str, now: datetime | None = None) -> dict[str, Any]:
    """Return every figure of the dashboard of the study ``slug``.

    Raises
    ------
    NotFound
        There is no such study.
    """
    now = now or utcnow()
    abandon_inactive_sessions(get_study(slug), now)
    with read_connection(engine) as connection:
        study = study_info(connection, slug)
        models = _models(connection, study)
        return {
            "study": _study_summary(connection, study),
            "generated_at": now.isoformat(timespec="seconds"),
            "sessions": _sessions_by_status(connection, study),
            "progress": _progress(connection, study, models),
            "error_rates": {
                "note": ERROR_RATE_NOTE,
                "rows": _error_rates(connection, study, models),
            },
            "checks": _checks(connection, study),
            "exclusions": _exclusions(connection, study),
            "timing": _timing(connection, study),
            "duration": _duration(connection, study),
            "response_times": _rt_histogram(connection, study),
            "events": _latest_events(connection, study),
        }


def _study_summary(connection: Connection, study: StudyInfo) -> dict[str, Any]:
    recruitment = study.settings.get("recruitment", {})
    return {
        "slug": study.slug,
        "title": study.title,
        "status": study.status,
        "design": study.design,
        "dataset": study.dataset,
        "platform": recruitment.get("platform"),
        "target_per_model": recruitment.get("target_per_model"),
        "inactive_limit_minutes": study.settings.get("timing", {}).get(
            "inactive_limit_minutes"
        ),
    }


def _models(connection: Connection, study: StudyInfo) -> list[str]:
    rows = connection.execute(
        select(_ST.c.source)
        .where(
            _ST.c.study_id == study.id,
            _ST.c.role == "main",
            _ST.c.is_real.is_(False),
            _ST.c.active.is_(True),
        )
        .distinct()
        .order_by(_ST.c.source)
    )
    return [source for (source,) in rows]


def _sessions_by_status(connection: Connection, study: StudyInfo) -> dict[str, Any]:
    counts = dict.fromkeys(SESSION_STATUSES, 0)
    rows = connection.execute(
        select(_S.c.status, func.count())
        .where(_S.c.study_id == study.id)
        .group_by(_S.c.status)
    )
    for status, n in rows:
        counts[status] = n
    return {"by_status": counts, "total": sum(counts.values())}


def _progress(
    connection: Connection, study: StudyInfo, models: list[str]
) -> list[dict[str, Any]]:
    target = study.settings.get("recruitment", {}).get("target_per_model")
    rows = connection.execute(
        select(_S.c.model, _S.c.status, func.count())
        .where(_S.c.study_id == study.id, _S.c.status.in_(SESSION_HOLDING))
        .group_by(_S.c.model, _S.c.status)
    )
    # In a within design every session judges every model, so sessions count
    # towards all of them at once: one row.
    keys = models if study.design == "between" else ["all models"]
    counts = {key: {"completed": 0, "active": 0} for key in keys}
    for model, status, n in rows:
        key = model if study.design == "between" else "all models"
        counts.setdefault(key, {"completed": 0, "active": 0})[status] += n
    return [
        {
            "model": key,
            "completed": c["completed"],
            "active": c["active"],
            "target": target,
            "remaining": None
            if target is None
            else max(target - c["completed"] - c["active"], 0),
        }
        for key, c in counts.items()
    ]


def _answered_main(study: StudyInfo) -> Any:
    return (
        _T.c.kind == "main",
        _T.c.response.is_not(None),
        _S.c.study_id == study.id,
    )


def _errors() -> Any:
    return func.sum(case((_T.c.correct.is_(False), 1), else_=0))


def _error_rates(
    connection: Connection, study: StudyInfo, models: list[str]
) -> list[dict[str, Any]]:
    condition = _S.c.model if study.design == "between" else _T.c.source
    rows = connection.execute(
        select(condition, _T.c.is_real, func.count(), _errors())
        .select_from(_T.join(_S, _T.c.session_id == _S.c.id))
        .where(*_answered_main(study), _S.c.status.in_(SESSION_HOLDING))
        .group_by(condition, _T.c.is_real)
    )
    # tallies[model] = [real n, real errors, fake n, fake errors]
    tallies: dict[str, list[int]] = {model: [0, 0, 0, 0] for model in models}
    pooled = [0, 0, 0, 0]
    for model, is_real, n, errors in rows:
        offset = 0 if is_real else 2
        errors = int(errors or 0)
        pooled[offset] += n
        pooled[offset + 1] += errors
        # Real images of a within design belong to no model: pooled row only.
        if study.design == "between" or not is_real:
            tally = tallies.setdefault(model, [0, 0, 0, 0])
            tally[offset] += n
            tally[offset + 1] += errors
    out = [_rate_row(model, tally, study.design) for model, tally in tallies.items()]
    out.append(_rate_row("all", pooled, "between"))
    return out


def _rate_row(model: str, tally: list[int], design: str) -> dict[str, Any]:
    real_n, real_errors, fake_n, fake_errors = tally
    with_real = design == "between"
    return {
        "model": model,
        "overall": _rate(real_errors + fake_errors, real_n + fake_n)
        if with_real
        else None,
        "fake": _rate(fake_errors, fake_n),
        "real": _rate(real_errors, real_n) if with_real else None,
    }


def _checks(connection: Connection, study: StudyInfo) -> dict[str, Any]:
    n, errors = connection.execute(
        select(func.count(), _errors())
        .select_from(_T.join(_S, _T.c.session_id == _S.c.id))
        .where(
            _S.c.study_id == study.id,
            _T.c.kind == "check",
            _T.c.response.is_not(None),
        )
    ).one()
    sessions_failing, screened_out = connection.execute(
        select(
            func.sum(case((_S.c.checks_failed > 0, 1), else_=0)),
            func.sum(case((_S.c.status == "screened_out", 1), else_=0)),
        ).where(_S.c.study_id == study.id)
    ).one()
    return {
        "answered": n,
        "failed": int(errors or 0),
        "sessions_with_failures": int(sessions_failing or 0),
        "screened_out": int(screened_out or 0),
    }


def _exclusions(connection: Connection, study: StudyInfo) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(_S.c.status, _S.c.exclusion_reason, func.count())
        .where(_S.c.study_id == study.id, _S.c.status.not_in(SESSION_HOLDING))
        .group_by(_S.c.status, _S.c.exclusion_reason)
        .order_by(_S.c.status, _S.c.exclusion_reason)
    )
    return [
        {"status": status, "reason": reason or "", "n": n} for status, reason, n in rows
    ]


def _timing(connection: Connection, study: StudyInfo) -> dict[str, Any]:
    def flagged(column: Any) -> Any:
        return func.sum(case((column.is_(True), 1), else_=0))

    n, invalid, hidden, blurred = connection.execute(
        select(
            func.count(),
            flagged(_T.c.timing_invalid),
            flagged(_T.c.visibility_lost),
            flagged(_T.c.focus_lost),
        )
        .select_from(_T.join(_S, _T.c.session_id == _S.c.id))
        .where(*_answered_main(study))
    ).one()
    invalid, hidden, blurred = (int(x or 0) for x in (invalid, hidden, blurred))
    return {
        "answered": n,
        "timing_invalid": invalid,
        "timing_invalid_share": invalid / n if n else None,
        "visibility_lost": hidden,
        "focus_lost": blurred,
    }


def _duration(connection: Connection, study: StudyInfo) -> dict[str, Any]:
    rows = connection.execute(
        select(_S.c.started_at, _S.c.completed_at).where(
            _S.c.study_id == study.id,
            _S.c.status == "completed",
            _S.c.completed_at.is_not(None),
        )
    )
    minutes = [(done - start).total_seconds() / 60 for start, done in rows]
    return {
        "completed": len(minutes),
        "median_minutes": statistics.median(minutes) if minutes else None,
    }


def _bin(connection: Connection, expression: Any) -> Any:
    # Response times are non-negative, so truncation is the floor. SQLite's
    # CAST truncates; PostgreSQL's rounds, hence floor() there.
    if connection.dialect.name == "sqlite":
        return cast(expression / RT_BIN_MS, Integer)
    return cast(func.floor(expression / RT_BIN_MS), Integer)


def _rt_histogram(connection: Connection, study: StudyInfo) -> dict[str, Any]:
    n_bins = RT_MAX_MS // RT_BIN_MS + 1
    counts = {"real": [0] * n_bins, "generated": [0] * n_bins}
    bin_number = _bin(connection, _T.c.rt_ms)
    rows = connection.execute(
        select(_T.c.is_real, bin_number, func.count())
        .select_from(_T.join(_S, _T.c.session_id == _S.c.id))
        .where(*_answered_main(study), _T.c.rt_ms.is_not(None))
        .group_by(_T.c.is_real, bin_number)
    )
    for is_real, number, n in rows:
        key = "real" if is_real else "generated"
        counts[key][min(int(number), n_bins - 1)] += n
    return {
        "bin_ms": RT_BIN_MS,
        "max_ms": RT_MAX_MS,
        "bin_starts_ms": [i * RT_BIN_MS for i in range(n_bins)],
        "counts": counts,
    }


def _latest_events(connection: Connection, study: StudyInfo) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(_E.c.created_at, _E.c.kind, _E.c.actor, _S.c.public_id, _E.c.data)
        .select_from(_E.outerjoin(_S, _E.c.session_id == _S.c.id))
        .where(_E.c.study_id == study.id)
        .order_by(_E.c.created_at.desc(), _E.c.id.desc())
        .limit(N_EVENTS)
    )
    return [
        {
            "at": at.isoformat(timespec="seconds"),
            "kind": kind,
            "actor": actor,
            "session": session,
            "data": data or {},
        }
        for at, kind, actor, session, data in rows
    ]


def study_overview() -> list[dict[str, Any]]:
    """Every study with its status and session counts, for the index page."""
    counts: dict[int, dict[str, int]] = {}
    rows = db.session.execute(
        select(Session.study_id, Session.status, func.count()).group_by(
            Session.study_id, Session.status
        )
    )
    for study_id, status, n in rows:
        counts.setdefault(study_id, {})[status] = n
    studies = db.session.scalars(select(Study).order_by(Study.slug)).all()
    return [
        {
            "slug": study.slug,
            "title": study.title,
            "status": study.status,
            "design": study.design,
            "dataset": study.dataset,
            "sessions": counts.get(study.id, {}),
        }
        for study in studies
    ]


@dataclass
class SessionListing:
    """One page of a study's sessions."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    status: str | None
    search: str | None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def list_sessions(
    study: Study,
    *,
    status: str | None = None,
    search: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> SessionListing:
    """Return one page of the study's sessions, newest first.

    ``search`` matches a session's public id or the participant's platform id
    exactly (researchers look up a Prolific return by its PID).

    Raises
    ------
    OutOfRange
        ``status`` is not a session status.
    """
    if status is not None and status not in SESSION_STATUSES:
        raise OutOfRange(
            f"unknown session status {status!r}; allowed: "
            f"{', '.join(SESSION_STATUSES)}",
            field="status",
        )
    conditions = [Session.study_id == study.id]
    if status is not None:
        conditions.append(Session.status == status)
    if search is not None:
        check_string(search, "q")
        conditions.append(
            or_(Session.public_id == search, Participant.external_id == search)
        )
    base = select(Session, Participant).join(Participant).where(*conditions)
    total = int(
        db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    )
    # A page past the last shows the last page (any number in the URL is safe).
    page = max(1, min(page, -(-total // per_page)))
    found = db.session.execute(
        base.order_by(Session.started_at.desc(), Session.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    rows = [
        {
            "public_id": s.public_id,
            "platform": p.platform,
            "external_id": p.external_id,
            "status": s.status,
            "model": s.model,
            "n_answered": s.n_answered,
            "n_trials": s.n_trials,
            "checks_failed": s.checks_failed,
            "exclusion_reason": s.exclusion_reason,
            "started_at": s.started_at,
            "last_seen_at": s.last_seen_at,
            "completed_at": s.completed_at,
            # What a researcher may mark this session as now.
            "marks": [m for m, starts in SESSION_MARKS.items() if s.status in starts],
        }
        for s, p in found
    ]
    return SessionListing(rows, total, page, per_page, status, search)
