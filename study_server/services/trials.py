"""Trials: serving blocks with signed image URLs, and storing responses.

Responses are append-only and idempotent. The first response to a trial is
graded and stored; the same payload sent again (a retry) is acknowledged
again without storing anything; a different payload is a conflict. A response
is taken only for a trial whose block has been served.

On PostgreSQL a new answer is stored by one autocommitted statement that locks
the session, stores the answer and counts it (:data:`_FAST_STORE`); anything
else (a replay, a conflict, a check, a staircase, an error) and every answer
on SQLite takes the general path: one short transaction of three statements,
the session row (locked) joined to the trial by its unique ``(session_id,
position)`` index, then two updates. The staircase reads the few answered
main trials after the last one it applied.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, select

from stimuli.store import ContentStore

from ..db import db, read_only, utcnow
from ..errors import (
    Conflict,
    Malformed,
    NotFound,
    OutOfRange,
    StudyError,
    Unauthorized,
)
from ..models import Session, Stimulus, Study, Trial
from ..studyfile import StudySettings
from . import grading, timing, validate
from .sessions import (
    check_token,
    completion_of,
    load_session,
    require_active,
    screen_out,
    settings_by_digest,
)
from .signing import StimulusSigner

app_log = logging.getLogger("study_server")

#: The most responses one batch (beacon) request may carry. About 250 bytes
#: each, 200 fit under the default 64 KiB body limit (MAX_CONTENT_LENGTH),
#: which is also about what navigator.sendBeacon accepts.
MAX_BATCH = 200
# Positions and blocks beyond this are not in any session; checking first
# keeps absurd numbers away from integer columns.
MAX_POSITION = 1_000_000


def _trial_kind(kind: str) -> str:
    # The browser is not told which trials are attention checks: it would
    # let a participant attend to those alone.
    return "practice" if kind == "practice" else "main"


def serve_block(
    token: str, block: int, signer: StimulusSigner, image_url: Callable[[str], str]
) -> dict[str, Any]:
    """Return one block's trials with signed image URLs and mark them served.

    A block can be fetched again (after a reload); one after the first
    unfinished block cannot. Every participant fetches a block at each
    break, most of them at about the same time, so the statements are Core
    ones built once (see :data:`_BLOCK_SESSION`).

    Raises
    ------
    NotFound
        The session has no such block.
    OutOfRange
        An earlier block is unfinished, or the device check has not been done.
    """
    check_token(token)
    connection = db.session.connection()
    session = connection.execute(_BLOCK_SESSION, {"token": token}).first()
    if session is None:
        raise Unauthorized("unknown session token", field="token")
    require_active(session)
    frames = timing.check_exposure_ready(session.exposure_frames)
    rows: Sequence[Any] = []
    if 0 <= block <= MAX_POSITION:
        rows = connection.execute(
            _BLOCK_TRIALS, {"session_id": session.id, "block": block}
        ).all()
    if not rows:
        raise NotFound(f"block {block}: no such block in this session", field="block")
    unfinished = connection.execute(
        _FIRST_UNFINISHED, {"session_id": session.id}
    ).scalar()
    if unfinished is not None and block > unfinished:
        raise OutOfRange(
            f"block {block}: finish block {unfinished} first", field="block"
        )
    now = utcnow()
    values = {"p_session_id": session.id, "p_block": block, "p_now": now}
    connection.execute(_MARK_SERVED, values)
    connection.execute(_SEEN, values)
    settings = settings_by_digest(session.study_id, session.settings_digest)
    main_frames = session.staircase["frames"] if session.staircase else frames
    timing_settings = settings.timing
    trials = [
        {
            "position": position,
            "kind": _trial_kind(kind),
            "image_url": image_url(signer.sign(trial_id)),
            "fixation_ms": timing_settings.fixation_ms,
            "exposure_frames": frames if kind == "practice" else main_frames,
            "mask_ms": timing_settings.mask_ms,
        }
        for trial_id, position, kind in rows
    ]
    db.session.commit()
    return {"block": block, "kind": trials[0]["kind"], "trials": trials}


def stimulus_bytes(opaque: str, signer: StimulusSigner, store_root: str) -> bytes:
    """Return the PNG bytes of the image behind a signed URL part.

    Raises
    ------
    NotFound
        The signature is invalid or expired, or the trial was never served.
    """
    trial_id = signer.unsign(opaque)
    if not 0 < trial_id < 2**63:
        raise NotFound("no such image")
    read_only()
    digest = db.session.scalar(
        select(Stimulus.digest)
        .join(Trial, Trial.stimulus_id == Stimulus.id)
        .where(Trial.id == trial_id, Trial.served_at.is_not(None))
    )
    db.session.rollback()
    if digest is None:
        raise NotFound("no such image")
    try:
        return ContentStore(store_root).open(digest)
    except OSError:
        app_log.error("stimulus %s is missing from %s", digest[:16], store_root)
        raise NotFound("no such image") from None


def _ack(
    trial: Trial,
    session: Session,
    settings: StudySettings,
    *,
    replay: bool,
) -> dict[str, Any]:
    return _ack_of(
        trial.position, trial.kind, trial.correct, session, settings, replay=replay
    )


def _ack_of(
    position: int,
    kind: str,
    correct: bool | None,
    session: Any,
    settings: StudySettings,
    *,
    replay: bool,
) -> dict[str, Any]:
    """The acknowledgement; ``session`` is a Session or a row with its columns.

    ``completion`` is the session's completion object once it has ended: on
    the answer that screens it out, and on replays after it was completed or
    screened out (docs/participant-api.md: the same everywhere).
    """
    return {
        "position": position,
        "stored": True,
        "replay": replay,
        "n_answered": session.n_answered,
        "feedback": {"correct": correct} if kind == "practice" else None,
        "screened_out": session.status == "screened_out",
        "completion": completion_of(session, settings),
        "next_exposure_frames": (
            session.staircase["frames"] if session.staircase else None
        ),
    }


def _no_trial(position: int, n_trials: int) -> NotFound:
    return NotFound(
        f"position {position}: no such trial; this session has positions 0 "
        f"to {n_trials - 1}",
        field="position",
    )


def _find_trial(session: Session, position: int) -> Trial:
    trial = None
    if 0 <= position <= MAX_POSITION:
        trial = db.session.scalar(
            select(Trial).where(
                Trial.session_id == session.id, Trial.position == position
            )
        )
    if trial is None:
        raise _no_trial(position, session.n_trials)
    return trial


def _advance_staircase(session: Session, state: dict[str, Any]) -> None:
    # Main trials after the last one applied; stop at the first gap so that
    # answers are applied in position order even when they arrive out of it.
    rows = db.session.execute(
        select(Trial.position, Trial.correct)
        .where(
            Trial.session_id == session.id,
            Trial.kind == "main",
            Trial.position > state["through"],
        )
        .order_by(Trial.position)
        .limit(50)
    ).all()
    answered = []
    for position, correct in rows:
        if correct is None:
            break
        answered.append((position, correct))
    if answered:
        session.staircase = timing.advance_staircase(state, answered)


_SESSION = Session.__table__
_TRIAL = Trial.__table__

# Serving a block: the session with its study's settings digest, the block's
# trials, the first block with an unanswered trial, then two updates.
_BLOCK_SESSION = (
    select(
        _SESSION.c.id,
        _SESSION.c.study_id,
        _SESSION.c.status,
        _SESSION.c.exposure_frames,
        _SESSION.c.staircase,
        Study.settings_digest,
    )
    .join(Study.__table__, Study.id == _SESSION.c.study_id)
    .where(_SESSION.c.token == bindparam("token"))
)
_BLOCK_TRIALS = (
    select(_TRIAL.c.id, _TRIAL.c.position, _TRIAL.c.kind)
    .where(
        _TRIAL.c.session_id == bindparam("session_id"),
        _TRIAL.c.block == bindparam("block"),
    )
    .order_by(_TRIAL.c.position)
)
_FIRST_UNFINISHED = (
    select(_TRIAL.c.block)
    .where(_TRIAL.c.session_id == bindparam("session_id"), _TRIAL.c.response.is_(None))
    .order_by(_TRIAL.c.position)
    .limit(1)
)
_MARK_SERVED = (
    _TRIAL.update()
    .where(
        _TRIAL.c.session_id == bindparam("p_session_id"),
        _TRIAL.c.block == bindparam("p_block"),
        _TRIAL.c.served_at.is_(None),
    )
    .values(served_at=bindparam("p_now"))
)
_SEEN = (
    _SESSION.update()
    .where(_SESSION.c.id == bindparam("p_session_id"))
    .values(last_seen_at=bindparam("p_now"))
)

# The response path's statements are built once with bound parameters: on
# every request only the values change, and building SQLAlchemy expressions
# costs more CPU than running them. Parameter names are prefixed with ``p_``
# because SET clauses reserve the column names.
_RESPONSE_ROW = (
    select(
        _SESSION.c.id,
        _SESSION.c.study_id,
        _SESSION.c.status,
        _SESSION.c.n_trials,
        _SESSION.c.n_answered,
        _SESSION.c.staircase,
        _SESSION.c.platform_data,
        _SESSION.c.completion_code,
        Study.settings_digest,
        _TRIAL.c.id.label("trial_id"),
        _TRIAL.c.kind,
        _TRIAL.c.is_real,
        _TRIAL.c.block,
        _TRIAL.c.served_at,
        _TRIAL.c.response,
        _TRIAL.c.correct,
        _TRIAL.c.payload_digest,
    )
    .join(Study.__table__, Study.id == _SESSION.c.study_id)
    # An outer join, so that an unknown position still finds the session.
    .outerjoin(
        _TRIAL,
        (_TRIAL.c.session_id == _SESSION.c.id)
        & (_TRIAL.c.position == bindparam("p_position")),
    )
    .where(_SESSION.c.token == bindparam("p_token"))
    # The session's row lock serialises answers to one session without
    # locking the study (NO KEY: event inserts need not wait).
    .with_for_update(of=_SESSION, key_share=True)
)
_STORED = tuple(field.name for field in dataclasses.fields(grading.ResponsePayload))
_STORE_RESPONSE = (
    _TRIAL.update()
    # "response IS NULL" is checked again on the row's newest version: on
    # PostgreSQL the locked read above can see a trial as it was before a
    # racing request (a retry of this very answer) stored it.
    .where(_TRIAL.c.id == bindparam("p_trial_id"), _TRIAL.c.response.is_(None))
    .values(
        {
            column: bindparam(f"p_{column}")
            for column in (
                *_STORED,
                "correct",
                "timing_invalid",
                "payload_digest",
                "responded_at",
            )
        }
    )
)
_COUNT_RESPONSE = (
    _SESSION.update()
    .where(_SESSION.c.id == bindparam("p_session_id"))
    .values(
        n_answered=_SESSION.c.n_answered + 1,
        checks_failed=_SESSION.c.checks_failed + bindparam("p_failed"),
        last_seen_at=bindparam("p_now"),
    )
    .returning(_SESSION.c.n_answered, _SESSION.c.checks_failed)
)


# PostgreSQL stores the common answer in one autocommitted statement: lock
# the active session (without a staircase), store the answer on its served,
# unanswered, non-check trial, and count it. When any condition fails the
# statement changes nothing and returns no row, and the answer takes the
# general path below (replays, conflicts, checks, staircases, errors). The
# trial's UPDATE re-checks "response IS NULL" on the row's newest version, so
# a racing retry finds nothing to do here and is answered as a replay there.
_FAST_SET = ", ".join(
    f"{column} = %(p_{column})s"
    for column in (*_STORED, "timing_invalid", "payload_digest", "responded_at")
)
_FAST_STORE = f"""
WITH s AS (
    SELECT id FROM {_SESSION.name}
    WHERE token = %(p_token)s AND status = 'active'
      AND (staircase IS NULL OR staircase::text = 'null')
    FOR NO KEY UPDATE
), t AS (
    UPDATE {_TRIAL.name} SET {_FAST_SET}, correct = (is_real = %(p_says_real)s)
    FROM s
    WHERE {_TRIAL.name}.session_id = s.id AND position = %(p_position)s
      AND response IS NULL AND served_at IS NOT NULL AND kind <> 'check'
    RETURNING {_TRIAL.name}.session_id, kind, correct
), c AS (
    UPDATE {_SESSION.name}
    SET n_answered = {_SESSION.name}.n_answered + 1, last_seen_at = %(p_now)s
    FROM t WHERE {_SESSION.name}.id = t.session_id
    RETURNING {_SESSION.name}.n_answered
)
SELECT t.kind, t.correct, c.n_answered FROM t CROSS JOIN c
"""


def _record_fast(
    token: str, position: int, payload: grading.ResponsePayload, digest: str
) -> dict[str, Any] | None:
    """Store a new answer in one statement on PostgreSQL; None when it cannot."""
    if db.session().in_transaction() or not 0 <= position <= MAX_POSITION:
        return None
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    values = {f"p_{column}": value for column, value in payload.stored_fields().items()}
    now = utcnow()
    connection = db.session.connection(
        execution_options={"isolation_level": "AUTOCOMMIT"}
    )
    row = connection.exec_driver_sql(
        _FAST_STORE,
        {
            **values,
            "p_token": token,
            "p_position": position,
            "p_says_real": payload.response == "real",
            "p_timing_invalid": grading.timing_invalid(
                payload.intended_frames, payload.achieved_frames
            ),
            "p_payload_digest": digest,
            "p_responded_at": now,
            "p_now": now,
        },
    ).first()
    # Ends the autocommit use of the connection; the general path gets a
    # connection with its usual transaction.
    db.session.rollback()
    if row is None:
        return None
    kind, correct, n_answered = row
    return {
        "position": position,
        "stored": True,
        "replay": False,
        "n_answered": n_answered,
        "feedback": {"correct": correct} if kind == "practice" else None,
        "screened_out": False,
        "completion": None,
        "next_exposure_frames": None,
    }


def _response_row(token: str, position: int) -> Any:
    """The session (row-locked), its study's settings digest and the trial."""
    check_token(token)
    if not 0 <= position <= MAX_POSITION:
        position = -1
    row = (
        db.session.connection()
        .execute(_RESPONSE_ROW, {"p_token": token, "p_position": position})
        .first()
    )
    if row is None:
        raise Unauthorized("unknown session token", field="token")
    return row


def record_response(
    token: str,
    position: int,
    payload: grading.ResponsePayload,
    *,
    _again: bool = False,
) -> dict[str, Any]:
    """Grade and store a response to one trial; return the acknowledgement.

    The common case is three statements: the locked read of
    :func:`_response_row` and two updates (trial and session counters). A
    failed attention check past the limit, or a staircase, loads the session
    as an object and takes the longer path.

    Raises
    ------
    Unauthorized
        Unknown token.
    NotFound
        No trial at ``position``.
    Conflict
        The trial already has a different answer.
    Forbidden, Gone
        The session has ended (a replay of a stored answer is still answered).
    OutOfRange
        The trial's block has not been served yet.
    """
    check_token(token)
    digest = payload.digest()
    if not _again:
        ack = _record_fast(token, position, payload, digest)
        if ack is not None:
            return ack
    row = _response_row(token, position)
    settings = settings_by_digest(row.study_id, row.settings_digest)
    if row.trial_id is None:
        raise _no_trial(position, row.n_trials)
    if row.response is not None:
        if row.payload_digest == digest:
            ack = _ack_of(position, row.kind, row.correct, row, settings, replay=True)
            db.session.commit()
            return ack
        raise Conflict(
            f"position {position}: this trial already has a different stored "
            "answer; answers cannot be changed",
            field="response",
        )
    require_active(row)
    if row.served_at is None:
        raise OutOfRange(
            f"position {position}: its block ({row.block}) has not been served; "
            f"fetch block {row.block} first",
            field="position",
        )

    now = utcnow()
    correct = grading.grade(row.is_real, payload.response)
    failed = row.kind == "check" and not correct
    connection = db.session.connection()
    values = {f"p_{column}": value for column, value in payload.stored_fields().items()}
    stored = connection.execute(
        _STORE_RESPONSE,
        {
            **values,
            "p_trial_id": row.trial_id,
            "p_correct": correct,
            "p_timing_invalid": grading.timing_invalid(
                payload.intended_frames, payload.achieved_frames
            ),
            "p_payload_digest": digest,
            "p_responded_at": now,
        },
    ).rowcount
    if stored == 0 and not _again:
        # A racing request stored an answer first; read again, as a replay
        # or a conflict, in a new transaction that sees it.
        db.session.rollback()
        return record_response(token, position, payload, _again=True)
    if stored == 0:
        raise Conflict(
            f"position {position}: this trial was answered at the same time by "
            "another request",
            field="response",
        )
    counts = connection.execute(
        _COUNT_RESPONSE,
        {"p_session_id": row.id, "p_failed": int(failed), "p_now": now},
    ).one()

    screen = failed and counts.checks_failed > settings.trials.max_failed_checks
    if screen or (row.staircase is not None and row.kind == "main"):
        session = db.session.get_one(Session, row.id)
        if screen:
            screen_out(session, db.session.get_one(Study, row.study_id), settings)
        if session.staircase is not None and row.kind == "main":
            db.session.flush()
            _advance_staircase(session, session.staircase)
        db.session.flush()
        ack = _ack_of(position, row.kind, correct, session, settings, replay=False)
    else:
        state = {**row._mapping, "n_answered": counts.n_answered}
        ack = _ack_of(position, row.kind, correct, _Row(state), settings, replay=False)
    db.session.commit()
    return ack


class _Row:
    """Attribute access to a mapping, for :func:`_ack_of` and ``completion_of``."""

    def __init__(self, values: Any):
        self.__dict__.update(values)


def record_batch(token: str, body: Any) -> dict[str, Any]:
    """Store several responses (a beacon on ``pagehide``), each as if PUT alone.

    Returns one result per item: its position, HTTP-style status, whether it
    was a replay, and the error message when it was refused.
    """
    body = validate.require_object(body)
    validate.reject_unknown(body, ("responses",), "body")
    items = body.get("responses")
    if not isinstance(items, list):
        raise Malformed(
            f"responses: got {validate.json_type(items)}; allowed: an array of "
            "responses",
            field="responses",
        )
    if len(items) > MAX_BATCH:
        raise OutOfRange(
            f"responses: got {len(items)}; allowed: at most {MAX_BATCH} per request",
            field="responses",
        )
    load_session(token)
    db.session.rollback()
    results = []
    for item in items:
        position = item.get("position") if isinstance(item, dict) else None
        try:
            item = validate.require_object(item, "responses[]")
            position = validate.integer(item, "position", low=0, high=MAX_POSITION)
            payload, _ = grading.parse_response(item)
            ack = record_response(token, position, payload)  # type: ignore[arg-type]
        except StudyError as exc:
            db.session.rollback()
            results.append(
                {
                    "position": position if isinstance(position, int) else None,
                    "status": exc.status,
                    "replay": False,
                    "error": exc.message,
                }
            )
            continue
        results.append({"position": position, "status": 200, "replay": ack["replay"]})
    return {"results": results}
