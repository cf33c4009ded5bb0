"""The adaptive staircase in the browser: each main trial is shown for the
exposure the server's rule gives after the answers before it."""

from __future__ import annotations

import pytest
from driver import KeyboardParticipant
from sqlalchemy import select

from study_server.services.timing import StaircaseRule, staircase_step

pytestmark = pytest.mark.browser

# At 60 Hz: start 100 ms = 6 frames, limits 1 and 30 frames; every correct
# answer shortens by 2 frames and every error lengthens by 2.
STAIRCASE = {
    "start_ms": 100,
    "min_ms": 16,
    "max_ms": 500,
    "step_frames": 2,
    "down_after": 1,
}


def test_staircase_exposure_follows_the_servers_rule(
    app, live_server, make_study, context
):
    study = make_study(
        trials={
            "per_session": 6,
            "real_fraction": 0.5,
            "practice": 2,
            "checks": 1,
            "max_failed_checks": 1,
            "break_every": 10,
        },
        timing={"fixation_ms": 50, "exposure_ms": 100},
        display={"size": 64},
        # A table of its own: the study file helper writes TOML tables.
        **{"timing.staircase": STAIRCASE},
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    participant = KeyboardParticipant(page, app, study.id)
    page.goto(f"{live_server}/s/{study.slug}")
    participant.run()
    assert errors == []

    from study_server.db import db
    from study_server.models import Session, Trial

    with app.app_context():
        session = db.session.get(Session, participant.session().id)
        trials = db.session.scalars(
            select(Trial).where(Trial.session_id == session.id).order_by(Trial.position)
        ).all()
        rule = StaircaseRule(
            session.staircase["min_frames"],
            session.staircase["max_frames"],
            session.staircase["step_frames"],
            session.staircase["down_after"],
        )
        assert (rule.min_frames, rule.max_frames) == (1, 30)
        frames, streak = 6, 0
        shown = []
        for trial in trials:
            if trial.kind == "practice":
                assert trial.intended_frames == 6
                continue
            shown.append(trial.intended_frames)
            assert trial.intended_frames == frames, (trial.position, shown)
            if trial.kind == "main":
                frames, streak = staircase_step(frames, streak, trial.correct, rule)
        # The answers moved the exposure at least once.
        assert len(set(shown)) > 1
        assert session.staircase["frames"] == frames
