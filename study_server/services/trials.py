"""Trials: serving blocks with signed image URLs, and storing responses.

Responses are append-only and idempotent. The first response to a trial is
graded and stored; the same payload sent again (a retry) is acknowledged
again without storing anything; a different payload is a conflict. A response
is taken only for a trial whose block has been served.

Storing a response is one short transaction: the session row (locked), the
trial by its unique ``(session_id, position)`` index, two updates; the
staircase reads the few answered main trials after the last one it applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update

from stimuli.store import ContentStore

from ..db import db, utcnow
from ..errors import Conflict, Malformed, NotFound, OutOfRange, StudyError
from ..models import Session, Stimulus, Trial
from ..studyfile import StudySettings
from . import grading, timing, validate
from .sessions import (
    completion_of,
    load_session,
    require_active,
    screen_out,
    settings_of,
)
from .signing import StimulusSigner

app_log = logging.getLogger("study_server")

#: The most responses one batch (beacon) request may carry.
MAX_BATCH = 500
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
    unfinished block cannot.

    Raises
    ------
    NotFound
        The session has no such block.
    OutOfRange
        An earlier block is unfinished, or the device check has not been done.
    """
    session, study = load_session(token)
    require_active(session)
    frames = timing.check_exposure_ready(session.exposure_frames)
    rows: Sequence[Any] = []
    if 0 <= block <= MAX_POSITION:
        rows = db.session.execute(
            select(Trial.id, Trial.position, Trial.kind)
            .where(Trial.session_id == session.id, Trial.block == block)
            .order_by(Trial.position)
        ).all()
    if not rows:
        raise NotFound(f"block {block}: no such block in this session", field="block")
    unfinished = db.session.scalar(
        select(Trial.block)
        .where(Trial.session_id == session.id, Trial.response.is_(None))
        .order_by(Trial.position)
        .limit(1)
    )
    if unfinished is not None and block > unfinished:
        raise OutOfRange(
            f"block {block}: finish block {unfinished} first", field="block"
        )
    now = utcnow()
    db.session.execute(
        update(Trial)
        .where(
            Trial.session_id == session.id,
            Trial.block == block,
            Trial.served_at.is_(None),
        )
        .values(served_at=now)
        .execution_options(synchronize_session=False)
    )
    session.last_seen_at = now
    settings = settings_of(study)
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
    screened_out = session.status == "screened_out"
    return {
        "position": trial.position,
        "stored": True,
        "replay": replay,
        "n_answered": session.n_answered,
        "feedback": {"correct": trial.correct} if trial.kind == "practice" else None,
        "screened_out": screened_out,
        "completion": completion_of(session, settings) if screened_out else None,
        "next_exposure_frames": (
            session.staircase["frames"] if session.staircase else None
        ),
    }


def _find_trial(session: Session, position: int) -> Trial:
    trial = None
    if 0 <= position <= MAX_POSITION:
        trial = db.session.scalar(
            select(Trial).where(
                Trial.session_id == session.id, Trial.position == position
            )
        )
    if trial is None:
        raise NotFound(
            f"position {position}: no such trial; this session has positions 0 "
            f"to {session.n_trials - 1}",
            field="position",
        )
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


def record_response(
    token: str, position: int, payload: grading.ResponsePayload
) -> dict[str, Any]:
    """Grade and store a response to one trial; return the acknowledgement.

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
    session, study = load_session(token, lock=True)
    settings = settings_of(study)
    trial = _find_trial(session, position)
    digest = payload.digest()
    if trial.response is not None:
        if trial.payload_digest == digest:
            return _ack(trial, session, settings, replay=True)
        raise Conflict(
            f"position {position}: this trial already has a different stored "
            "answer; answers cannot be changed",
            field="response",
        )
    require_active(session)
    if trial.served_at is None:
        raise OutOfRange(
            f"position {position}: its block ({trial.block}) has not been served; "
            f"fetch block {trial.block} first",
            field="position",
        )
    now = utcnow()
    for column, value in payload.stored_fields().items():
        setattr(trial, column, value)
    trial.correct = grading.grade(trial.is_real, payload.response)
    trial.timing_invalid = grading.timing_invalid(
        payload.intended_frames, payload.achieved_frames
    )
    trial.payload_digest = digest
    trial.responded_at = now
    session.n_answered += 1
    session.last_seen_at = now
    if trial.kind == "check" and not trial.correct:
        session.checks_failed += 1
        if session.checks_failed > settings.trials.max_failed_checks:
            screen_out(session, study, settings)
    db.session.flush()
    if session.staircase is not None and trial.kind == "main":
        _advance_staircase(session, session.staircase)
    ack = _ack(trial, session, settings, replay=False)
    db.session.commit()
    return ack


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
