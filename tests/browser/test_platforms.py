"""Completion on Prolific (redirect) and MTurk (external submit form), with
unlimited viewing and a mask; the platforms' sites are stood in for by
Playwright routes, since nothing outside 127.0.0.1 can be reached."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from driver import KeyboardParticipant
from sqlalchemy import select

pytestmark = pytest.mark.browser

# One block of 4 trials, no practice and no checks: the quickest session.
TINY_TRIALS = {
    "per_session": 4,
    "real_fraction": 0.5,
    "practice": 0,
    "checks": 0,
    "max_failed_checks": 0,
    "break_every": 4,
}


def trials_of(app, session_id: int) -> list:
    from study_server.db import db
    from study_server.models import Trial

    with app.app_context():
        rows = db.session.scalars(
            select(Trial).where(Trial.session_id == session_id).order_by(Trial.position)
        ).all()
        db.session.expunge_all()
        return list(rows)


def test_prolific_redirect_after_unlimited_viewing(
    app, live_server, make_study, context
):
    study = make_study(
        trials=TINY_TRIALS,
        timing={"fixation_ms": 50, "exposure_ms": 0},
        recruitment={"platform": "prolific", "completion_code": "PROLIFIC-OK"},
        display={"size": 64},
    )
    context.route(
        "https://app.prolific.com/**",
        lambda route: route.fulfill(body="<p>Prolific</p>", content_type="text/html"),
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    params = {"PROLIFIC_PID": "pp-0001", "STUDY_ID": "st-1", "SESSION_ID": "se-1"}
    participant = KeyboardParticipant(page, app, study.id, id_param="PROLIFIC_PID")
    page.goto(f"{live_server}/s/{study.slug}?{urlencode(params)}")
    code = participant.run()
    session = participant.session()
    assert code == "PROLIFIC-OK"

    # The code stays on screen a moment, then the page returns to Prolific.
    page.wait_for_url("https://app.prolific.com/**", timeout=10_000)
    assert parse_qs(urlparse(page.url).query) == {"cc": ["PROLIFIC-OK"]}
    assert errors == []

    # Until response: nothing intended, and the image stayed up until the
    # frame after the answer (the response time runs from the image's onset;
    # a frame's timestamp is its start, up to one interval before the key).
    for trial in trials_of(app, session.id):
        shown = trial.offset_ms - trial.onset_ms
        assert trial.intended_frames == 0
        assert not trial.timing_invalid
        assert trial.achieved_frames == round(shown / trial.frame_interval_ms)
        assert trial.rt_ms - trial.frame_interval_ms <= shown
        # Removed at the next frame; the margin allows for a stall of a busy
        # test machine.
        assert shown <= trial.rt_ms + 500


def test_mturk_external_submit_form(app, live_server, make_study, context):
    study = make_study(
        trials=TINY_TRIALS,
        timing={"fixation_ms": 50, "exposure_ms": 50, "mask_ms": 100},
        recruitment={"platform": "mturk"},
        display={"size": 64},
    )
    posted: list[dict] = []

    def mturk(route) -> None:
        posted.append(parse_qs(route.request.post_data or ""))
        route.fulfill(body="<p>MTurk</p>", content_type="text/html")

    context.route("https://workersandbox.mturk.com/**", mturk)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    params = {
        "workerId": "W0001",
        "assignmentId": "A0001",
        "hitId": "H0001",
        "turkSubmitTo": "https://workersandbox.mturk.com",
    }
    participant = KeyboardParticipant(page, app, study.id, id_param="workerId")
    page.goto(f"{live_server}/s/{study.slug}?{urlencode(params)}")
    code = participant.run()
    session = participant.session()
    assert code == session.completion_code

    # The submit button has the focus: Enter posts the assignment to MTurk.
    page.keyboard.press("Enter")
    page.wait_for_url("https://workersandbox.mturk.com/mturk/externalSubmit")
    assert posted == [
        {
            "assignmentId": ["A0001"],
            "completion_code": [code],
            "status": ["completed"],
        }
    ]
    assert errors == []
    for trial in trials_of(app, session.id):
        assert trial.intended_frames == 3
        assert trial.offset_ms > trial.onset_ms
