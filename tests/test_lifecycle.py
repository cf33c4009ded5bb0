"""Study lifecycle (open, pause, close) and the researcher's session corrections."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from api_helpers import Participant, small_study
from researcher_helpers import (
    csrf_token,
    login,
    make_researcher,
    make_session,
    make_study_row,
)
from sqlalchemy import select

from study_server.db import db, utcnow
from study_server.errors import Conflict, NotFound, OutOfRange
from study_server.models import SESSION_STATUSES, STUDY_STATUSES, Event, Session, Study
from study_server.services import lifecycle

ALICE = "researcher:alice"

# (status before, action) -> status after; None = refused.
TRANSITIONS = {
    ("draft", "open"): "open",
    ("draft", "pause"): None,
    ("draft", "close"): "closed",
    ("open", "open"): None,
    ("open", "pause"): "paused",
    ("open", "close"): "closed",
    ("paused", "open"): "open",
    ("paused", "pause"): None,
    ("paused", "close"): "closed",
    ("closed", "open"): "open",
    ("closed", "pause"): None,
    ("closed", "close"): None,
}


def events(app, kind: str = "status_change") -> list[Event]:
    with app.app_context():
        found = db.session.scalars(
            select(Event).where(Event.kind == kind).order_by(Event.id)
        ).all()
        for event in found:
            db.session.expunge(event)
        return found


def study_status(app, slug: str = "pilot") -> str:
    with app.app_context():
        return db.session.scalar(select(Study.status).where(Study.slug == slug))


def session_row(app, public_id: str) -> Session:
    with app.app_context():
        session = db.session.scalar(
            select(Session).where(Session.public_id == public_id)
        )
        db.session.expunge(session)
        return session


def test_transition_table_covers_every_status_and_action():
    assert {s for s, _ in TRANSITIONS} == set(STUDY_STATUSES)
    assert {a for _, a in TRANSITIONS} == set(lifecycle.STUDY_ACTIONS)


def test_study_transitions(app):
    # One study per row of the table, all in one database (an app per case
    # would cost more than the checks).
    for i, ((before, action), after) in enumerate(sorted(TRANSITIONS.items())):
        slug = f"s{i}"
        study = make_study_row(app, slug, status=before)
        case = f"{before} + {action}"
        with app.app_context():
            if after is None:
                with pytest.raises(Conflict, match=f"study '{slug}' is {before}"):
                    lifecycle.change_study_status(slug, action, ALICE)
            else:
                changed = lifecycle.change_study_status(slug, action, ALICE)
                assert changed.status == after, case
        assert study_status(app, slug) == (after or before), case
        recorded = [e for e in events(app) if e.study_id == study.id]
        if after is None:
            assert recorded == [], case
            continue
        assert len(recorded) == 1, case
        assert recorded[0].actor == ALICE
        assert recorded[0].session_id is None
        assert recorded[0].data == {"from": before, "to": after, "reason": action}


def test_allowed_actions_follow_the_table():
    for status in STUDY_STATUSES:
        expected = [a for (s, a), after in TRANSITIONS.items() if s == status and after]
        assert sorted(lifecycle.allowed_actions(status)) == sorted(expected)


def test_unknown_action_and_study_are_refused(app):
    make_study_row(app)
    with app.app_context():
        with pytest.raises(OutOfRange, match="allowed: open, pause, close"):
            lifecycle.change_study_status("pilot", "delete", ALICE)
        with pytest.raises(NotFound, match="no study with slug 'nope'"):
            lifecycle.change_study_status("nope", "pause", ALICE)


@pytest.fixture
def researcher_client(app, client):
    make_researcher(app)
    login(client)
    return client


def post_form(client, page: str, url: str, **form):
    return client.post(url, data={**form, "csrf_token": csrf_token(client, page)})


def test_pause_through_the_dashboard_records_the_researcher(app, researcher_client):
    make_study_row(app)
    page = "/researcher/studies/pilot"
    answer = post_form(researcher_client, page, f"{page}/status", action="pause")
    assert answer.status_code == 302
    assert answer.headers["Location"] == page
    assert study_status(app) == "paused"
    assert [(e.actor, e.data["to"]) for e in events(app)] == [(ALICE, "paused")]
    html = researcher_client.get(page).get_data(as_text=True)
    assert "Study pilot is now paused." in html
    assert ">Open study<" in html and ">Pause study<" not in html

    refused = post_form(researcher_client, page, f"{page}/status", action="pause")
    assert refused.status_code == 409
    bad = post_form(researcher_client, page, f"{page}/status", action="explode")
    assert bad.status_code == 422
    assert b"allowed: open, pause, close" in bad.data


@pytest.mark.parametrize(
    ("action", "page_status", "api_status"),
    [
        ("pause", 503, 503),
        ("close", 410, 410),
    ],
)
def test_paused_or_closed_study_refuses_newcomers_but_lets_insiders_finish(
    app, client, make_study, action, page_status, api_status
):
    study = small_study(make_study)
    insider = Participant(client, study, "PID-inside")
    assert insider.start().status_code == 201
    assert insider.device().status_code == 200
    insider.answer_block(0)
    with app.app_context():
        lifecycle.change_study_status(study.slug, action, ALICE)

    newcomer = Participant(client, study, "PID-new")
    page = newcomer.arrive()
    assert page.status_code == page_status
    assert b"not available" in page.data.lower() or b"closed" in page.data.lower()
    assert newcomer.start().status_code == api_status
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Session)) == 1

    # The participant already inside resumes and finishes.
    assert insider.arrive().status_code == 200
    insider.finish()
    done = insider.complete()
    assert done.status_code == 200
    assert done.json["status"] == "completed"


# --- marking sessions -------------------------------------------------------------

MARKABLE_FROM = {
    "returned": {"active", "abandoned", "timed_out"},
    "timed_out": {"active", "abandoned"},
    "excluded": set(SESSION_STATUSES) - {"excluded"},
}


@pytest.mark.parametrize("mark", sorted(MARKABLE_FROM))
def test_mark_session_rules(app, mark, caplog):
    caplog.set_level(logging.INFO, logger="study_server.events")
    study = make_study_row(app)
    for before in SESSION_STATUSES:
        session = make_session(app, study, status=before)
        allowed = before in MARKABLE_FROM[mark]
        caplog.clear()
        with app.app_context():
            if not allowed:
                with pytest.raises(Conflict, match=f"is {before}"):
                    lifecycle.mark_session("pilot", session.public_id, mark, ALICE, "x")
            else:
                lifecycle.mark_session("pilot", session.public_id, mark, ALICE, "x")
        row = session_row(app, session.public_id)
        assert row.status == (mark if allowed else before), before
        recorded = [e for e in events(app) if e.session_id == session.id]
        logged = [
            r.getMessage() for r in caplog.records if r.name == "study_server.events"
        ]
        if not allowed:
            assert (recorded, logged) == ([], []), before
            continue
        assert len(recorded) == 1, before
        assert recorded[0].actor == ALICE
        assert recorded[0].data == {"from": before, "to": mark, "reason": "x"}
        assert row.exclusion_reason == ("x" if mark == "excluded" else None)
        assert logged == [
            f"session {session.public_id}: {before} -> {mark} by {ALICE} (x)"
        ]


def test_exclusion_needs_a_reason_of_bounded_length(app):
    study = make_study_row(app)
    session = make_session(app, study)
    with app.app_context():
        for reason in (None, "", "   "):
            with pytest.raises(OutOfRange, match="needs a reason"):
                lifecycle.mark_session(
                    "pilot", session.public_id, "excluded", ALICE, reason
                )
        with pytest.raises(OutOfRange, match="at most 200"):
            lifecycle.mark_session(
                "pilot", session.public_id, "excluded", ALICE, "x" * 201
            )
        with pytest.raises(OutOfRange, match="allowed: returned, timed_out, excluded"):
            lifecycle.mark_session("pilot", session.public_id, "completed", ALICE)
        with pytest.raises(NotFound, match="has no session 'nope'"):
            lifecycle.mark_session("pilot", "nope", "returned", ALICE)
    assert session_row(app, session.public_id).status == "active"


def test_a_session_of_another_study_cannot_be_marked_from_this_one(app):
    make_study_row(app, "pilot")
    other = make_study_row(app, "other")
    session = make_session(app, other)
    with app.app_context(), pytest.raises(NotFound):
        lifecycle.mark_session("pilot", session.public_id, "returned", ALICE)


def test_mark_through_the_sessions_page(app, researcher_client):
    study = make_study_row(app)
    session = make_session(app, study, external_id="PROLIFIC-RETURNER-1")
    page = "/researcher/studies/pilot/sessions"
    listing = researcher_client.get(page, query_string={"q": "PROLIFIC-RETURNER-1"})
    assert session.public_id in listing.get_data(as_text=True)
    answer = post_form(
        researcher_client,
        page,
        f"{page}/{session.public_id}/status",
        status="excluded",
        reason="",
    )
    assert answer.status_code == 422
    answer = post_form(
        researcher_client,
        page,
        f"{page}/{session.public_id}/status",
        status="excluded",
        reason="too_fast",
        next=f"{page}?status=active",
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"{page}?status=active"
    row = session_row(app, session.public_id)
    assert (row.status, row.exclusion_reason) == ("excluded", "too_fast")
    shown = researcher_client.get(page, query_string={"status": "excluded"})
    assert "too_fast" in shown.get_data(as_text=True)
    bad = researcher_client.get(page, query_string={"status": "gone"})
    assert bad.status_code == 422


def test_a_reason_with_a_nul_character_is_refused_and_nothing_changes(
    app, researcher_client
):
    study = make_study_row(app)
    session = make_session(app, study)
    page = "/researcher/studies/pilot/sessions"
    answer = post_form(
        researcher_client,
        page,
        f"{page}/{session.public_id}/status",
        status="excluded",
        reason="too\x00fast",
    )
    assert answer.status_code == 422
    assert "reason: contains a NUL character" in answer.get_data(as_text=True)
    row = session_row(app, session.public_id)
    assert (row.status, row.exclusion_reason) == ("active", None)


@pytest.mark.parametrize("mark", ["returned", "timed_out", "excluded"])
def test_marking_a_session_frees_its_place_for_a_new_participant(
    app, client, make_study, mark
):
    study = small_study(make_study, models=("m1",), recruitment={"target_per_model": 1})
    first = Participant(client, study, "PID-first")
    assert first.start().status_code == 201
    second = Participant(client, study, "PID-second")
    full = second.start()
    assert full.status_code == 503
    assert "full" in full.json["error"]["message"]

    make_researcher(app)
    researcher = app.test_client()
    login(researcher)
    public_id = researcher_public_id(app, "PID-first")
    page = f"/researcher/studies/{study.slug}/sessions"
    answer = post_form(
        researcher, page, f"{page}/{public_id}/status", status=mark, reason="r"
    )
    assert answer.status_code == 302

    assert second.start().status_code == 201
    with app.app_context():
        sessions = db.session.execute(
            select(Session.status, Session.model).order_by(Session.id)
        ).all()
    assert [tuple(s) for s in sessions] == [(mark, "m1"), ("active", "m1")]


def researcher_public_id(app, external_id: str) -> str:
    from study_server.models import Participant as ParticipantRow

    with app.app_context():
        return db.session.scalar(
            select(Session.public_id)
            .join(ParticipantRow)
            .where(ParticipantRow.external_id == external_id)
        )


# --- abandoning silent sessions ---------------------------------------------


def test_abandon_inactive_sessions_uses_the_study_limit(app):
    study = make_study_row(app, timing={"inactive_limit_minutes": 30})
    now = utcnow()
    stale = make_session(app, study, started_at=now - timedelta(minutes=31))
    fresh = make_session(app, study, started_at=now - timedelta(minutes=29))
    old_done = make_session(
        app, study, status="completed", started_at=now - timedelta(days=1)
    )
    with app.app_context():
        assert (
            lifecycle.abandon_inactive_sessions(db.session.get(Study, study.id), now)
            == 1
        )
        assert (
            lifecycle.abandon_inactive_sessions(db.session.get(Study, study.id), now)
            == 0
        )
    assert session_row(app, stale.public_id).status == "abandoned"
    assert session_row(app, fresh.public_id).status == "active"
    assert session_row(app, old_done.public_id).status == "completed"
    [event] = events(app)
    assert (event.actor, event.session_id) == ("system", stale.id)
    assert event.data == {
        "from": "active",
        "to": "abandoned",
        "reason": "no activity for more than 30 minutes",
    }


def test_abandon_without_commit_belongs_to_the_callers_transaction(app):
    study = make_study_row(app)
    session = make_session(app, study, started_at=utcnow() - timedelta(hours=2))
    with app.app_context():
        found = db.session.get(Study, study.id)
        assert lifecycle.abandon_inactive_sessions(found, commit=False) == 1
        db.session.rollback()
    assert session_row(app, session.public_id).status == "active"
    assert events(app) == []


def test_abandon_command_frees_the_place_of_a_silent_participant(
    app, client, runner, make_study
):
    study = small_study(make_study, models=("m1",), recruitment={"target_per_model": 1})
    first = Participant(client, study, "PID-silent")
    assert first.start().status_code == 201
    with app.app_context():
        db.session.execute(
            db.update(Session).values(last_seen_at=utcnow() - timedelta(hours=2))
        )
        db.session.commit()

    result = runner.invoke(args=["sessions", "abandon-inactive"])
    assert result.exit_code == 0, result.output
    assert f"{study.slug}: 1 session(s) abandoned" in result.output
    assert Participant(client, study, "PID-next").start().status_code == 201

    result = runner.invoke(args=["sessions", "abandon-inactive", "--study", "nope"])
    assert result.exit_code == 1
    assert "no study with slug 'nope'" in result.output


def test_a_silent_participant_frees_the_place_at_the_next_arrival(
    app, client, make_study
):
    study = small_study(make_study, models=("m1",), recruitment={"target_per_model": 1})
    assert Participant(client, study, "PID-silent").start().status_code == 201
    late = Participant(client, study, "PID-late")
    assert late.start().status_code == 503
    with app.app_context():
        db.session.execute(
            db.update(Session).values(last_seen_at=utcnow() - timedelta(hours=2))
        )
        db.session.commit()

    # No command ran: the arrival itself abandons the silent session first.
    assert late.start().status_code == 201
    with app.app_context():
        statuses = db.session.scalars(select(Session.status).order_by(Session.id))
        assert list(statuses) == ["abandoned", "active"]
    [event] = events(app)
    assert (event.actor, event.data["to"]) == ("system", "abandoned")


def test_dashboard_abandons_before_counting(app, researcher_client):
    study = make_study_row(app)
    make_session(app, study, started_at=utcnow() - timedelta(hours=2))
    make_session(app, study)
    data = researcher_client.get("/researcher/studies/pilot/dashboard.json").json
    assert data["sessions"]["by_status"]["abandoned"] == 1
    assert data["sessions"]["by_status"]["active"] == 1
    assert sum(row["active"] for row in data["progress"]) == 1
