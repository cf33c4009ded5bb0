"""Sessions: start or resume, state, device check, client events, completion.

A session starts when a participant has consented: in one transaction the
study row is locked, the model is assigned, the whole trial list is decided
and stored (:mod:`.assignment`), and the session is created. One participant
has at most one session per study (a unique constraint backs the rule); a
second arrival resumes it within ``timing.resume_limit_minutes`` of the last
activity, sees its completion again, or is refused.

Completion is given only when every trial is stored, and the same code is
returned by every later call.
"""

from __future__ import annotations

import logging
import random
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, bindparam, case, func, insert, select
from sqlalchemy.exc import IntegrityError

from ..db import db, read_only, utcnow
from ..errors import (
    Conflict,
    Forbidden,
    Gone,
    Malformed,
    OutOfRange,
    Unauthorized,
    Unavailable,
)
from ..models import Event, Participant, Session, Study, Trial
from ..studyfile import StudySettings
from . import assignment, lifecycle, platforms, timing, validate

events_log = logging.getLogger("study_server.events")

# models.new_token(): 32 random bytes, URL-safe base64 without padding.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
START_FIELDS = (
    "platform",
    "params",
    "consent",
    "window",
    "screen",
    "device_pixel_ratio",
)
CLIENT_EVENTS = (
    "reload",
    "visibility_hidden",
    "visibility_visible",
    "blur",
    "focus",
    "resize",
    "offline",
    "online",
    "break_start",
    "break_end",
    "window_too_small",
)
MAX_ANSWER_LENGTH = 5_000
MAX_ANSWERS = 10
_ANSWER_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Ended sessions in these statuses are answered 410 Gone; the others 403.
_GONE = ("timed_out", "abandoned")

# Validated study settings by digest: the study file was validated when it
# was loaded, and parsing it again for every response would cost time.
_SETTINGS: dict[str, StudySettings] = {}


def settings_of(study: Study) -> StudySettings:
    """Return the study's settings as :class:`StudySettings`."""
    settings = _SETTINGS.get(study.settings_digest)
    if settings is None:
        settings = _remember(study.settings_digest, study.settings)
    return settings


def settings_by_digest(study_id: int, digest: str) -> StudySettings:
    """Settings from the cache by digest; the JSON is read only on a miss."""
    settings = _SETTINGS.get(digest)
    if settings is None:
        stored = db.session.scalars(
            select(Study.settings).where(Study.id == study_id)
        ).one()
        settings = _remember(digest, stored)
    return settings


def _remember(digest: str, stored: dict[str, Any]) -> StudySettings:
    if len(_SETTINGS) > 256:
        _SETTINGS.clear()
    settings = StudySettings.model_validate(stored)
    _SETTINGS[digest] = settings
    return settings


def check_token(token: Any) -> str:
    """Refuse a token that cannot be one (without a database round trip)."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise Unauthorized("unknown session token", field="token")
    return token


def load_session(token: str, *, lock: bool = False) -> tuple[Session, Study]:
    """Return the session with ``token`` and its study.

    ``lock`` takes the session's row lock (PostgreSQL ``FOR NO KEY UPDATE OF
    session``), so that answers to one session are stored one at a time
    without locking the study for other participants. (``NO KEY``: inserting
    an event that refers to the session need not wait for it.)

    Raises
    ------
    Unauthorized
        No session has this token.
    """
    check_token(token)
    query = select(Session, Study).join(Study).where(Session.token == token)
    if lock:
        query = query.with_for_update(of=Session, key_share=True)
    row = db.session.execute(query).first()
    if row is None:
        raise Unauthorized("unknown session token", field="token")
    return row.Session, row.Study


def require_active(session: Session | Row[Any]) -> None:
    """Refuse a request that would change a session that has ended.

    ``session`` is the session or a row read with its ``status`` column.
    """
    if session.status == "active":
        return
    message = f"this session is {session.status.replace('_', ' ')}"
    if session.status in _GONE:
        raise Gone(f"{message}; it takes no more answers", field="token")
    raise Forbidden(f"{message}; it takes no more answers", field="token")


def completion_of(session: Session, settings: StudySettings) -> dict[str, Any] | None:
    """The completion object of an ended session; None while it runs."""
    if session.status not in ("completed", "screened_out"):
        return None
    return platforms.completion_for(
        settings, session.platform_data, session.status, session.completion_code
    ).to_json()


def key_mapping(session: Session, settings: StudySettings) -> dict[str, str]:
    """Which key means real and which generated for this participant."""
    real_key = session.key_mapping.split("=")[0]
    keys = settings.keys
    generated_key = keys.generated if real_key == keys.real else keys.real
    return {"real": real_key, "generated": generated_key}


def blocks_of(session_id: int) -> list[dict[str, Any]]:
    """The blocks of a session: number, kind, first position and size."""
    rows = db.session.execute(
        select(
            Trial.block,
            func.min(Trial.position),
            func.count(),
            func.max(case((Trial.kind == "practice", 1), else_=0)),
        )
        .where(Trial.session_id == session_id)
        .group_by(Trial.block)
        .order_by(Trial.block)
    )
    return [
        {
            "block": block,
            "kind": "practice" if practice else "main",
            "first": first,
            "size": size,
        }
        for block, first, size, practice in rows
    ]


def next_position(session: Session) -> int:
    """The first unanswered position; ``n_trials`` when all are answered."""
    first = db.session.scalar(
        select(func.min(Trial.position)).where(
            Trial.session_id == session.id, Trial.response.is_(None)
        )
    )
    return session.n_trials if first is None else first


def state_of(
    session: Session, study: Study, *, blocks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The session as the browser runner sees it (no labels, no model).

    ``blocks`` are those of a session just planned (then nothing is answered
    yet); otherwise they are read from its trials.
    """
    settings = settings_of(study)
    if blocks is None:
        blocks = blocks_of(session.id)
        position = next_position(session)
    else:
        position = 0
    return {
        "token": session.token,
        "status": session.status,
        "key_mapping": key_mapping(session, settings),
        "n_trials": session.n_trials,
        "n_answered": session.n_answered,
        "next_position": position,
        "n_blocks": len(blocks),
        "blocks": blocks,
        "exposure_frames": session.exposure_frames,
        "exposure_ms": session.exposure_ms,
        "frame_interval_ms": session.frame_interval_ms,
        "staircase": timing.public_staircase(session.staircase),
        "completion": completion_of(session, settings),
        "started_at": session.started_at.isoformat(),
        "last_seen_at": session.last_seen_at.isoformat(),
    }


def _size(body: dict[str, Any], field: str) -> tuple[int, int] | None:
    value = validate.sub_object(body, field, required=False)
    if value is None:
        return None
    validate.reject_unknown(value, ("width", "height"), field)
    width = validate.integer(value, "width", low=0, high=100_000)
    height = validate.integer(value, "height", low=0, high=100_000)
    return width, height  # type: ignore[return-value]


def parse_start(body: Any) -> dict[str, Any]:
    """Validate the body of a start request; return its parts."""
    body = validate.require_object(body)
    validate.reject_unknown(body, START_FIELDS, "body")
    return {
        "platform": validate.choice(body, "platform", platforms.PARAMS, required=False),
        "params": validate.sub_object(body, "params"),
        "consent": validate.boolean(body, "consent"),
        "window": _size(body, "window"),
        "screen": _size(body, "screen"),
        "device_pixel_ratio": validate.number(
            body, "device_pixel_ratio", low=0.1, high=16, required=False
        ),
    }


def _check_window(settings: StudySettings, window: tuple[int, int] | None) -> None:
    display = settings.display
    if window is None:
        return
    width, height = window
    if width < display.min_window_width or height < display.min_window_height:
        raise OutOfRange(
            f"window: {width}x{height} px is smaller than this study needs "
            f"({display.min_window_width}x{display.min_window_height} px); "
            "enlarge the browser window",
            field="window",
        )


def check_open(study: Study) -> None:
    """Refuse new participants unless the study is open."""
    if study.status == "paused":
        raise Unavailable("this study is paused; please try again later")
    if study.status == "closed":
        raise Gone("this study is closed and takes no new participants")


def resume(session: Session, study: Study, *, via: str) -> None:
    """Let a returning participant continue, or refuse; log a resume as an event.

    A completed or screened-out session is shown again as it ended. An active
    one resumes within ``timing.resume_limit_minutes`` of its last activity.

    Raises
    ------
    Gone
        The session is active but was left longer than the resume limit, or
        it timed out or was abandoned.
    Forbidden
        The session was returned or excluded: the study cannot be taken again.
    """
    if session.status in ("completed", "screened_out"):
        return
    if session.status != "active":
        if session.status in _GONE:
            raise Gone("your session has expired; the study cannot be taken again")
        raise Forbidden("you have taken part in this study already")
    limit = timedelta(minutes=settings_of(study).timing.resume_limit_minutes)
    now = utcnow()
    idle = now - session.last_seen_at
    if idle > limit:
        raise Gone(
            f"your session has expired: it was inactive for "
            f"{idle.total_seconds() / 60:.0f} minutes (the limit is "
            f"{limit.total_seconds() / 60:g})"
        )
    db.session.add(
        Event(
            study_id=study.id,
            session_id=session.id,
            kind="resume",
            actor="participant",
            data={"via": via, "next_position": next_position(session)},
        )
    )
    session.last_seen_at = now
    db.session.commit()
    events_log.info("session %s resumed (%s)", session.public_id, via)


_FIND_SESSION = (
    select(Session)
    .join(Participant)
    .where(
        Session.study_id == bindparam("study_id"),
        Participant.platform == bindparam("platform"),
        Participant.external_id == bindparam("external_id"),
    )
)
_FIND_PARTICIPANT = select(Participant).where(
    Participant.platform == bindparam("platform"),
    Participant.external_id == bindparam("external_id"),
)


def find_session(study: Study, arrival: platforms.Arrival) -> Session | None:
    """The participant's session in ``study``, if there is one."""
    return db.session.scalar(
        _FIND_SESSION,
        {
            "study_id": study.id,
            "platform": arrival.platform,
            "external_id": arrival.external_id,
        },
    )


def start_session(
    slug: str,
    body: Any,
    user_agent: str = "",
    rng: random.Random | None = None,
) -> tuple[dict[str, Any], bool]:
    """Start a new session or resume the participant's session.

    Returns the session state and whether the session is new.

    Raises
    ------
    Malformed, OutOfRange
        A bad body or platform parameter; consent not given; a window too small.
    NotFound
        No such study (or a draft).
    Unavailable, Gone
        The study is paused, full or closed (new participants only).
    Forbidden, Gone
        The participant's earlier session cannot be resumed; a new one from a
        phone or tablet (Forbidden).
    """
    request = parse_start(body)
    rng = rng or random.Random()
    user_agent = user_agent.replace("\x00", "")[:1000]
    # Two first arrivals of the same new participant in two studies at once
    # can both try to create the participant row; the loser tries again.
    try:
        return _start(slug, request, user_agent, rng)
    except IntegrityError:
        db.session.rollback()
    try:
        return _start(slug, request, user_agent, rng)
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            "another request for this participant is being handled; please retry"
        ) from None


def _start(
    slug: str, request: dict[str, Any], user_agent: str, rng: random.Random
) -> tuple[dict[str, Any], bool]:
    # What needs no lock is read and written before the study row is locked:
    # arrivals queue on that lock, so each statement after it delays them all.
    study = assignment.find_study(slug)
    settings = settings_of(study)
    platform = settings.recruitment.platform
    if request["platform"] is not None and request["platform"] != platform:
        raise Malformed(
            f"platform: got {request['platform']!r}; this study recruits on "
            f"{platform!r}",
            field="platform",
        )
    arrival = platforms.parse_arrival(platform, request["params"])
    existing = find_session(study, arrival)
    if existing is not None:
        study = assignment.lock_study(slug)
        resume(existing, study, via="api")
        state = state_of(existing, study)
        db.session.commit()  # ends the transaction and the study lock
        return state, False

    check_open(study)
    if platforms.is_mobile(user_agent):
        raise Forbidden(
            "user_agent: phones and tablets are not supported; please use a "
            "desktop or laptop computer",
            field="user_agent",
        )
    if not request["consent"]:
        raise OutOfRange(
            "consent: got false; the study starts only after consent is given",
            field="consent",
        )
    _check_window(settings, request["window"])
    models = assignment.study_models(study.id)
    participant = _participant(arrival)

    study = assignment.lock_study(slug)
    check_open(study)  # again: it may have been paused meanwhile
    settings = settings_of(study)
    # Sessions silent past the study's limit free their places before the count.
    lifecycle.abandon_inactive_sessions(study, commit=False)
    model = assignment.choose_model(study, settings, models, rng)
    planned = assignment.plan_session(study, settings, model, models, rng)
    session = _create(
        study, settings, arrival, participant, model, request, user_agent,
        len(planned),
    )  # fmt: skip
    assignment.store_trials(session, planned)
    study.assignment_seq += 1
    _log_start(study, session, request)
    state = state_of(session, study, blocks=assignment.blocks_of_plan(planned))
    public_id = session.public_id  # read now: commit expires the objects
    db.session.commit()
    events_log.info(
        "session %s started in study %s after consent (model %s, %d trials)",
        public_id, slug, model, len(planned),
    )  # fmt: skip
    return state, True


def _participant(arrival: platforms.Arrival) -> Participant:
    """The participant with this platform id, added when new."""
    participant = db.session.scalar(
        _FIND_PARTICIPANT,
        {"platform": arrival.platform, "external_id": arrival.external_id},
    )
    if participant is None:
        participant = Participant(
            platform=arrival.platform, external_id=arrival.external_id
        )
        db.session.add(participant)
        db.session.flush()
    return participant


def _create(
    study: Study,
    settings: StudySettings,
    arrival: platforms.Arrival,
    participant: Participant,
    model: str | None,
    request: dict[str, Any],
    user_agent: str,
    n_trials: int,
) -> Session:
    keys = settings.keys
    # Alternating by arrival balances the hands over participants exactly.
    swapped = keys.counterbalance and study.assignment_seq % 2 == 1
    real_key = keys.generated if swapped else keys.real
    stair = settings.staircase
    now = utcnow()
    screen = request["screen"] or (None, None)
    session = Session(
        study_id=study.id,
        participant=participant,
        status="active",
        n_trials=n_trials,
        model=model,
        platform_data=arrival.params,
        key_mapping=f"{real_key}=real",
        exposure_ms=stair.start_ms if stair else settings.timing.exposure_ms,
        user_agent=user_agent,
        screen_width=screen[0],
        screen_height=screen[1],
        consented_at=now,
        started_at=now,
        last_seen_at=now,
    )
    db.session.add(session)
    db.session.flush()
    return session


_INSERT_EVENT = insert(Event.__table__)


def _log_start(study: Study, session: Session, request: dict[str, Any]) -> None:
    data = {
        "window": request["window"],
        "screen": request["screen"],
        "device_pixel_ratio": request["device_pixel_ratio"],
        "n_trials": session.n_trials,
    }
    # One Core INSERT of both rows: no ORM objects to flush under the lock.
    db.session.execute(
        _INSERT_EVENT,
        [
            {
                "study_id": study.id,
                "session_id": session.id,
                "kind": kind,
                "actor": "participant",
                "data": data if kind == "session_start" else {},
            }
            for kind in ("consent", "session_start")
        ],
    )


def session_state(token: str) -> dict[str, Any]:
    """The state of the session with ``token``."""
    read_only()
    session, study = load_session(token)
    return state_of(session, study)


def record_device(token: str, body: Any) -> dict[str, Any]:
    """Store a device check; round the exposure to whole frames of the display.

    The intended exposure is the study's (or the staircase's start); the
    achieved one is the whole number of frames times the measured interval.
    The staircase is set up on the first check and keeps its state on later
    ones (a reload repeats the check).
    """
    check = timing.parse_device_check(validate.require_object(body))
    session, study = load_session(token, lock=True)
    require_active(session)
    settings = settings_of(study)
    stair = settings.staircase
    interval = check.frame_interval_ms
    if stair is not None and session.staircase is None:
        session.staircase = timing.start_staircase(stair, interval)
    intended = stair.start_ms if stair else settings.timing.exposure_ms
    frames = timing.exposure_frames(intended, interval)
    if session.staircase is not None:
        frames = session.staircase["frames"]
    session.frame_interval_ms = interval
    session.exposure_frames = frames
    session.exposure_ms = round(frames * interval, 4)
    session.last_seen_at = utcnow()
    db.session.add(
        Event(
            study_id=study.id,
            session_id=session.id,
            kind="device_check",
            actor="participant",
            data={
                "frame_interval_ms": interval,
                "n_frames": check.n_frames,
                "refresh_hz": check.refresh_hz,
                "frame_interval_sd_ms": check.frame_interval_sd_ms,
                "exposure_frames": frames,
            },
        )
    )
    answer = {
        "exposure_frames": frames,
        "exposure_ms": session.exposure_ms,
        "frame_interval_ms": interval,
        "staircase": timing.public_staircase(session.staircase),
    }
    db.session.commit()
    return answer


def record_event(token: str, body: Any) -> dict[str, Any]:
    """Store a client event (reload, visibility, focus, breaks...)."""
    body = validate.require_object(body)
    validate.reject_unknown(body, ("kind", "data", "at"), "event")
    kind = validate.choice(body, "kind", CLIENT_EVENTS)
    data = validate.sub_object(body, "data", required=False) or {}
    validate.storable(data, "data")
    at = validate.timestamp(body, "at", required=False)
    session, study = load_session(token)
    db.session.add(
        Event(
            study_id=study.id,
            session_id=session.id,
            kind=kind,
            actor="participant",
            data={"client_at": at.isoformat() if at else None, "data": data},
        )
    )
    if session.status == "active":
        session.last_seen_at = utcnow()
    db.session.commit()
    return {"stored": True}


def _parse_answers(body: Any) -> dict[str, str]:
    body = validate.require_object(body)
    validate.reject_unknown(body, ("answers",), "body")
    answers = validate.sub_object(body, "answers", required=False) or {}
    if len(answers) > MAX_ANSWERS:
        raise OutOfRange(
            f"answers: got {len(answers)} fields; allowed: at most {MAX_ANSWERS}",
            field="answers",
        )
    for key in answers:
        if not _ANSWER_KEY.fullmatch(key):
            raise Malformed(
                f"answers: field name {validate.shown(key)} is not allowed; use "
                "1-32 lower-case letters, digits or '_', starting with a letter",
                field="answers",
            )
        validate.text(answers, key, max_length=MAX_ANSWER_LENGTH)
    return answers


def complete_session(token: str, body: Any) -> dict[str, Any]:
    """Finish a session once every trial is stored; return its completion.

    Calling again returns the same completion; a screened-out session returns
    its screen-out completion.

    Raises
    ------
    Conflict
        Some trials have no stored response; ``missing`` lists their positions.
    """
    answers = _parse_answers(body)
    session, study = load_session(token, lock=True)
    settings = settings_of(study)
    if session.status in ("completed", "screened_out"):
        return completion_of(session, settings)  # type: ignore[return-value]
    require_active(session)
    missing = list(
        db.session.scalars(
            select(Trial.position)
            .where(Trial.session_id == session.id, Trial.response.is_(None))
            .order_by(Trial.position)
        )
    )
    if missing:
        raise Conflict(
            f"{len(missing)} of {session.n_trials} trials have no stored response "
            f"yet (first: position {missing[0]}); send them before completing",
            field="missing",
            missing=missing,
        )
    now = utcnow()
    session.status = "completed"
    session.completion_code = platforms.completion_code_for(settings, "completed")
    session.completed_at = now
    session.last_seen_at = now
    session.answers = {**(session.answers or {}), **answers}
    db.session.add(
        Event(
            study_id=study.id,
            session_id=session.id,
            kind="session_completed",
            actor="participant",
            data={"n_trials": session.n_trials},
        )
    )
    completion = completion_of(session, settings)
    db.session.commit()
    events_log.info("session %s completed in study %s", session.public_id, study.slug)
    return completion  # type: ignore[return-value]


def screen_out(session: Session, study: Study, settings: StudySettings) -> None:
    """End a session that failed too many attention checks (not an error)."""
    trials = settings.trials
    now = utcnow()
    session.status = "screened_out"
    session.completion_code = platforms.completion_code_for(settings, "screened_out")
    session.completed_at = now
    session.exclusion_reason = (
        f"failed_checks: {session.checks_failed} of {trials.checks} attention "
        f"checks failed ({trials.max_failed_checks} allowed)"
    )
    db.session.add(
        Event(
            study_id=study.id,
            session_id=session.id,
            kind="screened_out",
            actor="system",
            data={"reason": session.exclusion_reason},
        )
    )
    events_log.info(
        "session %s screened out in study %s: %s",
        session.public_id, study.slug, session.exclusion_reason,
    )  # fmt: skip
