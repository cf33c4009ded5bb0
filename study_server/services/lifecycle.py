"""A study's lifecycle and the researcher's corrections to sessions.

Study statuses (:data:`~study_server.models.STUDY_STATUSES`):

``open``
    New participants are taken.
``paused``
    New arrivals see a friendly "not available" page; participants who are
    already inside can finish.
``closed``
    Like paused, but meant to last: the study has all the data it wants.
``draft``
    Loaded but never opened.

A session's place counts against its model only while the session is active
or completed (:data:`~study_server.models.SESSION_HOLDING`). Marking it
returned, timed out or excluded, and abandoning it after a long silence, frees
the place for the next participant.

Every change is stored as an :class:`~study_server.models.Event` of kind
``status_change`` with ``{"from", "to", "reason"}`` and the actor
(``researcher:<username>`` or ``system``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from ..db import db, utcnow
from ..errors import Conflict, NotFound, OutOfRange
from ..models import SESSION_STATUSES, Event, Session, Study
from .validate import check_string

events_log = logging.getLogger("study_server.events")
audit = logging.getLogger("study_server.audit")

# action -> (new status, statuses it may start from)
STUDY_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "open": ("open", ("draft", "paused", "closed")),
    "pause": ("paused", ("open",)),
    "close": ("closed", ("draft", "open", "paused")),
}

# Statuses a researcher may set on a session -> statuses it may start from.
SESSION_MARKS: dict[str, tuple[str, ...]] = {
    "returned": ("active", "abandoned", "timed_out"),
    "timed_out": ("active", "abandoned"),
    "excluded": tuple(s for s in SESSION_STATUSES if s != "excluded"),
}

#: Reason codes offered in the researcher's form (any text is accepted).
SUGGESTED_REASONS = (
    "failed_checks",
    "too_fast",
    "duplicate_participant",
    "technical_problem",
    "withdrew_consent",
)

#: The longest reason stored (the column's width).
MAX_REASON_LENGTH = 200

#: Actor of changes nobody asked for (abandoning inactive sessions).
SYSTEM = "system"


def researcher_actor(username: str) -> str:
    """Return the event actor for a researcher."""
    return f"researcher:{username}"


def allowed_actions(status: str) -> list[str]:
    """Return the actions (open, pause, close) possible from a study status."""
    return [action for action, (_, starts) in STUDY_ACTIONS.items() if status in starts]


def get_study(slug: str, *, lock: bool = False) -> Study:
    """Return the study ``slug``; :class:`NotFound` when there is none."""
    query = select(Study).where(Study.slug == slug)
    if lock:
        query = query.with_for_update()
    study = db.session.scalar(query)
    if study is None:
        raise NotFound(f"no study with slug {slug!r}", field="study")
    return study


def change_study_status(slug: str, action: str, actor: str) -> Study:
    """Open, pause or close the study ``slug`` and record who did it.

    Raises
    ------
    OutOfRange
        ``action`` is not open, pause or close.
    Conflict
        The study's status does not allow the action (e.g. pausing a closed
        study, or opening an open one).
    """
    if action not in STUDY_ACTIONS:
        raise OutOfRange(
            f"unknown action {action!r}; allowed: {', '.join(STUDY_ACTIONS)}",
            field="action",
        )
    new, allowed_from = STUDY_ACTIONS[action]
    study = get_study(slug, lock=True)
    old = study.status
    if old not in allowed_from:
        db.session.rollback()
        raise Conflict(
            f"study {slug!r} is {old}; {action} is possible only when it is "
            f"{' or '.join(allowed_from)}",
            field="action",
        )
    study.status = new
    db.session.add(
        Event(
            study_id=study.id,
            kind="status_change",
            actor=actor,
            data={"from": old, "to": new, "reason": action},
        )
    )
    db.session.commit()
    audit.info("study %r: %s -> %s by %s", slug, old, new, actor)
    return study


def _clean_reason(status: str, reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if status == "excluded" and reason is None:
        raise OutOfRange(
            "excluding a session needs a reason (e.g. failed_checks, too_fast, "
            "duplicate_participant)",
            field="reason",
        )
    if reason is not None:
        check_string(reason, "reason")  # PostgreSQL stores no NUL or lone surrogate
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise OutOfRange(
            f"the reason has {len(reason)} characters; at most "
            f"{MAX_REASON_LENGTH} are allowed",
            field="reason",
        )
    return reason


def mark_session(
    slug: str, public_id: str, status: str, actor: str, reason: str | None = None
) -> Session:
    """Mark a session returned, timed out or excluded, freeing its place.

    Raises
    ------
    OutOfRange
        ``status`` is not one a researcher may set, or ``excluded`` comes
        without a reason.
    NotFound
        The study has no session ``public_id``.
    Conflict
        The session's status does not allow the change.
    """
    if status not in SESSION_MARKS:
        raise OutOfRange(
            f"unknown status {status!r}; allowed: {', '.join(SESSION_MARKS)}",
            field="status",
        )
    reason = _clean_reason(status, reason)
    study = get_study(slug)
    session = db.session.scalar(
        select(Session)
        .where(Session.study_id == study.id, Session.public_id == public_id)
        .with_for_update()
    )
    if session is None:
        db.session.rollback()
        raise NotFound(f"study {slug!r} has no session {public_id!r}", field="session")
    old = session.status
    if old not in SESSION_MARKS[status]:
        db.session.rollback()
        raise Conflict(
            f"session {public_id} is {old}; it can be marked {status} only when "
            f"it is {' or '.join(SESSION_MARKS[status])}",
            field="status",
        )
    _set_status(session, status, actor, reason)
    db.session.commit()
    return session


def _set_status(session: Session, status: str, actor: str, reason: str | None) -> None:
    old = session.status
    session.status = status
    if status == "excluded":
        session.exclusion_reason = reason
    db.session.add(
        Event(
            study_id=session.study_id,
            session_id=session.id,
            kind="status_change",
            actor=actor,
            data={"from": old, "to": status, "reason": reason},
        )
    )
    events_log.info(
        "session %s: %s -> %s by %s%s",
        session.public_id,
        old,
        status,
        actor,
        f" ({reason})" if reason else "",
    )


def inactive_limit(study: Study) -> timedelta:
    """How long an active session may be silent before it is abandoned."""
    from .sessions import settings_of  # sessions imports this module

    return timedelta(minutes=settings_of(study).timing.inactive_limit_minutes)


_ANY_STALE = (
    select(Session.id)
    .where(
        Session.study_id == bindparam("study_id"),
        Session.status == "active",
        Session.last_seen_at < bindparam("cutoff"),
    )
    .limit(1)
)


def abandon_inactive_sessions(
    study: Study, now: datetime | None = None, *, commit: bool = True
) -> int:
    """Mark the study's active sessions silent past its limit ``abandoned``.

    An active session whose last activity is older than
    ``timing.inactive_limit_minutes`` frees its place. Call this before
    counting places (assignment, the dashboard); ``flask sessions
    abandon-inactive`` runs it from cron. Returns how many sessions were
    abandoned. With ``commit=False`` the changes are only flushed, so that a
    caller can make them part of its own transaction (assignment does).
    """
    now = now or utcnow()
    limit = inactive_limit(study)
    cutoff = now - limit
    # Usually there are none: a cheap look first, without loading sessions.
    any_stale = db.session.execute(
        _ANY_STALE, {"study_id": study.id, "cutoff": cutoff}
    ).first()
    stale = (
        []
        if any_stale is None
        else db.session.scalars(
            select(Session)
            .where(
                Session.study_id == study.id,
                Session.status == "active",
                Session.last_seen_at < cutoff,
            )
            .order_by(Session.id)
            .with_for_update()
        ).all()
    )
    minutes = limit.total_seconds() / 60
    for session in stale:
        _set_status(
            session,
            "abandoned",
            SYSTEM,
            f"no activity for more than {minutes:g} minutes",
        )
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return len(stale)


@dataclass(frozen=True)
class AbandonReport:
    """Sessions abandoned per study by :func:`abandon_everywhere`."""

    by_study: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_study.values())


def abandon_everywhere(now: datetime | None = None) -> AbandonReport:
    """Run :func:`abandon_inactive_sessions` on every study that is not a draft."""
    now = now or utcnow()
    slugs = db.session.scalars(
        select(Study.slug).where(Study.status != "draft").order_by(Study.slug)
    ).all()
    db.session.commit()
    counts = {slug: abandon_inactive_sessions(get_study(slug), now) for slug in slugs}
    return AbandonReport(counts)
