"""Participant pages: arrival per platform, refusals, resume and completion pages."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from api_helpers import MOBILE_UA, Participant, no_fsync, small_study, snapshot
from sqlalchemy import select, update

from study_server.db import db, utcnow
from study_server.models import Event, Session, Study

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark

BOOTSTRAP = re.compile(
    r'<script type="application/json" id="bootstrap">(.*?)</script>', re.S
)


def _bootstrap(page):
    match = BOOTSTRAP.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)[:500]
    return json.loads(match.group(1))


def _set(app, model, **values):
    with app.app_context():
        db.session.execute(update(model).values(**values))
        db.session.commit()


def test_prolific_arrival_renders_the_runner_with_its_bootstrap(
    app, client, make_study
):
    study = small_study(make_study)
    p = Participant(client, study, "5f0c0ffee0ddba11")
    before = snapshot(app)

    page = p.arrive()

    assert page.status_code == 200
    data = _bootstrap(page)
    assert data["api"] == "/api/v1" and data["study"] == study.slug
    assert data["platform"] == "prolific"
    assert data["platform_params"] == p.params
    assert set(data["texts"]) == {"consent", "instructions", "debrief"}
    assert data["display"] == {
        "size": 32, "min_window_width": 800, "min_window_height": 600,
    }  # fmt: skip
    assert data["timing"] == {
        "fixation_ms": 500, "exposure_ms": 500, "mask_ms": 0, "staircase": None,
    }  # fmt: skip
    assert data["trials"] == {
        "practice": 2, "per_session": 10, "checks": 2, "break_every": 5,
    }  # fmt: skip
    assert data["session"] is None
    # Arriving stores nothing: the session starts after consent, in the API.
    assert snapshot(app) == before


MISSING = {
    "prolific": ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"),
    "mturk": ("workerId", "hitId", "turkSubmitTo", "assignmentId"),
}


def test_a_missing_platform_id_is_an_error_page_and_stores_nothing(
    app, client, make_study
):
    for platform, names in MISSING.items():
        study = small_study(make_study, slug=f"s-{platform}", platform=platform)
        before = snapshot(app)
        for missing in names:
            p = Participant(client, study, "W1")
            del p.params[missing]

            page = p.arrive()

            assert page.status_code == 400, missing
            text = page.get_data(as_text=True)
            assert "This link is incomplete" in text and missing in text
            assert snapshot(app) == before


def test_malformed_platform_parameters_are_refused(app, client, make_study):
    study = small_study(make_study, platform="mturk")
    p = Participant(client, study, "W1")
    before = snapshot(app)
    for name, value in (
        ("turkSubmitTo", "https://evil.example.com"),
        ("turkSubmitTo", "http://www.mturk.com"),
        ("turkSubmitTo", "https://www.mturk.com.evil.example"),
        ("turkSubmitTo", "https://www.mturk.com/elsewhere"),
        ("workerId", "<script>"),
        ("workerId", "w" * 129),
    ):
        page = p.arrive(**{name: value})
        assert page.status_code == 400, (name, value)
        assert name in page.get_data(as_text=True)
        assert "<script>" not in page.get_data(as_text=True)
    assert snapshot(app) == before


def test_mturk_preview_describes_the_task_and_stores_nothing(app, client, make_study):
    study = small_study(make_study, platform="mturk")
    before = snapshot(app)

    page = client.get(
        f"/s/{study.slug}",
        query_string={"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"},
    )

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "previewing" in text and study.title in text
    assert "12 images to judge" in text and "minutes" in text
    assert 'id="bootstrap"' not in text
    assert snapshot(app) == before
    # Nor can a preview start a session through the API.
    p = Participant(client, study, "W1")
    p.params["assignmentId"] = "ASSIGNMENT_ID_NOT_AVAILABLE"
    refused = p.start()
    assert refused.status_code == 400
    assert refused.json["error"]["field"] == "assignmentId"
    assert snapshot(app) == before


def test_a_direct_link_issues_an_id_and_redirects(app, client, make_study):
    study = small_study(make_study, platform="direct")
    before = snapshot(app)

    first = client.get(f"/s/{study.slug}?utm=x")
    second = client.get(f"/s/{study.slug}")

    assert first.status_code == 302
    location = urlsplit(first.headers["Location"])
    assert location.path == f"/s/{study.slug}"
    query = parse_qs(location.query)
    assert query["utm"] == ["x"] and len(query["pid"][0]) == 16
    other = parse_qs(urlsplit(second.headers["Location"]).query)["pid"][0]
    assert other != query["pid"][0]
    page = client.get(first.headers["Location"])
    assert _bootstrap(page)["platform_params"] == {"pid": query["pid"][0]}
    assert snapshot(app) == before


def test_mobile_browsers_get_a_polite_refusal(app, client, make_study):
    study = small_study(make_study)
    before = snapshot(app)
    ipad = (
        "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    )
    for agent in (MOBILE_UA, ipad):
        page = Participant(client, study, "P1").arrive(user_agent=agent)
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert "Please use a computer" in text and 'id="bootstrap"' not in text
    assert snapshot(app) == before


def test_paused_closed_and_draft_studies(app, client, make_study):
    study = small_study(make_study)
    inside = Participant(client, study, "INSIDE")
    inside.start()
    for status, http, words in (
        ("paused", 503, "is paused"), ("closed", 410, "is closed"), ("draft", 404, ""),
    ):  # fmt: skip
        _set(app, Study, status=status)

        page = Participant(client, study, "NEW").arrive()

        assert page.status_code == http, status
        assert words in page.get_data(as_text=True)
        if status != "draft":
            # The participant already inside continues.
            resumed = inside.arrive()
            assert resumed.status_code == 200
            assert _bootstrap(resumed)["session"]["token"] == inside.token


def test_unknown_study_is_a_404_page(client):
    page = client.get("/s/no-such-study")
    assert page.status_code == 404
    assert "text/html" in page.headers["Content-Type"]


def test_a_reload_resumes_at_the_first_unanswered_trial_and_is_logged(
    app, client, make_study
):
    study = small_study(make_study)
    p = Participant(client, study, "P1")
    p.start()
    p.device()
    p.answer_block(0)
    p.answer(p.block(1).json["trials"][0]["position"])

    page = p.arrive()

    data = _bootstrap(page)["session"]
    assert data["token"] == p.token
    assert (data["next_position"], data["n_answered"]) == (3, 3)
    assert data["exposure_frames"] == 30
    with app.app_context():
        [event] = db.session.scalars(select(Event).where(Event.kind == "resume"))
        assert event.data == {"via": "page", "next_position": 3}


def test_pages_for_ended_sessions(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "P1")
    p.start()
    with app.app_context():
        db.session.execute(
            update(Session).values(last_seen_at=utcnow() - timedelta(hours=2))
        )
        db.session.commit()
    expired = p.arrive()
    assert expired.status_code == 410
    assert "expired" in expired.get_data(as_text=True)

    for status, http, words in (
        ("returned", 403, "already taken part"),
        ("excluded", 403, "already taken part"),
        ("abandoned", 410, "expired"),
    ):
        _set(app, Session, status=status)
        page = p.arrive()
        assert page.status_code == http, status
        assert words in page.get_data(as_text=True)


def test_completed_page_shows_the_same_code_on_every_reload(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "P1")
    p.start()
    p.device()
    p.finish()
    p.complete()

    pages = [p.arrive().get_data(as_text=True) for _ in range(2)]

    assert pages[0] == pages[1]
    assert '<strong class="completion-code">DONE42</strong>' in pages[0]
    assert 'href="https://app.prolific.com/submissions/complete?cc=DONE42"' in pages[0]


def test_mturk_completion_posts_the_assignment_to_the_submit_url(
    app, client, make_study
):
    study = small_study(make_study, platform="mturk")
    p = Participant(client, study, "W1")
    p.start()
    p.device()
    p.finish()
    completion = p.complete().json

    assert completion["mturk"] == {
        "action": "https://workersandbox.mturk.com/mturk/externalSubmit",
        "assignmentId": "AW1",
    }
    text = p.arrive().get_data(as_text=True)
    assert (
        '<form method="post" '
        'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in text
    )
    assert '<input type="hidden" name="assignmentId" value="AW1">' in text


def test_screened_out_page_shows_the_screenout_code(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "P1")
    p.start()
    _set(app, Session, status="screened_out", completion_code="SCREEN7")

    page = p.arrive()

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "ended early" in text and "SCREEN7" in text
    assert "submissions/complete?cc=SCREEN7" in text


def test_front_page_points_participants_to_their_link(client):
    page = client.get("/")
    assert page.status_code == 200
    assert b"open the link your study" in page.data
    assert b'href="/researcher/"' in page.data
