"""Starting and resuming sessions through the API (DESIGN §6)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from api_helpers import (
    API,
    MOBILE_UA,
    Participant,
    no_fsync,
    small_study,
    snapshot,
    without_random_parts,
)
from sqlalchemy import func, select, update

from study_server.db import db, utcnow
from study_server.models import Event, Session, Trial

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark


def _set_status(app, *, study_status=None, session_token=None, **session_values):
    from study_server.models import Study

    with app.app_context():
        if study_status is not None:
            db.session.execute(update(Study).values(status=study_status))
        if session_token is not None:
            db.session.execute(
                update(Session)
                .where(Session.token == session_token)
                .values(**session_values)
            )
        db.session.commit()


def _events(app, kind):
    with app.app_context():
        return list(db.session.scalars(select(Event).where(Event.kind == kind)))


def test_start_stores_the_whole_trial_list_and_answers_the_state(
    app, client, make_study
):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")

    answer = p.start()

    assert answer.status_code == 201
    state = answer.json
    assert len(state["token"]) == 43
    assert state["status"] == "active"
    # 2 practice + 10 main + 2 checks, decided and stored now.
    assert state["n_trials"] == 14
    assert state["n_answered"] == 0 and state["next_position"] == 0
    assert [b["kind"] for b in state["blocks"]] == ["practice", "main", "main"]
    assert state["blocks"][0] == {"block": 0, "kind": "practice", "first": 0, "size": 2}
    assert sum(b["size"] for b in state["blocks"]) == 14
    # The start answers the blocks as planned; the state reads them back from
    # the stored trials: the same.
    read_back = client.get(f"/api/v1/sessions/{state['token']}").json
    for key in ("blocks", "n_blocks", "next_position", "n_trials", "key_mapping"):
        assert read_back[key] == state[key], key
    assert state["key_mapping"] in (
        {"real": "f", "generated": "j"},
        {"real": "j", "generated": "f"},
    )
    assert state["completion"] is None and state["exposure_frames"] is None
    for key in ("started_at", "last_seen_at"):
        assert datetime.fromisoformat(state[key]).utcoffset() == timedelta(0)
        assert state[key].endswith("+00:00")

    with app.app_context():
        session = db.session.scalar(select(Session))
        assert session.platform_data == p.params
        assert session.model in ("m1", "m2")
        assert session.consented_at is not None
        kinds = db.session.scalars(
            select(Trial.kind).where(Trial.session_id == session.id)
        ).all()
        assert sorted(kinds) == ["check"] * 2 + ["main"] * 10 + ["practice"] * 2
        sources = db.session.scalars(
            select(Trial.source).where(Trial.kind == "main")
        ).all()
        assert sorted(set(sources)) == sorted({"real", session.model})
        assert sources.count("real") == 5
    assert len(_events(app, "consent")) == 1
    assert len(_events(app, "session_start")) == 1


def test_counterbalanced_keys_alternate_between_participants(app, client, make_study):
    study = small_study(make_study)
    mappings = []
    for i in range(4):
        p = Participant(client, study, f"PID{i}")
        assert p.start().status_code == 201
        mappings.append(p.state["key_mapping"]["real"])
    assert mappings == ["f", "j", "f", "j"]


def test_second_arrival_resumes_the_same_session_and_logs_it(app, client, make_study):
    study = small_study(make_study)
    first = Participant(client, study, "PID1")
    assert first.start().status_code == 201
    first.device()
    first.answer_block(0)

    again = Participant(client, study, "PID1")
    answer = again.start()

    assert answer.status_code == 200
    assert answer.json["token"] == first.token
    assert answer.json["next_position"] == 2
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Session)) == 1
    [event] = _events(app, "resume")
    assert event.data == {"via": "api", "next_position": 2}


def test_consent_must_be_given_and_nothing_is_stored_without_it(
    app, client, make_study
):
    study = small_study(make_study)
    before = snapshot(app)

    answer = Participant(client, study, "PID1").start(consent=False)

    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "consent"
    assert snapshot(app) == before


BAD_STARTS = [
    # (what, body changes, params changes, status, field)
    ("body not an object", [1, 2], None, 400, "body"),
    ("consent as text", {"consent": "yes"}, None, 400, "consent"),
    ("unknown field", {"age": 30}, None, 400, "age"),
    ("params not an object", {"params": "PID1"}, None, 400, "params"),
    ("wrong platform", {"platform": "mturk"}, None, 400, "platform"),
    ("unknown platform", {"platform": "reddit"}, None, 422, "platform"),
    (
        "window too small",
        {"window": {"width": 640, "height": 480}},
        None,
        422,
        "window",
    ),
    ("window as text", {"window": "big"}, None, 400, "window"),
    (
        "window width true",
        {"window": {"width": True, "height": 900}},
        None,
        400,
        "width",
    ),
    ("missing PROLIFIC_PID", {}, {"PROLIFIC_PID": None}, 400, "PROLIFIC_PID"),
    ("missing STUDY_ID", {}, {"STUDY_ID": None}, 400, "STUDY_ID"),
    ("missing SESSION_ID", {}, {"SESSION_ID": ""}, 400, "SESSION_ID"),
    ("id with spaces", {}, {"PROLIFIC_PID": "a b"}, 400, "PROLIFIC_PID"),
    ("id with a newline", {}, {"PROLIFIC_PID": "abc\n"}, 400, "PROLIFIC_PID"),
    ("id too long", {}, {"PROLIFIC_PID": "x" * 129}, 400, "PROLIFIC_PID"),
    ("id not a string", {}, {"PROLIFIC_PID": 12345}, 400, "PROLIFIC_PID"),
    ("dpr NaN", {"device_pixel_ratio": float("nan")}, None, 422, "device_pixel_ratio"),
]


def test_bad_start_requests_are_refused_and_store_nothing(app, client, make_study):
    study = small_study(make_study)
    before = snapshot(app)
    for what, changes, param_changes, status, field in BAD_STARTS:
        p = Participant(client, study, "PID1")
        if param_changes:
            p.params = {**p.params, **param_changes}
            p.params = {k: v for k, v in p.params.items() if v is not None}
        if isinstance(changes, list):
            answer = client.post(f"{API}/studies/{study.slug}/sessions", json=changes)
        else:
            answer = p.start(**changes)
        assert answer.status_code == status, (what, answer.json)
        error = answer.json["error"]
        assert error["status"] == status, what
        assert error["field"] == field, (what, error)
        assert field in error["message"], (what, error)
        assert snapshot(app) == before, what


def test_phones_and_tablets_cannot_start_a_session(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")
    before = snapshot(app)
    answer = client.post(
        f"{API}/studies/{study.slug}/sessions",
        json={"params": p.params, "consent": True},
        headers={"User-Agent": MOBILE_UA},
    )
    assert answer.status_code == 403
    assert answer.json["error"]["field"] == "user_agent"
    assert snapshot(app) == before


def test_malformed_json_and_unknown_study(app, client, make_study):
    study = small_study(make_study)
    url = f"{API}/studies/{study.slug}/sessions"
    before = snapshot(app)
    cases = [
        (client.post(url, data=b"{not json", content_type="application/json"), 400),
        (client.post(url, data=b"\xff\xfe", content_type="application/json"), 400),
        (client.post(url, data=b"", content_type="application/json"), 400),
        (client.post(url, data=b"[" * 50_000, content_type="application/json"), 400),
        (client.post(f"{API}/studies/nope/sessions", json={}), 400),
        (client.get(url), 405),
    ]
    for answer, status in cases:
        assert answer.status_code == status, answer.json
        assert answer.json["error"]["status"] == status
    p = Participant(client, study, "PID1")
    p.slug = "nope"
    assert p.start().status_code == 404
    assert snapshot(app) == before


def test_draft_study_is_not_found(app, client, make_study):
    study = small_study(make_study)
    _set_status(app, study_status="draft")
    answer = Participant(client, study, "PID1").start()
    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "not_found"


def test_paused_or_closed_study_refuses_newcomers_but_lets_sessions_go_on(
    app, client, make_study
):
    study = small_study(make_study)
    inside = Participant(client, study, "PID1")
    inside.start()
    inside.device()
    inside.block(0)
    for status, http in (("paused", 503), ("closed", 410)):
        _set_status(app, study_status=status)
        before = snapshot(app)

        newcomer = Participant(client, study, f"NEW-{status}").start()

        assert newcomer.status_code == http
        assert status in newcomer.json["error"]["message"]
        assert snapshot(app) == before
        # The participant already inside resumes and goes on answering.
        assert Participant(client, study, "PID1").start().status_code == 200
        assert inside.answer(0 if status == "paused" else 1).status_code == 200


def test_full_study_refuses_and_a_freed_place_is_reused(app, client, make_study):
    study = small_study(make_study, recruitment={"target_per_model": 1})
    first, second = Participant(client, study, "A"), Participant(client, study, "B")
    assert first.start().status_code == 201
    assert second.start().status_code == 201

    full = Participant(client, study, "C").start()
    assert full.status_code == 503
    assert "full" in full.json["error"]["message"]

    with app.app_context():
        freed_model = db.session.scalar(
            select(Session.model).where(Session.token == first.token)
        )
    _set_status(app, session_token=first.token, status="returned")
    assert Participant(client, study, "C").start().status_code == 201
    with app.app_context():
        model = db.session.scalar(
            select(Session.model)
            .join(Session.participant)
            .where(Session.token != first.token, Session.token != second.token)
        )
    assert model == freed_model


def test_a_session_left_past_the_resume_limit_cannot_be_resumed(
    app, client, make_study
):
    study = small_study(make_study, timing={"resume_limit_minutes": 30})
    p = Participant(client, study, "PID1")
    p.start()
    _set_status(
        app, session_token=p.token, last_seen_at=utcnow() - timedelta(minutes=31)
    )
    before = snapshot(app)

    answer = Participant(client, study, "PID1").start()

    assert answer.status_code == 410
    assert "expired" in answer.json["error"]["message"]
    assert snapshot(app) == before

    # Within the limit it resumes.
    _set_status(
        app, session_token=p.token, last_seen_at=utcnow() - timedelta(minutes=29)
    )
    assert Participant(client, study, "PID1").start().status_code == 200


def test_ended_sessions_cannot_start_again(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")
    p.start()
    for status, http in (
        ("returned", 403), ("excluded", 403), ("timed_out", 410), ("abandoned", 410),
    ):  # fmt: skip
        _set_status(app, session_token=p.token, status=status)
        before = snapshot(app)

        again = Participant(client, study, "PID1").start()

        assert again.status_code == http, status
        assert snapshot(app) == before
        # Nor can the old token go on working.
        assert p.device().status_code == http, status


def test_unknown_tokens_are_401(app, client, make_study):
    study = small_study(make_study)
    Participant(client, study, "PID1").start()
    before = snapshot(app)
    for token in ("x" * 43, "short", "a" * 200, "%00" * 5):
        for answer in (
            client.get(f"{API}/sessions/{token}"),
            client.get(f"{API}/sessions/{token}/blocks/0"),
            client.post(f"{API}/sessions/{token}/device", json={}),
            client.post(f"{API}/sessions/{token}/complete", json={}),
        ):
            assert answer.status_code in (400, 401), (token, answer.json)
            assert answer.json["error"]["status"] == answer.status_code
    assert client.get(f"{API}/sessions/{'x' * 43}").status_code == 401
    assert snapshot(app) == before


def test_unknown_api_paths_answer_the_json_envelope(client):
    for answer in (client.get(f"{API}/nothing"), client.delete(f"{API}/sessions/x")):
        assert answer.status_code in (404, 405)
        assert set(answer.json["error"]) >= {"status", "code", "message", "field"}


def test_state_for_a_direct_study_has_no_model_or_label(app, client, make_study):
    study = small_study(make_study, platform="direct")
    p = Participant(client, study, "someone-1")
    assert p.start().status_code == 201
    text = without_random_parts(p.refresh().json)
    for word in ("m1", "m2", "is_real", "source", "check", "model"):
        assert word not in text, word
